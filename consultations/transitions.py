"""The consult's states and the one table of who may do what from which state.

``TRANSITIONS`` maps an action to the states it may start from and who may take it. The model
guards (``ConsultRequest.require``), ``allowed_actions`` (the buttons on the pages and the API's
``actions`` field) and the modules that change a consult all read it; no other place spells a
state list or an actor rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models

from .errors import IllegalTransitionError, NotAllowedError


class State(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Waiting for a specialist"
    ACCEPTED = "accepted", "Accepted"
    INFO_REQUESTED = "info_requested", "Information requested"
    REPORTED = "reported", "Reported"
    CLOSED = "closed", "Closed"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATES = (State.SUBMITTED, State.ACCEPTED, State.INFO_REQUESTED)
# States in which the SLA clock runs.
CLOCK_STATES = OPEN_STATES
# A specialist has taken the consult (it has an assignee).
TAKEN_STATES = (State.ACCEPTED, State.INFO_REQUESTED, State.REPORTED, State.CLOSED)
# Taken and not yet answered.
IN_REVIEW_STATES = (State.ACCEPTED, State.INFO_REQUESTED)
# On the assignee's worklist: taken and not yet closed.
WORKLIST_STATES = (State.ACCEPTED, State.INFO_REQUESTED, State.REPORTED)
# Nothing more is added to a consult in these states.
ENDED_STATES = (State.CANCELLED, State.CLOSED)

ALL_STATES = tuple(State)


def _except(*states: str) -> tuple[str, ...]:
    return tuple(s for s in State if s not in states)


# -- who ----------------------------------------------------------------------------------------
# Each answers None when ``user`` may act on ``consult``, otherwise the reason they may not.

Who = Callable[[Any, Any], "str | None"]


def only(test: Callable[[Any, Any], bool], refusal: str) -> Who:
    return lambda consult, user: None if test(consult, user) else refusal


def is_requester(consult, user) -> bool:
    return user.pk == consult.requester_id


def is_referring(consult, user) -> bool:
    """The requester and the colleagues they added act for the referring side."""
    return consult.may_requester_act(user)


def is_assignee(consult, user) -> bool:
    return user.pk == consult.assignee_id


def _claimant(consult, user) -> str | None:
    if not user.may_take_consults:
        return "Only an approved specialist may accept a consult."
    if consult.target_specialist_id and consult.target_specialist_id != user.pk:
        return "This consult is addressed to another specialist."
    if not consult.target_specialist_id and not consult.has_open_offer(user):
        return "This consult was not offered to you."
    return None


def _offered(consult, user) -> bool:
    return consult.target_specialist_id == user.pk or consult.has_open_offer(user)


REQUESTER_ONLY = "Only the requesting physician may {verb} this consult."
ASSIGNEE_ONLY = "Only the specialist who accepted this consult may {what}."


@dataclass(frozen=True)
class Transition:
    """``states``: where the action may start from. ``who``: the actor rule. ``verb`` completes
    "Cannot ... a consult that is ...". ``listed``: offered as a button / in the API's ``actions``
    (the others are steps inside another change). ``state_first``: the state is checked before the
    actor (a claim that came too late is told so, whoever made it). ``name_states``: the refusal
    lists the states the action is allowed in."""

    states: tuple[str, ...]
    who: Who
    verb: str
    listed: bool = True
    state_first: bool = False
    name_states: bool = True


TRANSITIONS: dict[str, Transition] = {
    "submit": Transition(
        (State.DRAFT, State.DECLINED), only(is_requester, REQUESTER_ONLY.format(verb="submit")), "submit"
    ),
    "accept": Transition((State.SUBMITTED,), _claimant, "accept", state_first=True),
    "decline": Transition(
        (State.SUBMITTED,),
        only(_offered, "Only a specialist this consult was offered to may decline it."),
        "decline",
        state_first=True,
    ),
    "cancel": Transition(
        (State.DRAFT, State.SUBMITTED, State.ACCEPTED, State.INFO_REQUESTED, State.DECLINED),
        only(is_requester, REQUESTER_ONLY.format(verb="cancel")),
        "cancel",
    ),
    "request-info": Transition(
        (State.ACCEPTED,),
        only(is_assignee, ASSIGNEE_ONLY.format(what="request information on it")),
        "request information on",
    ),
    "report": Transition(
        (State.ACCEPTED,), only(is_assignee, ASSIGNEE_ONLY.format(what="sign its report")), "sign a report on"
    ),
    "answer-info": Transition(
        (State.INFO_REQUESTED,),
        only(is_referring, "Only the requesting physician or a colleague on the consult may answer."),
        "answer",
    ),
    "addendum": Transition(
        (State.REPORTED, State.CLOSED),
        only(is_assignee, ASSIGNEE_ONLY.format(what="add an addendum to its report")),
        "add an addendum to",
    ),
    "close": Transition(
        (State.REPORTED,),
        only(lambda c, u: is_requester(c, u) or u.is_admin, REQUESTER_ONLY.format(verb="close")),
        "close",
    ),
    # Steps inside other changes, not buttons of their own.
    "write-report": Transition(
        TAKEN_STATES,
        only(is_assignee, ASSIGNEE_ONLY.format(what="write its report")),
        "write a report on",
        listed=False,
        name_states=False,
    ),
    "add-participant": Transition(
        _except(*ENDED_STATES),
        only(is_requester, REQUESTER_ONLY.format(verb="add colleagues to")),
        "add colleagues to",
        listed=False,
        name_states=False,
    ),
    "remove-participant": Transition(
        ALL_STATES,
        only(is_requester, REQUESTER_ONLY.format(verb="remove colleagues from")),
        "remove colleagues from",
        listed=False,
    ),
    "withdraw-invitation": Transition(
        ALL_STATES,
        only(is_requester, REQUESTER_ONLY.format(verb="withdraw invitations to")),
        "withdraw invitations to",
        listed=False,
    ),
    "attach": Transition(
        _except(*ENDED_STATES),
        only(
            lambda c, u: is_referring(c, u) or is_assignee(c, u),
            "Only people working on this consult may attach files.",
        ),
        "attach files to",
        listed=False,
        name_states=False,
    ),
    "export-sr": Transition(
        ALL_STATES,
        only(
            lambda c, u: u.pk in (c.assignee_id, c.requester_id),
            "Only the requester and the specialist on this consult may export its measurements.",
        ),
        "export measurements of",
        listed=False,
    ),
}


def state_refusal(consult, action: str) -> str | None:
    """Why ``action`` cannot start from the consult's state, or None when it can."""
    rule = TRANSITIONS[action]
    if consult.state in rule.states:
        return None
    message = f"Cannot {rule.verb} a consult that is {State(consult.state).label.lower()}"
    if rule.name_states:
        message += f" (only when {', '.join(State(s).label.lower() for s in rule.states)})"
    return message + "."


def require(consult, action: str, user) -> None:
    """The guard: raises NotAllowedError (wrong person, 403) or IllegalTransitionError (wrong
    state, 409), in the order the table gives."""
    rule = TRANSITIONS[action]
    checks = [_check_state, _check_actor]
    for check in checks if rule.state_first else reversed(checks):
        check(consult, action, user)


def require_state(consult, action: str) -> None:
    _check_state(consult, action, None)


def require_actor(consult, action: str, user) -> None:
    _check_actor(consult, action, user)


def _check_state(consult, action: str, user) -> None:
    refusal = state_refusal(consult, action)
    if refusal is not None:
        raise IllegalTransitionError(refusal)


def _check_actor(consult, action: str, user) -> None:
    refusal = TRANSITIONS[action].who(consult, user)
    if refusal is not None:
        raise NotAllowedError(refusal)


def may(user, consult, action: str) -> bool:
    """Whether ``require`` would let ``user`` start ``action`` now (state read first: it is free)."""
    rule = TRANSITIONS[action]
    return consult.state in rule.states and rule.who(consult, user) is None


def allowed_actions(user, consult) -> list[str]:
    """The listed transitions ``user`` may try now, in the table's order."""
    return [action for action, rule in TRANSITIONS.items() if rule.listed and may(user, consult, action)]
