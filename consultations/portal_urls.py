"""The patient portal, mounted at /portal/."""

from django.urls import path

from .views import portal as portal_views

app_name = "portal"

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("studies/<str:study_uid>/", portal_views.study, name="study"),
    path("consults/<int:pk>/report.pdf", portal_views.report_pdf, name="report-pdf"),
    path("consults/<int:pk>/questions/", portal_views.ask_question, name="ask-question"),
]
