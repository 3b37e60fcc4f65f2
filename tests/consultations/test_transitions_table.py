"""The transitions table drives the guards, the buttons and the API's ``actions``: for every state,
every person and every listed action, ``allowed_actions`` offers exactly what the model lets
through."""

from __future__ import annotations

import types

import pytest
from django.db import transaction
from django.utils import timezone

from consultations import permissions, transitions
from consultations.errors import ConsultError, IllegalTransitionError, NotAllowedError
from consultations.models import ConsultOffer, ConsultParticipant, ConsultRequest, State
from consultations.transitions import TRANSITIONS
from tests.factories import SpecialistFactory


class RolledBackError(Exception):  # raised to undo a transition that went through
    pass


# action -> how the model method is called (valid input, so only the guard can refuse)
CALLS = {
    "submit": lambda c, u: c.submit(by=u),
    "accept": lambda c, u: c.accept(by=u),
    "decline": lambda c, u: c.decline(by=u, reason="Out of office."),
    "cancel": lambda c, u: c.cancel(by=u),
    "request-info": lambda c, u: c.request_info(by=u, question="Prior imaging?"),
    "answer-info": lambda c, u: c.answer_info(by=u, answer="None."),
    "report": lambda c, u: c.mark_reported(by=u, report=types.SimpleNamespace(signed_at=timezone.now(), version=1)),
    "close": lambda c, u: c.close(by=u),
    # An addendum starts from a signed version; the guard is what the table decides.
    "addendum": lambda c, u: c.require("addendum", u),
}


def model_lets(consult: ConsultRequest, action: str, user) -> bool:
    """Run the model's transition in a transaction that is rolled back; True if it went through."""
    try:
        with transaction.atomic():
            fresh = ConsultRequest.objects.get(pk=consult.pk)
            CALLS[action](fresh, user)
            raise RolledBackError
    except RolledBackError:
        return True
    except ConsultError:
        return False


@pytest.fixture
def people(consult, physician, colleague, specialist, outsider, patient_user, admin_user):
    """Everyone who might press a button: requester, colleague on the case, the specialist who
    takes it, another with an open offer, one whose offer was declined, one never offered it,
    an outsider, the patient and an administrator."""
    ConsultParticipant.objects.create(consult=consult, user=colleague, added_by=physician)
    pool = SpecialistFactory(email="pool@example.com", name="Dr Pool")
    declined = SpecialistFactory(email="declined@example.com", name="Dr Declined")
    stranger = SpecialistFactory(email="stranger@example.com", name="Dr Stranger")
    ConsultOffer.objects.get_or_create(consult=consult, specialist=pool, defaults={"reason": "matching"})
    ConsultOffer.objects.update_or_create(
        consult=consult, specialist=declined, defaults={"reason": "matching", "declined_at": timezone.now()}
    )
    return {
        "requester": physician,
        "colleague": colleague,
        "assignee": specialist,
        "pool": pool,
        "declined": declined,
        "stranger": stranger,
        "outsider": outsider,
        "patient": patient_user,
        "admin": admin_user,
    }


@pytest.mark.parametrize("state", list(State))
def test_allowed_actions_offer_exactly_what_the_model_lets_through(consult, people, specialist, state):
    assignee = specialist if state in transitions.TAKEN_STATES else None
    ConsultRequest.objects.filter(pk=consult.pk).update(state=state, assignee=assignee)
    consult.refresh_from_db()
    for who, user in people.items():
        offered = permissions.allowed_actions(user, consult)
        for action in CALLS:
            assert (action in offered) == model_lets(consult, action, user), (state, who, action)


def test_every_listed_action_has_a_model_call_in_this_test():
    assert {action for action, rule in TRANSITIONS.items() if rule.listed} == set(CALLS)


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_the_guard_refuses_the_wrong_state_with_409_and_the_wrong_person_with_403(consult, outsider, action):
    rule = TRANSITIONS[action]
    outside = [s for s in State if s not in rule.states]
    if outside:
        consult.state = outside[0]
        with pytest.raises(IllegalTransitionError) as refused:
            transitions.require_state(consult, action)
        assert refused.value.status == 409
    with pytest.raises(NotAllowedError) as refused:
        transitions.require_actor(consult, action, outsider)
    assert refused.value.status == 403
