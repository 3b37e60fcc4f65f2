from django.contrib import admin, messages
from django.db import transaction

from .models import (
    AccessEvent,
    AccessGrant,
    Instance,
    Patient,
    PatientInvitation,
    PatientMerge,
    Series,
    ShareLink,
    Study,
)


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["name", "patient_id", "issuer", "birth_date", "account"]
    search_fields = ["name", "patient_id"]
    raw_id_fields = ["account", "uploaded_by"]
    actions = ["merge_patients"]

    @admin.action(description="Merge selected records into the oldest one (moves studies, keeps a note)")
    def merge_patients(self, request, queryset):
        records = list(queryset.order_by("created_at", "pk"))
        if len(records) < 2:
            self.message_user(request, "Select at least two patient records to merge.", messages.ERROR)
            return
        if len({p.practice_id for p in records}) > 1:
            self.message_user(
                request, "These records belong to different practices, which never share records.", messages.ERROR
            )
            return
        accounts = {p.account_id for p in records if p.account_id}
        if len(accounts) > 1:
            self.message_user(
                request, "These records are linked to different portal accounts; unlink one first.", messages.ERROR
            )
            return
        into = records[0]
        with transaction.atomic():
            for other in records[1:]:
                merge_patient(other, into=into, by=request.user)
        self.message_user(request, f"Merged {len(records) - 1} record(s) into {into}.", messages.SUCCESS)


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


def merge_patient(other: Patient, *, into: Patient, by) -> PatientMerge:
    """Move ``other``'s studies and invitations to ``into``, note what was merged, delete ``other``
    (records of one practice only: practices never share records)."""
    if other.practice_id != into.practice_id:
        raise ValueError("Records of different practices are never merged.")
    moved = list(other.studies.values_list("study_instance_uid", flat=True))
    other.studies.update(patient=into)
    AccessGrant.objects.filter(study__patient=into).copy_study_keys()  # the moved studies' search text
    other.invitations.update(patient=into)
    if into.account_id is None and other.account_id is not None:
        into.account_id = other.account_id
        into.save(update_fields=["account"])
    note = PatientMerge.objects.create(
        into=into,
        merged_pk=other.pk,
        merged_patient_id=other.patient_id,
        merged_issuer=other.issuer,
        merged_name=other.name,
        studies_moved=moved,
        merged_by=by,
    )
    other.delete()
    return note


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdmin):
    """Append-only history: searchable, never editable. CSV export is on the access-history page."""

    list_display = ["at", "actor", "action", "study_uid", "object_id", "ip"]
    list_filter = ["action", "at"]
    search_fields = ["actor", "study_uid", "object_id", "ip"]
    date_hierarchy = "at"
    actions = None


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ["token_prefix", "study", "created_by", "created_at", "expires_at", "status"]
    search_fields = ["token_prefix", "created_by__email", "study__study_instance_uid"]
    readonly_fields = [f.name for f in ShareLink._meta.fields]
    actions = ["revoke_links"]

    @admin.action(description="Revoke selected links (they stop working at once)")
    def revoke_links(self, request, queryset):
        links = list(queryset.filter(revoked_at__isnull=True))
        for link in links:
            link.revoke(by=request.user)
        self.message_user(request, f"Revoked {len(links)} link(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PatientInvitation)
class PatientInvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "patient", "invited_by", "created_at", "accepted_at"]
    search_fields = ["email"]


@admin.register(PatientMerge)
class PatientMergeAdmin(ReadOnlyAdmin):
    list_display = ["into", "merged_pk", "merged_name", "merged_patient_id", "merged_by", "merged_at"]
