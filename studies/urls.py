"""Study browser pages and the permission-checked file and thumbnail URLs."""

from django.urls import path, register_converter

from . import deid_views, link_views, media_views, photo_views, portal_views, upload_views, viewer_views, views

app_name = "studies"


class StudyUIDConverter:
    """A UID path segment. Fixed words under /studies/ (the upload page) are never taken for a UID,
    whatever order the routes below are listed in."""

    regex = r"(?!upload/)[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(StudyUIDConverter, "study_page_uid")

urlpatterns = [
    path("studies/", views.study_list, name="list"),
    path("studies/<study_page_uid:study_uid>/", views.study_detail, name="detail"),
    path("studies/<study_page_uid:study_uid>/status.json", views.study_status, name="status"),
    path(
        "studies/<study_page_uid:study_uid>/instances/<study_page_uid:sop_uid>/thumbnail",
        media_views.instance_thumbnail,
        name="thumbnail",
    ),
    path(
        "studies/<study_page_uid:study_uid>/instances/<study_page_uid:sop_uid>/file",
        media_views.instance_file,
        name="file",
    ),
    path("patients/<int:pk>/", views.patient_detail, name="patient"),
    path("studies/<study_page_uid:study_uid>/view/", viewer_views.study_viewer, name="viewer"),
    path("studies/upload/", upload_views.upload_page, name="upload"),
    path("studies/<study_page_uid:study_uid>/access/", portal_views.study_access, name="access"),
    path("studies/<study_page_uid:study_uid>/access/links/", portal_views.create_link, name="create-link"),
    path(
        "studies/<study_page_uid:study_uid>/access/links/<int:pk>/revoke/",
        portal_views.revoke_link,
        name="revoke-link",
    ),
    path("studies/<study_page_uid:study_uid>/access/grants/", portal_views.add_grant, name="add-grant"),
    path(
        "studies/<study_page_uid:study_uid>/access/grants/<int:pk>/revoke/",
        portal_views.revoke_grant,
        name="revoke-grant",
    ),
    path("studies/<study_page_uid:study_uid>/download/", portal_views.download_study, name="download"),
    path("patients/<int:pk>/invite/", link_views.invite_patient, name="invite-patient"),
    path("patients/<int:pk>/unlink/", link_views.unlink_patient, name="unlink-patient"),
    path("portal/records/", link_views.link_requests, name="link-requests"),
    path(
        "portal/records/requests/<int:pk>/<str:answer>/",
        link_views.answer_link_request,
        name="answer-link-request",
    ),
    path("access-history/", portal_views.access_history, name="access-history"),
    path("studies/<study_page_uid:study_uid>/deidentified.zip", deid_views.deidentified_zip, name="deidentified"),
    path("studies/<study_page_uid:study_uid>/add-photo/", photo_views.add_photo_page, name="add-photo"),
]
