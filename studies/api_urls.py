from django.urls import path

from . import api

urlpatterns = [
    path("uploads/", api.UploadView.as_view(), name="api-uploads"),
    path("patients/", api.PatientListView.as_view(), name="api-patients"),
    path("patients/<int:pk>/", api.PatientDetailView.as_view(), name="api-patient"),
    path("studies/", api.StudyListView.as_view(), name="api-studies"),
]
