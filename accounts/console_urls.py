"""The specialists' console and licence pages, mounted at /specialists/."""

from django.urls import path

from . import console

app_name = "console"

urlpatterns = [
    path("", console.console, name="list"),
    path("invite/", console.invite, name="invite"),
    path("invitations/<int:pk>/revoke/", console.revoke_invitation, name="revoke_invitation"),
    path("join/<str:token>/", console.join, name="join"),
    path("licences/", console.my_licences, name="licences"),
    path("licences/<int:pk>/change/", console.renew_licence, name="renew_licence"),
    path("licences/<int:pk>/document/", console.licence_document, name="licence_document"),
    path("licences/<int:pk>/<str:verdict>/", console.review_licence, name="review_licence"),
    path("<int:pk>/", console.specialist_detail, name="specialist"),
    path("<int:pk>/<str:action>/", console.specialist_action, name="specialist_action"),
]
