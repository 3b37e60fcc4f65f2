from django.urls import path

from . import api, api_sharing, deid_views, photo_views

urlpatterns = [
    path("uploads/", api.UploadView.as_view(), name="api-uploads"),
    path("patients/", api.PatientListView.as_view(), name="api-patients"),
    path("patients/<int:pk>/", api.PatientDetailView.as_view(), name="api-patient"),
    path("studies/", api.StudyListView.as_view(), name="api-studies"),
    path("studies/<str:study_uid>/", api_sharing.StudyDetailView.as_view(), name="api-study"),
    path("patients/<int:pk>/invite/", api_sharing.PatientInviteView.as_view(), name="api-patient-invite"),
    path("patients/<int:pk>/link/", api_sharing.PatientUnlinkView.as_view(), name="api-patient-unlink"),
    path("link-requests/", api_sharing.LinkRequestListView.as_view(), name="api-link-requests"),
    path(
        "link-requests/<int:pk>/<str:answer>/",
        api_sharing.LinkRequestAnswerView.as_view(),
        name="api-link-request-answer",
    ),
    path("shares/", api_sharing.ShareListCreateView.as_view(), name="api-shares"),
    path("shares/<int:pk>/", api_sharing.ShareDetailView.as_view(), name="api-share"),
    path("access-events/", api_sharing.AccessEventListView.as_view(), name="api-access-events"),
    path("studies/<str:study_uid>/photos/", photo_views.StudyPhotoView.as_view(), name="api-study-photos"),
    path(
        "studies/<str:study_uid>/deidentified/",
        deid_views.DeidentifiedCopyView.as_view(),
        name="api-study-deidentified",
    ),
]
