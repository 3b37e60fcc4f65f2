"""When a signed report reaches the patient.

Signing sets ``Report.release_at`` (signing + ``TELECONSULT_REPORT_RELEASE_DELAY_MINUTES``), so the
referring physician reads the report first. What a patient may read is decided by that time alone
(``for_reader``: every page, PDF and API answer a patient gets goes through it), so a late beat task
never shows a report early or keeps it back. Releasing is the rest: the patient is told (in the
portal and by an email without clinical content) and the PDF is filed in the study, where the
patient's viewer and downloads would show it. It runs once per version (``released_at``): at signing
when there is no delay, else from the beat task every minute (a wait kept in the database, never a
countdown longer than the broker's visibility timeout).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import ConsultRequest, Report


def released(reports, now: datetime | None = None):
    """The signed versions among ``reports`` a patient may read now."""
    return reports.filter(signed_at__isnull=False, release_at__lte=now or timezone.now())


def for_reader(user, reports):
    """``reports`` narrowed to what ``user`` may read now: a patient reads released versions only;
    the care team reads a version as soon as it is signed (their own rules apply before this)."""
    return released(reports) if user.is_patient else reports


def waiting_until(user, consult: ConsultRequest) -> datetime | None:
    """For the consult's patient: when the next signed version they may not read yet is theirs."""
    if not user.is_patient:
        return None
    waiting = consult.reports.filter(signed_at__isnull=False, release_at__gt=timezone.now())
    return waiting.order_by("release_at").values_list("release_at", flat=True).first()


def release(report_pk: int) -> bool:
    """Release one signed version that is due, once: tell the patient, file the PDF in the study.
    Under the row's lock, and a version released already is left alone, so two beat runs (or a
    retry) tell the patient once. Returns whether this call released it."""
    from . import results_back, tasks  # tasks builds on this module
    from .notifications import report_ready

    with transaction.atomic():
        report = (
            Report.objects.select_for_update(of=("self",))
            .select_related("consult__study__patient__account")
            .filter(pk=report_pk, signed_at__isnull=False, released_at=None, release_at__lte=timezone.now())
            .first()
        )
        if report is None:
            return False
        report.released_at = timezone.now()
        # Report.save refuses any change of a signed version; release_at/released_at are not its content.
        Report.objects.filter(pk=report.pk).update(released_at=report.released_at)
        report_ready(report)
        transaction.on_commit(lambda: tasks.store_report_pdf.delay(report_pk=report.pk))
        results_back.after_release(report)  # and to the PACS the study came from, when it wants results
    return True


def release_due(now: datetime | None = None) -> int:
    """Beat work: release every signed version whose time has come. Returns how many."""
    due = Report.objects.filter(signed_at__isnull=False, released_at=None, release_at__lte=now or timezone.now())
    return sum(release(pk) for pk in list(due.order_by("release_at", "pk").values_list("pk", flat=True)))
