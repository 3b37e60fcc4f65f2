"""The studies app's pages (``studies.views``) and the permission-checked file and thumbnail URLs."""

from django.urls import path, register_converter

from .views import (
    access,
    access_history,
    browse,
    deid,
    delete,
    downloads,
    link_requests,
    media,
    nodes,
    photos,
    priors,
    upload,
    viewer,
)

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
    path("studies/", browse.study_list, name="list"),
    path("studies/<study_page_uid:study_uid>/", browse.study_detail, name="detail"),
    path("studies/<study_page_uid:study_uid>/status.json", browse.study_status, name="status"),
    path(
        "studies/<study_page_uid:study_uid>/instances/<study_page_uid:sop_uid>/thumbnail",
        media.instance_thumbnail,
        name="thumbnail",
    ),
    path(
        "studies/<study_page_uid:study_uid>/instances/<study_page_uid:sop_uid>/file",
        media.instance_file,
        name="file",
    ),
    path("patients/<int:pk>/", browse.patient_detail, name="patient"),
    path("studies/<study_page_uid:study_uid>/view/", viewer.study_viewer, name="viewer"),
    path("studies/upload/", upload.upload_page, name="upload"),
    path("studies/upload/summary.json", upload.upload_summary, name="upload-summary"),
    path("studies/<study_page_uid:study_uid>/access/", access.study_access, name="access"),
    path("studies/<study_page_uid:study_uid>/access/links/", access.create_link, name="create-link"),
    path(
        "studies/<study_page_uid:study_uid>/access/links/<int:pk>/revoke/",
        access.revoke_link,
        name="revoke-link",
    ),
    path("studies/<study_page_uid:study_uid>/access/people/", access.share_with_person, name="share-with"),
    path(
        "studies/<study_page_uid:study_uid>/access/people/<int:pk>/revoke/",
        access.revoke_person_share,
        name="revoke-person-share",
    ),
    path(
        "studies/<study_page_uid:study_uid>/access/people/<int:pk>/withdraw/",
        access.withdraw_person_share,
        name="withdraw-person-share",
    ),
    path("studies/<study_page_uid:study_uid>/access/grants/", access.add_grant, name="add-grant"),
    path(
        "studies/<study_page_uid:study_uid>/access/grants/<int:pk>/revoke/",
        access.revoke_grant,
        name="revoke-grant",
    ),
    path("studies/<study_page_uid:study_uid>/download/", downloads.download_study, name="download"),
    path("studies/<study_page_uid:study_uid>/delete/", delete.delete_study, name="delete"),
    path("patients/<int:pk>/invite/", link_requests.invite_patient, name="invite-patient"),
    path("patients/<int:pk>/unlink/", link_requests.unlink_patient, name="unlink-patient"),
    path("portal/records/", link_requests.link_requests, name="link-requests"),
    path(
        "portal/records/requests/<int:pk>/<str:answer>/",
        link_requests.answer_link_request,
        name="answer-link-request",
    ),
    path("access-history/", access_history.access_history, name="access-history"),
    path("studies/<study_page_uid:study_uid>/deidentified.zip", deid.deidentified_zip, name="deidentified"),
    path("studies/<study_page_uid:study_uid>/add-photo/", photos.add_photo_page, name="add-photo"),
    path("dicom-nodes/", nodes.node_list, name="nodes"),
    path("dicom-nodes/add/", nodes.add_node, name="add-node"),
    path("dicom-nodes/<int:pk>/edit/", nodes.change_node, name="change-node"),
    path("dicom-nodes/<int:pk>/delete/", nodes.delete_node, name="delete-node"),
    path("dicom-nodes/<int:pk>/settings/", nodes.node_settings, name="node-settings"),
    path("priors/<slug:kind>/<int:pk>/search/", priors.search, name="priors-search"),
    path("priors/<slug:kind>/<int:pk>/retrieve/", priors.retrieve, name="priors-retrieve"),
    path("priors/<slug:kind>/<int:pk>/retrievals.json", priors.retrievals, name="priors-retrievals"),
    path("results-sent/<int:pk>/send-again/", priors.send_again, name="send-again"),
]
