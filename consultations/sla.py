"""SLA clocks. Due times live in the database; a beat task calls ``check_all`` every minute.

Two steps per consult, each done once and recorded on the consult and its timeline:
- at 75 % of the window (not yet accepted, or accepted and not yet reported), warn the assignee
  or, when nobody has accepted, the specialists it is offered to;
- at 100 %, mark it overdue, tell the requester and the administrators, and offer a consult that
  nobody has accepted to every matching specialist regardless of on-call.

This module decides when a step is due and locks the consult's row; the steps themselves are
``actions.warn_due_soon`` and ``actions.escalate_overdue``, which write the consult.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import actions
from .models import CLOCK_STATES, ConsultRequest


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
        actions.warn_due_soon(consult, now)
        warned = True
    if consult.sla_overdue_at is None and consult.due_at <= now:
        actions.escalate_overdue(consult, now)
        escalated = True
    return warned, escalated
