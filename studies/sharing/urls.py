"""Share links for people without an account, mounted at /s/."""

from django.urls import include, path

from . import views

app_name = "sharing"

urlpatterns = [
    path("<str:token>", views.open_link),
    path("<str:token>/", views.open_link, name="open"),
    path("<str:token>/download/", views.download, name="download"),
    path("<str:token>/report/pdf/", views.report_pdf, name="report-pdf"),
    path("<str:token>/dicomweb/", include("studies.sharing.dicomweb")),
]
