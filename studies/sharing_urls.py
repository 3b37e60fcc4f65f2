"""Share links for people without an account, mounted at /s/."""

from django.urls import include, path

from . import sharing_views

app_name = "sharing"

urlpatterns = [
    path("<str:token>", sharing_views.open_link),
    path("<str:token>/", sharing_views.open_link, name="open"),
    path("<str:token>/download/", sharing_views.download, name="download"),
    path("<str:token>/dicomweb/", include("studies.share_dicomweb")),
]
