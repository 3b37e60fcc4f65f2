"""Live worklists: who is told when a consult changes, and what.

``consultations.actions`` calls ``changed(consult, change, by=...)`` inside its transaction. The
audience is worked out there and then (the offers and the care team as the change leaves them);
after commit each person's open tabs get one ``worklist.changed`` frame over
``/ws/notifications/``, so the worklist and "My consults" refresh without a reload.

The audience is the people who may see the consult: the specialists it is (or was, until this
change ended their offer) offered to, the assignee and the referring side (the requester and the
colleagues on it). A frame carries the consult's id, priority and state and a sentence for that
person, never patient details.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.models import User

from .groups import notifications_group
from .models import ConsultRequest

# How each person stands to the consult; the first that applies wins.
NEW_OFFER, ASSIGNEE, REFERRING, OFFER = "new_offer", "assignee", "referring", "offer"

# Changes that concern the specialists holding an offer; the rest (chat, report, questions) only
# concern the care team.
OFFER_CHANGES = frozenset({"offered", "accepted", "declined", "cancelled"})

# (change, how the person stands) -> the toast they see; anything else refreshes silently.
TOASTS = {
    ("offered", NEW_OFFER): "New {priority} consult #{id} offered to you.",
    ("accepted", OFFER): "Consult #{id} was accepted by another specialist.",
    ("accepted", REFERRING): "Consult #{id} accepted by {by}.",
    ("declined", REFERRING): "Consult #{id} declined by {by}.",
    ("cancelled", OFFER): "Consult #{id} was cancelled.",
    ("cancelled", ASSIGNEE): "Consult #{id} was cancelled.",
}


def _priority_word(consult: ConsultRequest) -> str:
    return "STAT" if consult.priority == "stat" else consult.get_priority_display().lower()


def audience(consult: ConsultRequest, change: str, *, newly_offered=(), also=()) -> dict[int, str]:
    """User id -> how that user stands to the consult, for everyone told about ``change``."""
    people: dict[int, str] = {}

    def add(user_ids, relation: str) -> None:
        for user_id in user_ids:
            if user_id is not None:
                people.setdefault(user_id, relation)

    add([getattr(u, "pk", u) for u in newly_offered], NEW_OFFER)
    add([consult.assignee_id], ASSIGNEE)
    add([consult.requester_id], REFERRING)
    add(consult.participants.filter(removed_at__isnull=True).values_list("user_id", flat=True), REFERRING)
    if change in OFFER_CHANGES:
        add([consult.target_specialist_id], OFFER)
        add(consult.offers.filter(declined_at__isnull=True).values_list("specialist_id", flat=True), OFFER)
    add([getattr(u, "pk", u) for u in also], OFFER)
    return people


def frame(consult: ConsultRequest, change: str, message: str) -> dict:
    return {
        "type": "worklist.changed",
        "change": change,
        "consult": {"id": consult.pk, "priority": consult.priority, "state": consult.state},
        "message": message,
    }


def changed(consult: ConsultRequest, change: str, *, by=None, newly_offered=(), also=()) -> None:
    """Tell everyone who may see ``consult`` that it changed, after commit. ``newly_offered``: the
    specialists this change offered it to; ``also``: people this change took it away from (a
    colleague removed, a specialist who declined), whose lists must drop it. The person who made
    the change gets the frame too (for their other tabs) but no toast."""
    people = audience(consult, change, newly_offered=newly_offered, also=also)
    active = set(User.objects.filter(pk__in=people, is_active=True).values_list("pk", flat=True))
    words = {"id": consult.pk, "priority": _priority_word(consult), "by": getattr(by, "display_name", "")}
    frames = []
    for user_id, relation in people.items():
        if user_id not in active:
            continue
        toast = TOASTS.get((change, relation), "")
        message = "" if by is not None and user_id == by.pk else toast.format(**words)
        frames.append((user_id, frame(consult, change, message)))
    transaction.on_commit(lambda: send(frames))


def send(frames: list[tuple[int, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for user_id, event in frames:
        async_to_sync(layer.group_send)(notifications_group(user_id), event)
