"""Every write of a consult goes through consultations.actions: the SLA clock and routing decide,
the actions module writes the consult and its timeline."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
import time_machine

from consultations import actions, sla
from consultations.models import ConsultEvent, ConsultRequest
from tests.factories import ConsultFactory, SpecialistFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _writer() -> str:
    """The first module outside the models that led to this write."""
    for frame in inspect.stack()[2:]:
        module = frame.frame.f_globals.get("__name__", "")
        if not module.startswith("consultations.models"):
            return module
    return ""


@pytest.fixture
def writers(monkeypatch):
    """(event kind, module that wrote it) for every timeline entry written during the test."""
    seen: list[tuple[str, str]] = []
    record_event = ConsultRequest.record_event
    save = ConsultRequest.save

    def recording(self, kind, *args, **kwargs):
        seen.append((kind, _writer()))
        return record_event(self, kind, *args, **kwargs)

    def saving(self, *args, **kwargs):
        seen.append(("save", _writer()))
        return save(self, *args, **kwargs)

    monkeypatch.setattr(ConsultRequest, "record_event", recording)
    monkeypatch.setattr(ConsultRequest, "save", saving)
    return seen


def test_routing_and_the_sla_clock_write_the_consult_through_actions(physician, study, writers):
    SpecialistFactory(email="pool@example.com", name="Dr Pool")
    with time_machine.travel(START, tick=False):
        consult = ConsultFactory(requester=physician, study=study, priority="stat")
        writers.clear()
        actions.submit_consult(consult, by=physician)
    assert sla.check_consult(consult.pk, now=START + dt.timedelta(days=1)) == (True, True)

    kinds = [kind for kind, _ in writers if kind != "save"]
    assert kinds == ["submitted", "offered", "sla_warning", "sla_overdue", "escalated"]
    assert {module for _, module in writers} == {"consultations.actions"}
    consult.refresh_from_db()
    assert consult.sla_warned_at and consult.sla_overdue_at
    assert list(consult.events.values_list("kind", flat=True))[-3:] == [
        ConsultEvent.Kind.SLA_WARNING,
        ConsultEvent.Kind.SLA_OVERDUE,
        ConsultEvent.Kind.ESCALATED,
    ]


def test_an_overdue_named_consult_is_released_to_the_pool_through_actions(physician, study, specialist, writers):
    with time_machine.travel(START, tick=False):
        consult = ConsultFactory(requester=physician, study=study, priority="stat", target_specialist=specialist)
        actions.submit_consult(consult, by=physician)
    writers.clear()
    sla.check_consult(consult.pk, now=START + dt.timedelta(days=1))
    consult.refresh_from_db()
    assert consult.target_specialist is None
    assert {module for _, module in writers} == {"consultations.actions"}


def test_cancel_and_removing_a_colleague_end_access_the_same_way(consult, physician, colleague, monkeypatch):
    from studies import permissions as study_permissions

    revoked = []
    revoke_access = study_permissions.revoke_access

    def counting(**kwargs):
        revoked.append(kwargs["user"].pk)
        return revoke_access(**kwargs)

    monkeypatch.setattr("consultations.models.consults.revoke_access", counting)
    consult.add_participant(by=physician, user=colleague)
    consult.remove_participant(by=physician, user=colleague)
    assert revoked == [colleague.pk]
    other = SpecialistFactory(email="second-opinion@example.com", name="Dr Other")
    consult.add_participant(by=physician, user=other)
    actions.cancel_consult(consult, by=physician)
    assert revoked == [colleague.pk, other.pk]
    assert not study_permissions.can_view_study(other, consult.study)


def test_signing_a_report_and_an_addendum_write_the_consult_through_actions(accepted, specialist, writers):
    from consultations import reports
    from tests.factories import PASSWORD

    reports.save_draft(accepted, by=specialist, findings="Clear lungs.", impression="Normal.")
    writers.clear()
    reports.sign_report(accepted, by=specialist, password=PASSWORD)
    reports.start_addendum(accepted, by=specialist, reason="Late comparison")
    reports.save_draft(accepted, by=specialist, findings="Clear lungs. Stable.", impression="Normal.")
    reports.sign_report(accepted, by=specialist, password=PASSWORD)
    kinds = [kind for kind, _ in writers if kind != "save"]
    assert kinds == ["reported", "addendum"]
    assert {module for _, module in writers} == {"consultations.actions"}


@pytest.mark.django_db(transaction=True)
def test_the_sla_steps_refuse_to_run_outside_the_clocks_lock(accepted):
    with pytest.raises(RuntimeError, match="check_consult"):
        actions.warn_due_soon(accepted, START)
