"""The studies app's REST API, mounted under /api/v1/."""

from django.urls import path

from . import access, deid, deletion, link_requests, photos, studies, uploads

urlpatterns = [
    path("uploads/", uploads.UploadView.as_view(), name="api-uploads"),
    path("patients/", studies.PatientListView.as_view(), name="api-patients"),
    path("patients/<int:pk>/", studies.PatientDetailView.as_view(), name="api-patient"),
    path("studies/", studies.StudyListView.as_view(), name="api-studies"),
    path("studies/<str:study_uid>/", studies.StudyDetailView.as_view(), name="api-study"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/",
        deletion.SeriesDeleteView.as_view(),
        name="api-study-series",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:sop_uid>/",
        deletion.InstanceDeleteView.as_view(),
        name="api-study-instance",
    ),
    path("patients/<int:pk>/invite/", link_requests.PatientInviteView.as_view(), name="api-patient-invite"),
    path("patients/<int:pk>/link/", link_requests.PatientUnlinkView.as_view(), name="api-patient-unlink"),
    path("link-requests/", link_requests.LinkRequestListView.as_view(), name="api-link-requests"),
    path(
        "link-requests/<int:pk>/<str:answer>/",
        link_requests.LinkRequestAnswerView.as_view(),
        name="api-link-request-answer",
    ),
    path("shares/", access.ShareListCreateView.as_view(), name="api-shares"),
    path("shares/<int:pk>/", access.ShareDetailView.as_view(), name="api-share"),
    path("access-events/", access.AccessEventListView.as_view(), name="api-access-events"),
    path("studies/<str:study_uid>/photos/", photos.StudyPhotoView.as_view(), name="api-study-photos"),
    path("studies/<str:study_uid>/deidentified/", deid.DeidentifiedCopyView.as_view(), name="api-study-deidentified"),
]
