"""Administrators' work on specialists: approving, suspending, reinstating, the console's list and
its filters, and the record of who did what when (``SpecialistEvent``, append-only).

Approval lets a specialist be offered and take consults (with a practice or reading group that
admitted them and, under the licence rule, a verified licence: ``accounts.licences``). Suspension
stops that at once without touching the account, its licences or its history; reinstating lifts it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from teleconsult.errors import PortalError

from .models import Licence, Role, SpecialistEvent, SpecialistProfile, User, validate_free_text

Action = SpecialistEvent.Action


class SpecialistError(PortalError):
    """A change to a specialist that cannot be made now; the message says why."""

    status = 409
    code = "specialist_conflict"


def record(specialist: User | None, action: str, *, by: User | None, email: str = "", licence=None, detail: str = ""):
    """One line of the specialist's history (inside the caller's transaction)."""
    return SpecialistEvent.objects.create(
        specialist=specialist,
        email=email or (specialist.email if specialist else ""),
        action=action,
        actor=by,
        licence=licence,
        detail=detail[:500],
    )


def _require_admin(user) -> None:
    if not (user.is_authenticated and user.is_active and user.is_admin):
        raise Http404("No such page.")


def get_specialist_for_admin(user, pk) -> User:
    """The specialist ``pk`` for an administrator; Http404 for anyone else or anything else."""
    _require_admin(user)
    try:
        return User.objects.select_related("specialist_profile").get(pk=int(pk), role=Role.SPECIALIST)
    except (User.DoesNotExist, ValueError, TypeError):
        raise Http404("No such specialist.") from None


def _profile(specialist: User) -> SpecialistProfile:
    """The profile, locked for the change (made when an account has none yet, as the Django
    admin's approve action does)."""
    SpecialistProfile.objects.get_or_create(user=specialist)
    return SpecialistProfile.objects.select_for_update().get(user=specialist)


@transaction.atomic
def approve(specialist: User, *, by: User) -> SpecialistProfile:
    _require_admin(by)
    profile = _profile(specialist)
    if profile.is_approved:
        raise SpecialistError(f"{specialist.display_name} is already approved.")
    profile.approve(by=by)
    record(specialist, Action.APPROVED, by=by)
    return profile


@transaction.atomic
def suspend(specialist: User, *, by: User, reason: object) -> SpecialistProfile:
    _require_admin(by)
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise PortalError("Say why the specialist is suspended.", code="reason_required", reason=["Give a reason."])
    try:
        validate_free_text(reason)
    except ValidationError as exc:
        raise PortalError(exc.messages[0], code="reason_invalid", reason=exc.messages) from None
    profile = _profile(specialist)
    if profile.is_suspended:
        raise SpecialistError(f"{specialist.display_name} is already suspended.")
    profile.suspended_at, profile.suspension_reason = timezone.now(), reason[:500]
    profile.save(update_fields=["suspended_at", "suspension_reason"])
    record(specialist, Action.SUSPENDED, by=by, detail=reason)
    return profile


@transaction.atomic
def reinstate(specialist: User, *, by: User) -> SpecialistProfile:
    _require_admin(by)
    profile = _profile(specialist)
    if not profile.is_suspended:
        raise SpecialistError(f"{specialist.display_name} is not suspended.")
    profile.suspended_at, profile.suspension_reason = None, ""
    profile.save(update_fields=["suspended_at", "suspension_reason"])
    record(specialist, Action.REINSTATED, by=by)
    return profile


def history(specialist: User) -> QuerySet:
    return SpecialistEvent.objects.filter(specialist=specialist).select_related("actor", "licence")


# -- the console's list ----------------------------------------------------------------------

# filter name -> (label, what it keeps). Read by the page's filter links and the API's ?filter=.
FILTERS: dict[str, str] = {
    "pending": "Pending approval",
    "unverified": "Licence unverified",
    "expiring": "Licence expiring in 30 days",
    "suspended": "Suspended",
}


def specialists(filter_name: str = "", *, on: dt.date | None = None, query: str = "") -> QuerySet:
    """Specialists for the console, newest first, narrowed by one of ``FILTERS``."""
    from .licences import today

    day = on or today()
    qs = User.objects.filter(role=Role.SPECIALIST).select_related("specialist_profile").order_by("-date_joined", "pk")
    if query:
        qs = qs.filter(Q(email__icontains=query) | Q(name__icontains=query))
    if not filter_name:
        return qs
    if filter_name not in FILTERS:
        raise PortalError(
            f"Unknown filter {filter_name[:40]!r}: choose one of {', '.join(FILTERS)}.",
            code="unknown_filter",
            filter=[f"Choose one of {', '.join(FILTERS)}."],
        )
    if filter_name == "pending":
        return qs.filter(Q(specialist_profile__isnull=True) | Q(specialist_profile__approved_at__isnull=True))
    if filter_name == "suspended":
        return qs.filter(specialist_profile__suspended_at__isnull=False)
    if filter_name == "unverified":
        waiting = Licence.objects.filter(specialist=OuterRef("pk"), status=Licence.Status.PENDING)
        return qs.filter(Exists(waiting))
    last = day + dt.timedelta(days=settings.TELECONSULT_LICENCE_REMINDER_DAYS)
    expiring = Licence.objects.filter(specialist=OuterRef("pk")).expiring_between(day, last)
    return qs.filter(Exists(expiring))
