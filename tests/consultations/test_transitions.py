"""Every consult transition, who may make it, and every illegal one."""

from __future__ import annotations

import datetime as dt

import pytest

from consultations import actions, reports
from consultations.models import (
    AlreadyTakenError,
    ConsultEvent,
    ConsultOffer,
    ConsultRequest,
    IllegalTransitionError,
    NotAllowedError,
    State,
)
from studies.models import AccessGrant
from studies.permissions import can_view_study
from tests.factories import ConsultFactory, SpecialistFactory

pytestmark = pytest.mark.django_db


def kinds(consult):
    return list(consult.events.values_list("kind", flat=True))


def sign(consult, specialist, password):
    reports.save_draft(consult, by=specialist, findings="No bleed.", impression="Normal CT head.")
    return reports.sign_report(consult, by=specialist, password=password)


def test_submit_sets_due_time_and_offers_to_the_pool(consult, specialist, settings):
    assert consult.state == State.SUBMITTED
    window = dt.timedelta(minutes=settings.TELECONSULT_SLA_MINUTES["routine"])
    assert consult.due_at == consult.submitted_at + window
    assert list(consult.offers.values_list("specialist", flat=True)) == [specialist.pk]
    assert kinds(consult) == ["submitted", "offered"]


@pytest.mark.parametrize(("priority", "minutes"), [("stat", 60), ("urgent", 240), ("routine", 2880)])
def test_due_time_follows_priority(physician, study, priority, minutes):
    consult = ConsultFactory(requester=physician, study=study, priority=priority)
    actions.submit_consult(consult, by=physician)
    assert (consult.due_at - consult.submitted_at).total_seconds() == minutes * 60


def test_only_the_requester_submits(draft, colleague):
    with pytest.raises(NotAllowedError, match="requesting physician"):
        draft.submit(by=colleague)


def test_submitting_twice_is_illegal(consult, physician):
    with pytest.raises(IllegalTransitionError, match="waiting for a specialist"):
        consult.submit(by=physician)


def test_accept_claims_and_grants_study_access(accepted, specialist, physician):
    assert accepted.state == State.ACCEPTED
    assert accepted.assignee == specialist
    assert can_view_study(specialist, accepted.study)
    grant = AccessGrant.objects.get(user=specialist, study=accepted.study)
    assert grant.reason == AccessGrant.Reason.CONSULT and grant.source == str(accepted.pk)
    assert kinds(accepted)[-1] == "accepted"


def test_second_accept_is_refused_naming_who_took_it(accepted, other_specialist):
    ConsultOffer.objects.create(consult=accepted, specialist=other_specialist, reason="matching")
    with pytest.raises(AlreadyTakenError, match="Dr Specialist already accepted"):
        accepted.accept(by=other_specialist)


def test_specialist_without_offer_cannot_accept(consult):
    stranger = SpecialistFactory(email="cardio@example.com", profile__specialties=["cardiac"])
    with pytest.raises(NotAllowedError, match="not offered"):
        consult.accept(by=stranger)


def test_physician_cannot_accept(consult, physician):
    with pytest.raises(NotAllowedError, match="approved specialist"):
        consult.accept(by=physician)


def test_draft_cannot_be_accepted(draft, specialist):
    with pytest.raises(IllegalTransitionError, match="draft"):
        draft.accept(by=specialist)


def test_named_specialist_declines_back_to_the_pool(physician, study, specialist, other_specialist):
    consult = ConsultFactory(requester=physician, study=study, target_specialist=specialist)
    actions.submit_consult(consult, by=physician)
    assert list(consult.offers.values_list("specialist", flat=True)) == [specialist.pk]
    assert actions.decline_consult(consult, by=specialist, reason="On leave.") == "pool"
    consult.refresh_from_db()
    assert consult.state == State.SUBMITTED and consult.target_specialist is None
    assert set(consult.offers.filter(declined_at__isnull=True).values_list("specialist", flat=True)) == {
        other_specialist.pk
    }


def test_named_specialist_without_pool_returns_it_to_the_requester(physician, study, specialist):
    consult = ConsultFactory(requester=physician, study=study, target_specialist=specialist, specialty="")
    actions.submit_consult(consult, by=physician)
    assert actions.decline_consult(consult, by=specialist, reason="Not my field.") == "requester"
    consult.refresh_from_db()
    assert consult.state == State.DECLINED
    assert "Not my field." in consult.events.last().message
    # The requester may name someone else and submit again.
    other = SpecialistFactory(email="other@example.com")
    consult.target_specialist = other
    consult.save()
    actions.submit_consult(consult, by=physician)
    consult.refresh_from_db()
    assert consult.state == State.SUBMITTED


def test_pool_specialist_declines_only_their_offer(consult, specialist):
    assert actions.decline_consult(consult, by=specialist, reason="Busy.") == "offer"
    consult.refresh_from_db()
    assert consult.state == State.SUBMITTED
    assert not ConsultRequest.objects.offered_to(specialist).exists()


def test_decline_needs_a_reason(consult, specialist):
    with pytest.raises(IllegalTransitionError, match="reason"):
        consult.decline(by=specialist, reason="  ")


def test_decline_after_accept_is_illegal(accepted, specialist):
    with pytest.raises(IllegalTransitionError, match="accepted"):
        accepted.decline(by=specialist, reason="Changed my mind.")


def test_outsider_specialist_cannot_decline(consult):
    stranger = SpecialistFactory(email="x@example.com")
    with pytest.raises(NotAllowedError):
        consult.decline(by=stranger, reason="No.")


def test_cancel_revokes_consult_access(accepted, physician, specialist):
    actions.cancel_consult(accepted, by=physician, reason="Patient transferred.")
    accepted.refresh_from_db()
    assert accepted.state == State.CANCELLED
    assert not can_view_study(specialist, accepted.study)
    assert kinds(accepted)[-1] == "cancelled"


def test_only_requester_cancels(consult, specialist):
    with pytest.raises(NotAllowedError):
        consult.cancel(by=specialist)


def test_cannot_cancel_after_report(accepted, physician, specialist, password):
    sign(accepted, specialist, password)
    with pytest.raises(IllegalTransitionError, match="reported"):
        accepted.cancel(by=physician)


def test_request_and_answer_info(accepted, specialist, physician):
    actions.request_info(accepted, by=specialist, question="Any prior imaging?")
    assert accepted.state == State.INFO_REQUESTED
    actions.answer_info(accepted, by=physician, answer="CT from 2024 attached.")
    assert accepted.state == State.ACCEPTED
    assert kinds(accepted)[-2:] == ["info_requested", "info_answered"]


def test_request_info_only_by_assignee(accepted, physician):
    with pytest.raises(NotAllowedError):
        accepted.request_info(by=physician, question="?")


def test_answer_without_request_is_illegal(accepted, physician):
    with pytest.raises(IllegalTransitionError, match="answer"):
        accepted.answer_info(by=physician, answer="Nothing asked.")


def test_answer_only_by_referring_side(accepted, specialist, outsider):
    accepted.request_info(by=specialist, question="History?")
    with pytest.raises(NotAllowedError):
        accepted.answer_info(by=outsider, answer="?")


def test_colleague_on_the_consult_may_answer(accepted, specialist, physician, colleague):
    actions.add_participant(accepted, by=physician, user=colleague)
    accepted.request_info(by=specialist, question="History?")
    accepted.answer_info(by=colleague, answer="Known epilepsy.")
    assert accepted.state == State.ACCEPTED


def test_sign_reports_the_consult(accepted, specialist, password):
    report = sign(accepted, specialist, password)
    accepted.refresh_from_db()
    assert accepted.state == State.REPORTED
    assert report.signed_by == specialist and report.verify_hash()
    assert kinds(accepted)[-1] == "reported"


def test_close_after_report(accepted, specialist, physician, password):
    sign(accepted, specialist, password)
    accepted.refresh_from_db()
    actions.close_consult(accepted, by=physician)
    assert accepted.state == State.CLOSED
    assert kinds(accepted)[-1] == "closed"


def test_close_before_report_is_illegal(accepted, physician):
    with pytest.raises(IllegalTransitionError, match="only when reported"):
        accepted.close(by=physician)


def test_specialist_cannot_close(accepted, specialist, password):
    sign(accepted, specialist, password)
    accepted.refresh_from_db()
    with pytest.raises(NotAllowedError):
        accepted.close(by=specialist)


def test_participant_gets_and_loses_access(consult, physician, colleague):
    assert not can_view_study(colleague, consult.study)
    actions.add_participant(consult, by=physician, user=colleague)
    assert can_view_study(colleague, consult.study)
    actions.remove_participant(consult, by=physician, user=colleague)
    assert not can_view_study(colleague, consult.study)
    assert kinds(consult)[-2:] == ["participant_added", "participant_removed"]


def test_only_requester_adds_participants(consult, colleague, outsider):
    with pytest.raises(NotAllowedError):
        consult.add_participant(by=colleague, user=outsider)


def test_patient_cannot_be_added_as_participant(consult, physician, patient_user):
    with pytest.raises(IllegalTransitionError, match="physicians and specialists"):
        consult.add_participant(by=physician, user=patient_user)


def test_every_event_names_its_actor(accepted, physician, specialist):
    actors = dict(accepted.events.values_list("kind", "actor"))
    assert actors["submitted"] == physician.pk
    assert actors["accepted"] == specialist.pk
    assert ConsultEvent.objects.filter(consult=accepted, kind="offered", actor__isnull=True).exists()
