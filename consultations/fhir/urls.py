"""Routes under /fhir/r4/ (included by teleconsult/urls.py); a trailing slash is optional, as FHIR
clients send none."""

from django.urls import re_path

from . import views

TYPE = r"(?P<resource_type>[A-Z][A-Za-z]+)"
ID = r"(?P<resource_id>[A-Za-z0-9\-.]{1,64})"

urlpatterns = [
    re_path(r"^metadata/?$", views.MetadataView.as_view(), name="fhir-metadata"),
    re_path(rf"^{TYPE}/?$", views.TypeView.as_view(), name="fhir-type"),
    re_path(rf"^{TYPE}/{ID}/?$", views.InstanceView.as_view(), name="fhir-instance"),
    re_path(r"^.*$", views.UnknownView.as_view(), name="fhir-unknown"),
]
