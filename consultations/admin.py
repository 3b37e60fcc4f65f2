"""Administration of consults: read the timeline and reports; change state only through the app."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    ConsultEvent,
    ConsultOffer,
    ConsultParticipant,
    ConsultRequest,
    Notification,
    NotificationPreference,
    Report,
    ReportTemplate,
)


class EventInline(admin.TabularInline):
    model = ConsultEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "kind", "actor", "message", "data"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OfferInline(admin.TabularInline):
    model = ConsultOffer
    extra = 0
    readonly_fields = ["specialist", "reason", "offered_at", "declined_at", "decline_reason"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ParticipantInline(admin.TabularInline):
    model = ConsultParticipant
    extra = 0
    readonly_fields = ["user", "added_by", "added_at", "removed_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConsultRequest)
class ConsultRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "state", "priority", "specialty", "requester", "assignee", "due_at", "sla_overdue_at"]
    list_filter = ["state", "priority", "specialty"]
    search_fields = ["question", "requester__email", "assignee__email", "study__study_instance_uid"]
    raw_id_fields = ["study", "requester", "assignee", "target_specialist"]
    readonly_fields = [
        "state",
        "created_at",
        "submitted_at",
        "due_at",
        "accepted_at",
        "reported_at",
        "closed_at",
        "sla_warned_at",
        "sla_overdue_at",
    ]
    inlines = [OfferInline, ParticipantInline, EventInline]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["consult", "version", "author", "signed_by", "signed_at", "agreement"]
    list_filter = ["agreement"]
    readonly_fields = ["signed_by", "signed_at", "content_sha256"]
    raw_id_fields = ["consult", "author", "template"]


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "specialty", "modality"]
    list_filter = ["specialty", "modality"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "title", "created_at", "read_at", "emailed_at"]
    list_filter = ["kind"]
    raw_id_fields = ["user", "consult"]


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "email"]
    raw_id_fields = ["user"]
