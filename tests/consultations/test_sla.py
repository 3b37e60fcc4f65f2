"""SLA clocks with frozen time: the 75 % warning and the 100 % escalation, each once, each on the
timeline, with notifications, emails and re-offers to every matching specialist."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail

from consultations import actions, sla, tasks
from consultations.models import ConsultOffer, Notification
from tests.factories import ConsultFactory, SpecialistFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday


@pytest.fixture
def on_call_specialist(db):
    return SpecialistFactory(
        email="oncall@example.com",
        name="Dr On Call",
        profile__on_call=[{"day": 0, "start": "08:00", "end": "18:00"}],
    )


@pytest.fixture
def off_duty_specialist(db):
    return SpecialistFactory(email="offduty@example.com", name="Dr Off Duty", profile__time_zone="Asia/Tokyo")


@pytest.fixture
def stat_consult(
    physician, study, on_call_specialist, off_duty_specialist, admin_user, django_capture_on_commit_callbacks
):
    with time_machine.travel(START, tick=False):
        consult = ConsultFactory(requester=physician, study=study, priority="stat")
        with django_capture_on_commit_callbacks(execute=True):
            actions.submit_consult(consult, by=physician)
    return consult


def run_check(at, capture):
    with time_machine.travel(at, tick=False), capture(execute=True):
        return tasks.check_sla.apply().get()


def test_routing_prefers_on_call_specialists(stat_consult, on_call_specialist, off_duty_specialist):
    offered = set(stat_consult.offers.values_list("specialist_id", flat=True))
    assert offered == {on_call_specialist.pk}
    assert stat_consult.offers.get().reason == ConsultOffer.Reason.ON_CALL


def test_routing_falls_back_to_all_matching_when_nobody_is_on_call(physician, study, specialist, other_specialist):
    with time_machine.travel(START.replace(hour=23), tick=False):
        consult = ConsultFactory(requester=physician, study=study)
        actions.submit_consult(consult, by=physician)
    assert set(consult.offers.values_list("specialist_id", flat=True)) == {specialist.pk, other_specialist.pk}
    assert "Nobody is on call" in consult.events.get(kind="offered").message


def test_routing_respects_jurisdiction_and_accepting(physician, study):
    SpecialistFactory(email="fr@example.com", profile__jurisdictions=["FR"])
    paused = SpecialistFactory(email="paused@example.com", profile__accepting_consults=False)
    licensed = SpecialistFactory(email="ca@example.com", profile__jurisdictions=["US-CA"])
    unapproved = SpecialistFactory(email="new@example.com", profile__approved_at=None)
    consult = ConsultFactory(requester=physician, study=study, jurisdiction="US-CA")
    actions.submit_consult(consult, by=physician)
    offered = set(consult.offers.values_list("specialist__email", flat=True))
    assert licensed.email in offered
    assert "fr@example.com" not in offered and paused.email not in offered and unapproved.email not in offered


def test_nothing_happens_before_75_percent(stat_consult, django_capture_on_commit_callbacks):
    result = run_check(START + dt.timedelta(minutes=44), django_capture_on_commit_callbacks)
    assert result == {"warned": 0, "escalated": 0}
    assert not stat_consult.events.filter(kind__in=["sla_warning", "sla_overdue"]).exists()


def test_warning_at_75_percent_once(stat_consult, on_call_specialist, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    result = run_check(START + dt.timedelta(minutes=45), django_capture_on_commit_callbacks)
    assert result == {"warned": 1, "escalated": 0}
    stat_consult.refresh_from_db()
    assert stat_consult.sla_warned_at == START + dt.timedelta(minutes=45)
    warning = stat_consult.events.get(kind="sla_warning")
    assert "Due in 15 min" in warning.message
    note = Notification.objects.get(kind="sla_warning")
    assert note.user == on_call_specialist
    # The second run a minute later does not warn again.
    assert run_check(START + dt.timedelta(minutes=46), django_capture_on_commit_callbacks)["warned"] == 0
    assert stat_consult.events.filter(kind="sla_warning").count() == 1


def test_warning_goes_to_the_assignee_once_accepted(
    stat_consult, on_call_specialist, django_capture_on_commit_callbacks
):
    with time_machine.travel(START + dt.timedelta(minutes=10), tick=False):
        actions.accept_consult(stat_consult, by=on_call_specialist)
    run_check(START + dt.timedelta(minutes=50), django_capture_on_commit_callbacks)
    assert "waiting for a report" in stat_consult.events.get(kind="sla_warning").message
    assert list(Notification.objects.filter(kind="sla_warning").values_list("user", flat=True)) == [
        on_call_specialist.pk
    ]


def test_overdue_escalates_once_and_reoffers_to_every_match(
    stat_consult, physician, admin_user, on_call_specialist, off_duty_specialist, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    result = run_check(START + dt.timedelta(minutes=61), django_capture_on_commit_callbacks)
    # Both steps were due (the warning was never sent), each taken once.
    assert result == {"warned": 1, "escalated": 1}
    stat_consult.refresh_from_db()
    assert stat_consult.sla_overdue_at == START + dt.timedelta(minutes=61)
    kinds = list(stat_consult.events.values_list("kind", flat=True))
    assert kinds[-3:] == ["sla_warning", "sla_overdue", "escalated"]
    offered = set(stat_consult.offers.values_list("specialist_id", flat=True))
    assert off_duty_specialist.pk in offered
    assert stat_consult.offers.get(specialist=off_duty_specialist).reason == ConsultOffer.Reason.ESCALATION
    escalations = Notification.objects.filter(kind="escalation")
    assert set(escalations.values_list("user_id", flat=True)) == {physician.pk, admin_user.pk}
    recipients = {m.to[0] for m in mail.outbox}
    assert {physician.email, admin_user.email, off_duty_specialist.email} <= recipients
    assert run_check(START + dt.timedelta(minutes=90), django_capture_on_commit_callbacks) == {
        "warned": 0,
        "escalated": 0,
    }
    assert stat_consult.events.filter(kind="sla_overdue").count() == 1


def test_accepted_overdue_consult_is_not_reoffered(
    stat_consult, on_call_specialist, physician, django_capture_on_commit_callbacks
):
    with time_machine.travel(START + dt.timedelta(minutes=5), tick=False):
        actions.accept_consult(stat_consult, by=on_call_specialist)
    run_check(START + dt.timedelta(hours=2), django_capture_on_commit_callbacks)
    assert not stat_consult.events.filter(kind="escalated").exists()
    assert stat_consult.events.filter(kind="sla_overdue").exists()
    body = Notification.objects.get(kind="escalation", user=physician).body
    assert "Dr On Call has not reported yet" in body


def test_closed_consults_are_left_alone(stat_consult, physician, django_capture_on_commit_callbacks):
    actions.cancel_consult(stat_consult, by=physician)
    assert run_check(START + dt.timedelta(hours=5), django_capture_on_commit_callbacks) == {
        "warned": 0,
        "escalated": 0,
    }


def test_sla_minutes_come_from_settings(settings, physician, study, specialist):
    settings.TELECONSULT_SLA_MINUTES = {"stat": 10, "urgent": 20, "routine": 30}
    consult = ConsultFactory(requester=physician, study=study, priority="urgent")
    actions.submit_consult(consult, by=physician)
    assert consult.due_at - consult.submitted_at == dt.timedelta(minutes=20)


def test_check_consult_is_idempotent(stat_consult):
    at = START + dt.timedelta(minutes=70)
    assert sla.check_consult(stat_consult.pk, now=at) == (True, True)
    assert sla.check_consult(stat_consult.pk, now=at) == (False, False)


def test_beat_schedule_runs_the_check_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["consult-sla"]
    assert entry["task"] == "consultations.tasks.check_sla" and entry["schedule"] == 60.0


def test_worklist_order_overdue_then_priority_then_due(physician, study, specialist):
    from consultations.models import ConsultRequest

    with time_machine.travel(START, tick=False):
        routine = ConsultFactory(requester=physician, study=study, priority="routine")
        actions.submit_consult(routine, by=physician)
        stat = ConsultFactory(requester=physician, study=study, priority="stat")
        actions.submit_consult(stat, by=physician)
    with time_machine.travel(START + dt.timedelta(minutes=30), tick=False):
        urgent = ConsultFactory(requester=physician, study=study, priority="urgent")
        actions.submit_consult(urgent, by=physician)
        later_stat = ConsultFactory(requester=physician, study=study, priority="stat")
        actions.submit_consult(later_stat, by=physician)
    with time_machine.travel(START + dt.timedelta(minutes=80), tick=False):
        order = list(ConsultRequest.objects.worklist_for(specialist).in_worklist_order().values_list("pk", flat=True))
        assert order == [stat.pk, later_stat.pk, urgent.pk, routine.pk]
        assert stat.urgency_class() == "bad" and later_stat.urgency_class() == "warn"
        assert routine.urgency_class() == "ok"


def test_overdue_named_consult_opens_to_the_pool(
    physician, study, on_call_specialist, off_duty_specialist, django_capture_on_commit_callbacks
):
    with time_machine.travel(START, tick=False):
        consult = ConsultFactory(
            requester=physician, study=study, priority="stat", target_specialist=on_call_specialist
        )
        actions.submit_consult(consult, by=physician)
    assert list(consult.offers.values_list("specialist_id", flat=True)) == [on_call_specialist.pk]
    run_check(START + dt.timedelta(minutes=61), django_capture_on_commit_callbacks)
    consult.refresh_from_db()
    assert consult.target_specialist is None
    actions.accept_consult(consult, by=off_duty_specialist)
    assert consult.assignee == off_duty_specialist


def test_overdue_named_consult_without_pool_stays_with_the_named_specialist(
    physician, study, on_call_specialist, off_duty_specialist, django_capture_on_commit_callbacks
):
    with time_machine.travel(START, tick=False):
        consult = ConsultFactory(
            requester=physician, study=study, priority="stat", target_specialist=on_call_specialist, specialty=""
        )
        actions.submit_consult(consult, by=physician)
    run_check(START + dt.timedelta(minutes=61), django_capture_on_commit_callbacks)
    consult.refresh_from_db()
    assert consult.target_specialist == on_call_specialist
    assert list(consult.offers.values_list("specialist_id", flat=True)) == [on_call_specialist.pk]
    assert Notification.objects.filter(kind="escalation", user=physician).exists()
