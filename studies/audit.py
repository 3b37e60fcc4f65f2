"""Access history: every access to patient data appends an ``AccessEvent``.

``record(request, action, study, obj="")`` is the one call every access path makes. Image fetches
(frames, rendered images, thumbnails, metadata) come in hundreds per viewing session, so those are
summarised: at most one event per (who, study, action) per ``TELECONSULT_AUDIT_SUMMARY_MINUTES``.

Who may read which events is decided here too (``visible_events``), next to how they are written,
and how they are exported (``events_csv_response``, for the access-history page).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpRequest

from teleconsult.client_address import client_address
from teleconsult.responses import StreamingResponse
from teleconsult.spreadsheets import csv_line

from .models import AccessEvent, ShareLink, Study

Action = AccessEvent.Action

# Fetched many times per viewing session: one event per window is enough to say "they looked".
SUMMARISED = frozenset({Action.FRAMES, Action.RENDERED, Action.THUMBNAIL, Action.METADATA})

# DICOMweb route name -> action (QIDO searches are not an access to one study's data).
DICOMWEB_ACTIONS = {
    "study": Action.WADO_RETRIEVE,
    "series": Action.WADO_RETRIEVE,
    "instance": Action.WADO_RETRIEVE,
    "study-metadata": Action.METADATA,
    "series-metadata": Action.METADATA,
    "instance-metadata": Action.METADATA,
    "frames": Action.FRAMES,
    "frame-rendered": Action.RENDERED,
    "series-rendered": Action.RENDERED,
    "instance-rendered": Action.RENDERED,
    "study-thumbnail": Action.THUMBNAIL,
    "series-thumbnail": Action.THUMBNAIL,
    "instance-thumbnail": Action.THUMBNAIL,
}


def summary_seconds() -> int:
    return settings.TELECONSULT_AUDIT_SUMMARY_MINUTES * 60


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the trusted proxies saw it (never a forged X-Forwarded-For entry)."""
    return client_address(request)


def _actor(user, share: ShareLink | None) -> str:
    if user is not None:
        return user.email
    if share is not None:
        return f"Share link {share.token_prefix}…"
    return ""


def _who_key(user, share: ShareLink | None) -> str:
    if user is not None:
        return f"u{user.pk}"
    if share is not None:
        return f"s{share.pk}"
    return "anon"


def _summary_key(user, share: ShareLink | None, study_uid: str, action: str) -> str:
    digest = hashlib.sha256(f"{_who_key(user, share)}|{study_uid}|{action}".encode()).hexdigest()[:32]
    return f"audit:{digest}"


def request_share(request: HttpRequest) -> ShareLink | None:
    access = getattr(request, "share_access", None)
    return access.share if access is not None else None


def request_user(request: HttpRequest):
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
        return user
    return None


_batch: ContextVar[list[AccessEvent] | None] = ContextVar("audit_batch", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Events appended inside the block are written together, in one INSERT, when it ends (a FHIR
    search page records every resource it serves: one query, not one per entry)."""
    events: list[AccessEvent] = []
    token = _batch.set(events)
    try:
        yield
    finally:
        _batch.reset(token)
    AccessEvent.objects.bulk_create(events)


def append(event: AccessEvent) -> AccessEvent:
    """Write ``event`` now, or with its batch (``batched``)."""
    events = _batch.get()
    if events is None:
        event.save()
    else:
        events.append(event)
    return event


def record(
    request: HttpRequest,
    action: str,
    study: Study,
    obj: str = "",
    *,
    user=None,
    share: ShareLink | None = None,
) -> AccessEvent | None:
    """Append one event; for summarised actions, only the first in the window. Returns the event
    written, or None when the window already had one."""
    share = share or request_share(request)
    if user is None and share is None:
        user = request_user(request)
    if action in SUMMARISED:
        key = _summary_key(user, share, study.study_instance_uid, action)
        if not cache.add(key, 1, timeout=summary_seconds()):
            return None
    return append(
        AccessEvent(
            user=user,
            share_link=share,
            actor=_actor(user, share),
            action=action,
            study=study,
            study_uid=study.study_instance_uid,
            object_id=str(obj)[:128],
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
        )
    )


def record_deletion(request: HttpRequest, *, user, study: Study, obj: str, study_removed: bool) -> AccessEvent:
    """Append the ``deleted`` event of a study, series or instance (``studies.deletion``). When the
    whole study went, the event names its patient record, which stays: the study's own column
    would be empty, and the practice's admins read the history of its records."""
    return append(
        AccessEvent(
            user=user,
            actor=_actor(user, None),
            action=Action.DELETED,
            study=None if study_removed else study,
            study_uid=study.study_instance_uid,
            patient=study.patient if study_removed else None,
            object_id=str(obj)[:128],
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
        )
    )


def record_dicomweb(request: HttpRequest, principal, response, kwargs: dict) -> None:
    """Called by every DICOMweb route after it answered: successful reads of one study's data."""
    if response.status_code >= 400 or request.method not in ("GET", "HEAD"):
        return
    match = getattr(request, "resolver_match", None)
    action = DICOMWEB_ACTIONS.get(match.url_name if match else "")
    study_uid = kwargs.get("study_uid")
    if action is None or not study_uid:
        return
    share = getattr(principal, "share", None)
    user = None if share is not None else principal
    if action in SUMMARISED and cache.get(_summary_key(user, share, study_uid, action)) is not None:
        return  # already recorded in this window: no query at all for the hundreds of frame fetches
    study = Study.objects.filter(study_instance_uid=study_uid).only("pk", "study_instance_uid").first()
    if study is None:
        return
    obj = kwargs.get("sop_uid") or kwargs.get("series_uid") or study_uid
    record(request, action, study, obj, user=user, share=share)


def visible_events(user):
    """Events this user may read: admins all; patients those on their own studies and their own
    answers to link requests; clinicians those on studies they uploaded (while members of their
    practice), through share links they made, and, as a practice admin, those on their practice's
    studies and records."""
    if not user or not user.is_authenticated or not user.is_active:
        return AccessEvent.objects.none()
    events = AccessEvent.objects.select_related("user", "share_link")
    if user.is_admin:
        return events
    if user.is_patient:
        # Of a record's own events (links), only their own answers: earlier requests name other
        # addresses, and an earlier linked account's answers its address and whereabouts.
        return events.filter(Q(study__patient__account=user) | Q(user=user, patient__isnull=False))
    administered = list(user.memberships.filter(role="admin").values_list("practice_id", flat=True))
    # A former member no longer reads the history of what they uploaded for the practice.
    rule = Q(study__uploaded_by=user, study__practice_id__in=user.practice_ids()) | Q(share_link__created_by=user)
    if administered:
        rule |= Q(study__practice_id__in=administered) | Q(patient__practice_id__in=administered)
    return events.filter(rule)


EVENTS_PER_QUERY = 2000
CSV_FIELDS = ["at", "actor", "action", "study_uid", "object_id", "ip", "user_agent", "share_link_id", "user_id"]


def events_csv_response(events, filename: str = "access-events.csv") -> StreamingResponse:
    def rows():
        yield csv_line(CSV_FIELDS)
        # A page of rows at a time, each page after the last row of the one before (by time, then
        # key): no database cursor stays open between the response's batches
        # (teleconsult.responses hands the connection back to the pool between them, for a
        # client that takes its time), and memory holds one page whatever the export's length.
        ordered = events.order_by("at", "pk")
        last = None
        while True:
            following = ordered if last is None else ordered.filter(Q(at__gt=last.at) | Q(at=last.at, pk__gt=last.pk))
            page = list(following[:EVENTS_PER_QUERY])
            for event in page:
                yield csv_line(getattr(event, name) for name in CSV_FIELDS)
            if len(page) < EVENTS_PER_QUERY:
                return
            last = page[-1]

    response = StreamingResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
