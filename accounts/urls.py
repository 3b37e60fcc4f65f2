"""Practice pages, mounted at /practices/."""

from django.urls import path

from . import practice_views

app_name = "accounts"

urlpatterns = [
    path("", practice_views.practice_list, name="practices"),
    path("new/", practice_views.create_practice, name="create_practice"),
    path("<int:pk>/", practice_views.practice_detail, name="practice"),
    path("<int:pk>/invite/", practice_views.invite_member, name="invite_member"),
    path("<int:pk>/members/<int:member_pk>/", practice_views.change_member, name="change_member"),
    path(
        "<int:pk>/invitations/<int:invitation_pk>/revoke/",
        practice_views.revoke_invitation,
        name="revoke_invitation",
    ),
    path("admit/<int:user_pk>/", practice_views.admit, name="admit"),
    path("join/<str:token>/", practice_views.join_practice, name="join_practice"),
]
