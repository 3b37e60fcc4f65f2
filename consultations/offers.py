"""Routing: which specialists a consult is offered to.

A consult addressed to a named specialist is offered to them alone. A pool consult is offered to
approved, active, unsuspended specialists who accept consults, practise the specialty and are
licensed where the patient is, and who are on call now in their own time zone; when none of them is
on call, to all who otherwise match. Escalation offers it to every match regardless of on-call.

"Licensed" is ``accounts.licences``' rule: under ``TELECONSULT_LICENCE_RULE``, a licence for the
consult's jurisdiction (or its whole country) that an administrator verified and that has not
expired today, for pool and named specialist alike; without it, the profile's jurisdictions.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from accounts import licences
from accounts.models import Role, SpecialistProfile

from .models import ConsultOffer, ConsultRequest


@dataclass(frozen=True)
class Routing:
    """Who a consult went to: the new offers, and the timeline's account of it."""

    offers: list[ConsultOffer]
    message: str
    to: list[int]


def matching_profiles(consult: ConsultRequest) -> list[SpecialistProfile]:
    profiles = (
        SpecialistProfile.objects.filter(
            approved_at__isnull=False,
            suspended_at__isnull=True,
            accepting_consults=True,
            user__is_active=True,
            user__role=Role.SPECIALIST,
            user__memberships__isnull=False,  # a specialist no practice or reading group admitted takes none
        )
        .distinct()
        .select_related("user")
    )
    licensed = licences.licensed_user_ids(consult.jurisdiction) if licences.rule_applies() else None
    return [
        profile
        for profile in profiles
        if consult.specialty in profile.specialties
        and (profile.user_id in licensed if licensed is not None else profile.licensed_in(consult.jurisdiction))
        and profile.user_id != consult.requester_id
    ]


def _offer(consult: ConsultRequest, users, reason: str) -> list[ConsultOffer]:
    """Create offers for users who have none yet; return the new ones."""
    already = set(consult.offers.values_list("specialist_id", flat=True))
    now = timezone.now()
    created = [
        ConsultOffer.objects.create(consult=consult, specialist=user, reason=reason, offered_at=now)
        for user in users
        if user.pk not in already
    ]
    return created


def route(consult: ConsultRequest, at=None) -> Routing:
    """Offer a just-submitted consult (``actions`` records the routing on the timeline)."""
    at = at or timezone.now()
    if consult.target_specialist_id:
        target = consult.target_specialist
        if licences.rule_applies() and not licences.is_licensed(target, consult.jurisdiction):
            raise licences.LicenceRequiredError(
                f"{target.display_name} holds no verified licence for {consult.jurisdiction} valid today: "
                "choose another specialist or a specialty pool.",
                jurisdiction=consult.jurisdiction,
            )
        # A specialist who declined before and is named again gets a fresh offer.
        consult.offers.filter(specialist=target).update(declined_at=None, decline_reason="")
        offers = _offer(consult, [target], ConsultOffer.Reason.TARGET)
        return Routing(offers, f"Offered to {target.display_name}.", [target.pk])
    profiles = matching_profiles(consult)
    on_call = [p for p in profiles if p.is_on_call(at)]
    chosen, reason = (on_call, ConsultOffer.Reason.ON_CALL) if on_call else (profiles, ConsultOffer.Reason.MATCHING)
    offers = _offer(consult, [p.user for p in chosen], reason)
    if not profiles:
        message = "No specialist matches this specialty and jurisdiction yet."
    elif on_call:
        message = f"Offered to {len(chosen)} on-call specialist(s)."
    else:
        message = f"Nobody is on call: offered to all {len(chosen)} matching specialist(s)."
    return Routing(offers, message, [p.user_id for p in chosen])


def offer_to_every_match(consult: ConsultRequest) -> list[ConsultOffer]:
    """Escalation: every matching specialist, on call or not (declined offers stay declined)."""
    if not consult.specialty:
        return []
    return _offer(consult, [p.user for p in matching_profiles(consult)], ConsultOffer.Reason.ESCALATION)


def pool_users(consult: ConsultRequest) -> list:
    """Specialists who currently hold an open offer."""
    return [offer.specialist for offer in consult.offers.filter(declined_at__isnull=True).select_related("specialist")]
