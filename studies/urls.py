"""Study browser pages and the permission-checked file and thumbnail URLs."""

from django.urls import path, register_converter

from . import media_views, upload_views, viewer_views, views

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
]
