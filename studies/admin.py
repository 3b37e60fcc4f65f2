from django.contrib import admin

from .models import AccessGrant, Instance, Patient, Series, Study


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["name", "patient_id", "issuer", "birth_date", "account"]
    search_fields = ["name", "patient_id"]
    raw_id_fields = ["account", "uploaded_by"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["study_instance_uid", "patient", "study_date", "modalities", "num_series", "num_instances"]
    search_fields = ["study_instance_uid", "accession_number", "patient__name", "patient__patient_id"]
    raw_id_fields = ["patient", "uploaded_by"]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["series_instance_uid", "study", "modality", "series_number", "num_instances"]
    raw_id_fields = ["study"]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["sop_instance_uid", "series", "status", "transfer_syntax_uid", "size"]
    list_filter = ["status"]
    search_fields = ["sop_instance_uid"]
    raw_id_fields = ["series", "uploaded_by"]


@admin.register(AccessGrant)
class AccessGrantAdmin(admin.ModelAdmin):
    list_display = ["user", "study", "reason", "source", "since", "until", "revoked_at"]
    list_filter = ["reason"]
    raw_id_fields = ["user", "study", "granted_by", "revoked_by"]
