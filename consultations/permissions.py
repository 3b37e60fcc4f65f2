"""The one place that answers "may this user see this consult?".

A consult the user may not see is a 404 for them, so its existence does not leak.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from studies.models import Study

from . import transitions
from .models import ConsultRequest, Report, State


def _care_team(user) -> Q:
    """The requester while they may still see the study (a member who leaves the practice leaves
    its consults too), colleagues on the consult and the specialist who took it (their access to
    the study is the consult's own grant)."""
    still_sees = Study.objects.visible_to(user).values("pk")
    return (
        Q(requester=user, study_id__in=still_sees)
        | Q(participants__user=user, participants__removed_at__isnull=True)
        | Q(assignee=user)
    )


def _open_offer(user) -> Q:
    """Offered to ``user`` and still waiting: the named specialist, or a pool specialist who has not
    declined. The offer ends the moment someone claims the consult or it is cancelled."""
    offered = Q(target_specialist=user) | Q(offers__specialist=user, offers__declined_at__isnull=True)
    return offered & Q(state=State.SUBMITTED)


def visible_consults(user):
    """Requester, colleagues on the consult, the assignee, specialists it is offered to while the
    offer stands, the patient (once submitted) and administrators."""
    if not user or not user.is_authenticated or not user.is_active:
        return ConsultRequest.objects.none()
    if user.is_admin:
        return ConsultRequest.objects.all()
    if user.is_patient:
        return ConsultRequest.objects.filter(study__patient__account=user).exclude(state=State.DRAFT)
    return ConsultRequest.objects.filter(_care_team(user) | _open_offer(user)).distinct()


def requested_or_joined(user):
    """A physician's own consults: those they asked for while they still see the study, and those a
    colleague added them to (``visible_consults`` narrowed to them, read without its other paths)."""
    still_sees = Study.objects.visible_to(user).values("pk")
    return ConsultRequest.objects.filter(
        Q(requester=user, study_id__in=still_sees) | Q(participants__user=user, participants__removed_at__isnull=True)
    ).distinct()


def may_request_consult(user) -> bool:
    """Physicians and administrators ask for consults, once a practice has admitted them (the rule
    ``actions.create_consult`` enforces); patients never do."""
    if not user or not user.is_authenticated:
        return False
    return (user.is_physician or user.is_admin) and user.has_clinical_access


def care_team_ids(user) -> set[int]:
    """The consults ``user`` is on the care team of."""
    return set(ConsultRequest.objects.filter(_care_team(user)).values_list("pk", flat=True))


def is_offer_only(user, consult: ConsultRequest, *, care_team: set[int] | None = None) -> bool:
    """``user`` sees ``consult`` only as an offer: what they need to decide (question, priority,
    modality, body part), not whose it is, its history, attachments or reports. ``care_team``: the
    user's ``care_team_ids``, when a caller checks many consults."""
    if user.is_admin or user.is_patient or user.pk in (consult.requester_id, consult.assignee_id):
        return False
    if care_team is not None:
        return consult.pk not in care_team
    return not ConsultRequest.objects.filter(_care_team(user), pk=consult.pk).exists()


def get_consult_to_claim(user, pk) -> ConsultRequest:
    """For accept: the consult while offered to ``user``, and also once their offer has ended (so
    a specialist a moment too late is told who took it, not that the consult does not exist)."""
    try:
        return get_consult_for_user(user, pk, offer_view=True)
    except Http404:
        offered = (Q(target_specialist=user) | Q(offers__specialist=user)) & ~Q(state=State.DRAFT)
        consult = ConsultRequest.objects.filter(offered, pk=pk if str(pk).isdigit() else 0).distinct().first()
        if consult is None:
            raise
        return consult


def get_consult_for_user(user, pk, *, offer_view: bool = False) -> ConsultRequest:
    """The consult when ``user`` may see it; Http404 otherwise. A specialist who only holds an offer
    gets it where ``offer_view`` says the route shows only the offer (its page, accept, decline)."""
    try:
        consult = visible_consults(user).select_related("study__patient", "requester", "assignee").get(pk=int(pk))
    except (ConsultRequest.DoesNotExist, ValueError, TypeError):
        raise Http404("No such consult.") from None
    if not offer_view and is_offer_only(user, consult):
        raise Http404("No such consult.")
    return consult


def visible_reports(user, consult: ConsultRequest):
    """Report versions this user may read: patients and the referring side see signed ones only;
    the assignee also sees their draft."""
    reports = consult.reports.select_related("signed_by", "author").order_by("version")
    if user.pk == consult.assignee_id or user.is_admin:
        return reports
    return reports.filter(signed_at__isnull=False)


def report_for_user(user, consult: ConsultRequest) -> Report | None:
    """The newest version this user may read."""
    return visible_reports(user, consult).order_by("-version").first()


def allowed_actions(user, consult: ConsultRequest) -> list[str]:
    """The transitions this user may try now, for buttons and the API: read from the one table
    (``consultations.transitions``) that the model guards check too."""
    return transitions.allowed_actions(user, consult)
