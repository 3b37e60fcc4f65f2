"""SLA clocks. Due times live in the database; a beat task calls ``check_all`` every minute.

Two steps per consult, each done once and recorded on the consult and its timeline:
- at 75 % of the window (not yet accepted, or accepted and not yet reported), warn the assignee
  or, when nobody has accepted, the specialists it is offered to;
- at 100 %, mark it overdue, tell the requester and the administrators, and offer a consult that
  nobody has accepted to every matching specialist regardless of on-call.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User

from . import offers
from .models import CLOCK_STATES, ConsultEvent, ConsultRequest, Notification, State
from .notifications import notify


def _warning_due(consult: ConsultRequest, now) -> bool:
    used = consult.sla_fraction_used(now)
    return used is not None and used >= settings.TELECONSULT_SLA_WARNING_FRACTION


def candidates(now):
    """Open consults with a step still to take (cheap filter; each is re-checked under lock)."""
    return ConsultRequest.objects.filter(
        state__in=CLOCK_STATES, due_at__isnull=False, submitted_at__isnull=False
    ).filter(Q(sla_warned_at__isnull=True) | Q(sla_overdue_at__isnull=True, due_at__lte=now))


def check_all(now=None) -> dict:
    now = now or timezone.now()
    counts = {"warned": 0, "escalated": 0}
    for pk in candidates(now).values_list("pk", flat=True):
        warned, escalated = check_consult(pk, now=now)
        counts["warned"] += warned
        counts["escalated"] += escalated
    return counts


@transaction.atomic
def check_consult(pk: int, *, now=None) -> tuple[bool, bool]:
    """Take the steps that are due for one consult; safe to run twice (each step is recorded)."""
    now = now or timezone.now()
    consult = ConsultRequest.objects.select_for_update().filter(pk=pk, state__in=CLOCK_STATES).first()
    if consult is None:
        return False, False
    warned = escalated = False
    if consult.sla_warned_at is None and _warning_due(consult, now):
        warn(consult, now)
        warned = True
    if consult.sla_overdue_at is None and consult.due_at <= now:
        escalate(consult, now)
        escalated = True
    return warned, escalated


def _time_left_text(consult: ConsultRequest, now) -> str:
    minutes = max(0, int((consult.due_at - now).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def warn(consult: ConsultRequest, now) -> None:
    ConsultRequest.objects.filter(pk=consult.pk).update(sla_warned_at=now)
    consult.sla_warned_at = now
    waiting_for = "a report" if consult.state != State.SUBMITTED else "a specialist to accept"
    left = _time_left_text(consult, now)
    consult._log(
        ConsultEvent.Kind.SLA_WARNING, None, f"Due in {left}; still waiting for {waiting_for}.", step="warning"
    )
    told = [consult.assignee] if consult.assignee_id else offers.pool_users(consult)
    notify(
        told,
        kind=Notification.Kind.SLA_WARNING,
        consult=consult,
        title=f"Consult #{consult.pk} is due in {left}",
        body=f"The {consult.get_priority_display().lower()} consult is still waiting for {waiting_for}.",
    )


def escalate(consult: ConsultRequest, now) -> None:
    ConsultRequest.objects.filter(pk=consult.pk).update(sla_overdue_at=now)
    consult.sla_overdue_at = now
    consult._log(ConsultEvent.Kind.SLA_OVERDUE, None, "Overdue: the due time has passed.", step="overdue")
    new_offers = []
    if consult.state == State.SUBMITTED:
        if consult.target_specialist_id and consult.specialty:
            # The named specialist has not answered in time: the specialty pool may take it now
            # (the named specialist keeps their offer).
            ConsultRequest.objects.filter(pk=consult.pk).update(target_specialist=None)
            consult.target_specialist = None
        new_offers = offers.offer_to_every_match(consult)
        consult._log(
            ConsultEvent.Kind.ESCALATED,
            None,
            f"Escalated: offered to {len(new_offers)} more matching specialist(s), on call or not.",
            to=[o.specialist_id for o in new_offers],
        )
        notify(
            [o.specialist for o in new_offers],
            kind=Notification.Kind.OFFER,
            consult=consult,
            title=f"Overdue {consult.get_priority_display().lower()} consult offered to you",
            body="Nobody has accepted this consult in time.",
        )
    admins = User.objects.filter(is_active=True).filter(Q(role=Role.ADMIN) | Q(is_superuser=True))
    notify(
        [consult.requester, *admins],
        kind=Notification.Kind.ESCALATION,
        consult=consult,
        title=f"Consult #{consult.pk} is overdue",
        body=_escalation_text(consult),
    )


def _escalation_text(consult: ConsultRequest) -> str:
    if consult.state != State.SUBMITTED:
        return f"{consult.assignee.display_name} has not reported yet."
    if consult.specialty:
        return "Nobody has accepted it yet; it is now offered to every matching specialist."
    return "The named specialist has not accepted it yet; you may cancel it and ask someone else."
