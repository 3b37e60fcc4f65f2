"""Every change of a consult, and what it tells people: the one writer.

Each function runs the model transition (which checks ``consultations.transitions``), routes
offers or grants access where needed, writes the timeline and notifications in one transaction;
pushes, emails and room broadcasts go out after commit. Pages, the API, the consult room, the SLA
clock and tasks call these; nothing else writes a consult or its timeline.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts import licences
from accounts.addresses import account_for_address
from accounts.models import Role, User
from accounts.outbox import send_after_commit
from accounts.timeformat import format_instant
from teleconsult.links import absolute_url

from . import attachments, offers, questions, release, room, worklist_events
from .colleagues import may_join_consults
from .errors import IllegalTransitionError, NotAllowedError
from .models import (
    ChatMessage,
    ColleagueInvitation,
    ConsultAttachment,
    ConsultEvent,
    ConsultOffer,
    ConsultRequest,
    Notification,
    PatientQuestion,
    State,
)
from .notifications import amendment_text, message_posted, notify, question_answered

Kind = Notification.Kind


def _referring_side(consult: ConsultRequest) -> list:
    return [consult.requester, *(p.user for p in consult.active_participants())]


def _route(consult: ConsultRequest) -> list[ConsultOffer]:
    """Offer a just-submitted consult and record who it went to on the timeline."""
    routing = offers.route(consult)
    consult.record_event(ConsultEvent.Kind.OFFERED, None, routing.message, to=routing.to)
    return routing.offers


def _patient_accounts(consult: ConsultRequest) -> list:
    account = consult.study.patient.account
    return [account] if account is not None else []


@transaction.atomic
def create_consult(*, by: User, study, submit: bool = True, **fields) -> ConsultRequest:
    """A new consult on a study the physician may see; submitted at once unless ``submit=False``."""
    if not by.is_physician and not by.is_admin:
        raise NotAllowedError("Only physicians request consults.")
    if not by.has_clinical_access:
        raise NotAllowedError("You are not a member of a practice yet: a practice admin must admit you first.")
    consult = ConsultRequest.objects.create(study=study, requester=by, **fields)
    consult.record_event(ConsultEvent.Kind.CREATED, by, "Consult requested.")
    if submit:
        submit_consult(consult, by=by)
    return consult


@transaction.atomic
def submit_consult(consult: ConsultRequest, *, by: User) -> None:
    consult.submit(by=by)
    new_offers = _route(consult)
    notify(
        [offer.specialist for offer in new_offers],
        kind=Kind.OFFER,
        consult=consult,
        title=f"New {consult.get_priority_display().lower()} consult offered to you",
        body="A physician asks for your opinion. Accept it from your worklist.",
    )
    worklist_events.changed(consult, "offered", by=by, newly_offered=[o.specialist_id for o in new_offers])


def _require_licence(consult: ConsultRequest, by: User) -> None:
    """A claim under the licence rule needs a verified licence for the consult's jurisdiction valid
    today (``LicenceRequiredError`` names what is missing); a claim refused for another reason
    (taken, not offered) is left to the transition's own refusal."""
    if consult.state == State.SUBMITTED and by.may_take_consults:
        licences.require_licence(by, consult.jurisdiction)


def accept_consult(consult: ConsultRequest, *, by: User) -> None:
    with transaction.atomic():
        _require_licence(consult, by)
        consult.accept(by=by)
        notify(
            _referring_side(consult),
            kind=Kind.ACCEPTED,
            consult=consult,
            title=f"Consult #{consult.pk} accepted by {by.display_name}",
        )
        worklist_events.changed(consult, "accepted", by=by)


@transaction.atomic
def decline_consult(consult: ConsultRequest, *, by: User, reason: str) -> str:
    outcome = consult.decline(by=by, reason=reason)
    new_offers = []
    if outcome == "pool":
        new_offers = _route(consult)
        notify(
            [o.specialist for o in new_offers],
            kind=Kind.OFFER,
            consult=consult,
            title=f"New {consult.get_priority_display().lower()} consult offered to you",
        )
    if outcome in ("pool", "requester"):
        notify(
            _referring_side(consult),
            kind=Kind.DECLINED,
            consult=consult,
            title=f"Consult #{consult.pk} declined by {by.display_name}",
            body=f"Reason: {reason.strip()}"
            + (" It was offered to the specialty pool." if outcome == "pool" else " Choose another specialist."),
        )
    worklist_events.changed(consult, "declined", by=by, newly_offered=[o.specialist_id for o in new_offers], also=[by])
    return outcome


@transaction.atomic
def cancel_consult(consult: ConsultRequest, *, by: User, reason: str = "") -> None:
    told = [consult.assignee] if consult.assignee else offers.pool_users(consult)
    consult.cancel(by=by, reason=reason)
    notify(told, kind=Kind.CANCELLED, consult=consult, title=f"Consult #{consult.pk} was cancelled")
    worklist_events.changed(consult, "cancelled", by=by)


@transaction.atomic
def request_info(consult: ConsultRequest, *, by: User, question: str) -> None:
    consult.request_info(by=by, question=question)
    notify(
        _referring_side(consult),
        kind=Kind.INFO_REQUESTED,
        consult=consult,
        title=f"{by.display_name} needs more information on consult #{consult.pk}",
        body=question.strip(),
    )
    worklist_events.changed(consult, "updated", by=by)


@transaction.atomic
def answer_info(consult: ConsultRequest, *, by: User, answer: str) -> None:
    consult.answer_info(by=by, answer=answer)
    notify(
        [consult.assignee],
        kind=Kind.INFO_ANSWERED,
        consult=consult,
        title=f"{by.display_name} answered on consult #{consult.pk}",
        body=answer.strip(),
    )
    worklist_events.changed(consult, "updated", by=by)


@transaction.atomic
def close_consult(consult: ConsultRequest, *, by: User) -> None:
    consult.close(by=by)
    worklist_events.changed(consult, "updated", by=by)


@transaction.atomic
def add_participant(consult: ConsultRequest, *, by: User, user: User) -> None:
    consult.add_participant(by=by, user=user)
    notify(
        [user],
        kind=Kind.PARTICIPANT_ADDED,
        consult=consult,
        title=f"{by.display_name} added you to consult #{consult.pk}",
    )
    worklist_events.changed(consult, "updated", by=by)


@transaction.atomic
def remove_participant(consult: ConsultRequest, *, by: User, user: User) -> None:
    consult.remove_participant(by=by, user=user)
    worklist_events.changed(consult, "updated", by=by, also=[user])


def sign_report(consult: ConsultRequest, report, *, by: User):
    """Sign ``report`` (its signer proved who they are: ``reports.sign_report``): the report is
    sealed, the consult moves to reported (or the addendum joins its timeline), and the
    referring side and the patient are told. The consult and the report are locked meanwhile."""
    with transaction.atomic():
        locked = ConsultRequest.objects.select_for_update().get(pk=consult.pk)
        report = type(report).objects.select_for_update().get(pk=report.pk)
        report.consult = locked
        report.sign(by=by)
        report_signed(locked, report)
    return report


def report_signed(consult: ConsultRequest, report) -> None:
    """Tell the referring side that a report (or an addendum) is signed, and release it to the
    patient now unless the release delay keeps it for the referring physician first
    (``consultations.release``: the patient is told, the PDF filed in the study, then)."""
    if report.is_addendum:
        kind, title = Kind.ADDENDUM, f"Addendum to the report on consult #{consult.pk}"
        body = amendment_text(report)
    else:
        kind, title, body = Kind.REPORT_SIGNED, f"The report on consult #{consult.pk} is signed", ""
    if report.release_at > timezone.now() and _patient_accounts(consult):
        body = f"{body}\n\n" if body else ""
        body += f"The patient can read it from {format_instant(report.release_at)}."
    notify(_referring_side(consult), kind=kind, consult=consult, title=title, body=body)
    worklist_events.changed(consult, "updated", by=report.signed_by)
    release.release(report.pk)  # a no-op while the delay runs; the beat task releases it then


# -- attachments --------------------------------------------------------------------------------


@transaction.atomic
def add_attachment(consult: ConsultRequest, *, by: User, upload) -> ConsultAttachment:
    """Attach a PDF or an image (checked by content, limited in size) to an open consult."""
    consult.require("attach", by)
    attachments.check_size(upload.size)
    data = upload.read()
    kind = attachments.sniff_attachment(data)
    name = (getattr(upload, "name", "") or f"attachment.{kind}").rsplit("/", 1)[-1][:200]
    attachment = ConsultAttachment(
        consult=consult,
        name=name,
        kind=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=by,
    )
    attachment.file.save(f"consult-{consult.pk}.{kind}", ContentFile(data), save=False)
    attachment.save()
    consult.record_event(ConsultEvent.Kind.ATTACHMENT_ADDED, by, f"Attached {name}.", attachment_id=attachment.pk)
    return attachment


# -- colleagues ---------------------------------------------------------------------------------


@transaction.atomic
def invite_colleague(consult: ConsultRequest, *, by: User, email: str) -> tuple[ColleagueInvitation, str]:
    """Invite ``email`` to the care team (see consultations.colleagues). Returns the invitation and
    the answer to show, the same for any address."""
    consult.require("add-participant", by)
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise IllegalTransitionError(f"{email[:80]!r} is not an email address.") from None
    if email == by.email.lower():
        raise IllegalTransitionError("You are already on this consult.")
    invitation = ColleagueInvitation.pending().filter(consult=consult, email__iexact=email).first()
    if invitation is None:
        invitation = ColleagueInvitation.objects.create(consult=consult, email=email, invited_by=by)
    account = account_for_address(email)
    link = reverse("consultations:colleague-invitation", args=[invitation.pk])
    if may_join_consults(account):
        notify(
            [account],
            kind=Kind.COLLEAGUE_INVITED,
            consult=consult,
            title=f"{by.display_name} invites you to consult #{consult.pk}",
            url=link,
        )
        body = (
            f"Hello,\n\n{by.display_name} invites you to join consult #{consult.pk} on teleconsult. "
            f"Accept or decline here:\n{absolute_url(link)}\n"
        )
    else:
        body = (
            f"Hello,\n\n{by.display_name} asked to add this address to a consult on teleconsult. Only "
            "clinicians with an account here (admitted by their practice) join consults. If you are one, "
            "sign up or sign in with this address and ask them to invite you again; otherwise ignore this "
            "message.\n"
        )
    send_after_commit(f"An invitation to consult #{consult.pk}", body, [email])
    consult.record_event(ConsultEvent.Kind.PARTICIPANT_INVITED, by, f"{email} invited to join.", email=email)
    answer = f"Invitation sent to {email}. They join the consult once they accept."
    return invitation, answer


@transaction.atomic
def accept_invitation(invitation: ColleagueInvitation, *, user: User) -> None:
    locked = ColleagueInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status != "pending":
        raise IllegalTransitionError(f"This invitation is {locked.status}.")
    consult = ConsultRequest.objects.select_for_update().get(pk=locked.consult_id)
    if user.pk in (consult.requester_id, consult.assignee_id) or consult.is_participant(user):
        raise IllegalTransitionError("You are already on this consult.")
    consult.add_participant(by=locked.invited_by or consult.requester, user=user)
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    notify(
        [consult.requester],
        kind=Kind.PARTICIPANT_ADDED,
        consult=consult,
        title=f"{user.display_name} joined consult #{consult.pk}",
    )
    worklist_events.changed(consult, "updated", by=user)


@transaction.atomic
def decline_invitation(invitation: ColleagueInvitation, *, user: User) -> None:
    locked = ColleagueInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status != "pending":
        raise IllegalTransitionError(f"This invitation is {locked.status}.")
    locked.declined_at = timezone.now()
    locked.save(update_fields=["declined_at"])


# What an invited colleague may answer with.
INVITATION_ANSWERS = {"accept": accept_invitation, "decline": decline_invitation}


@transaction.atomic
def withdraw_invitation(consult: ConsultRequest, invitation_pk, *, by: User) -> ColleagueInvitation:
    consult.require("withdraw-invitation", by)
    invitation = ColleagueInvitation.pending().filter(consult=consult, pk=invitation_pk).first()
    if invitation is None:
        raise Http404("No such invitation.")
    invitation.withdrawn_at = timezone.now()
    invitation.save(update_fields=["withdrawn_at"])
    return invitation


# -- SLA steps (consultations.sla decides when, holding the consult's row lock) -----------------


def _time_left_text(consult: ConsultRequest, now) -> str:
    minutes = max(0, int((consult.due_at - now).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _under_the_clocks_lock() -> None:
    """The SLA steps run inside ``sla.check_consult``'s transaction, which holds the consult's row."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("SLA steps run through consultations.sla.check_consult, which locks the consult.")


def warn_due_soon(consult: ConsultRequest, now) -> None:
    """75 % of the window: tell the assignee, or the specialists holding an offer."""
    _under_the_clocks_lock()
    consult.mark_sla_warned(at=now)
    waiting_for = "a report" if consult.state != State.SUBMITTED else "a specialist to accept"
    left = _time_left_text(consult, now)
    consult.record_event(
        ConsultEvent.Kind.SLA_WARNING, None, f"Due in {left}; still waiting for {waiting_for}.", step="warning"
    )
    told = [consult.assignee] if consult.assignee_id else offers.pool_users(consult)
    notify(
        told,
        kind=Kind.SLA_WARNING,
        consult=consult,
        title=f"Consult #{consult.pk} is due in {left}",
        body=f"The {consult.get_priority_display().lower()} consult is still waiting for {waiting_for}.",
    )


def escalate_overdue(consult: ConsultRequest, now) -> None:
    """Past due: mark it, offer a consult nobody accepted to every match, tell the requester and
    the administrators."""
    _under_the_clocks_lock()
    consult.mark_sla_overdue(at=now)
    consult.record_event(ConsultEvent.Kind.SLA_OVERDUE, None, "Overdue: the due time has passed.", step="overdue")
    if consult.state == State.SUBMITTED:
        if consult.target_specialist_id and consult.specialty:
            # The named specialist keeps their offer; the specialty pool may take it now too.
            consult.release_to_pool()
        new_offers = offers.offer_to_every_match(consult)
        consult.record_event(
            ConsultEvent.Kind.ESCALATED,
            None,
            f"Escalated: offered to {len(new_offers)} more matching specialist(s), on call or not.",
            to=[o.specialist_id for o in new_offers],
        )
        notify(
            [o.specialist for o in new_offers],
            kind=Kind.OFFER,
            consult=consult,
            title=f"Overdue {consult.get_priority_display().lower()} consult offered to you",
            body="Nobody has accepted this consult in time.",
        )
        worklist_events.changed(consult, "offered", newly_offered=[o.specialist_id for o in new_offers])
    admins = User.objects.filter(is_active=True).filter(Q(role=Role.ADMIN) | Q(is_superuser=True))
    notify(
        [consult.requester, *admins],
        kind=Kind.ESCALATION,
        consult=consult,
        title=f"Consult #{consult.pk} is overdue",
        body=_escalation_text(consult),
    )


def _escalation_text(consult: ConsultRequest) -> str:
    if consult.state != State.SUBMITTED:
        return f"{consult.assignee.display_name} has not reported yet."
    if consult.specialty:
        return "Nobody has accepted it yet; it is now offered to every matching specialist."
    return "The named specialist has not accepted it yet; you may cancel it and ask someone else."


# -- the consult room ---------------------------------------------------------------------------


def post_message(consult: ConsultRequest, *, author: User, text: object, client_id: object = "") -> ChatMessage:
    """The one way a chat message is posted, from the room's WebSocket or the REST API: check the
    text, save it (once per ``client_id``), and broadcast it to the room after commit; whoever of
    the care team is not in the room is notified (``notifications.notify_chat_message``).

    A resend of a stored ``client_id`` broadcasts the stored message again, so the sender gets its
    acknowledgement even when the first echo was lost with a dropped connection.
    """
    message = room.save_message(consult, author=author, text=text, client_id=client_id)
    room.broadcast_on_commit(consult.pk, room.message_event(message))
    worklist_events.changed(consult, "message", by=author)
    message_posted(message)  # the team members not in the room get a notification, later an email
    return message


# -- the patient's questions about their report (consultations.questions) -----------------------


@transaction.atomic
def ask_question(consult: ConsultRequest, *, by: User, text: object) -> PatientQuestion:
    """The consult's patient asks the care team about their signed report: kept for the portal and
    posted to the consult's chat (live in the room; the care team away is notified as for a message)."""
    text = questions.clean_text(text)
    questions.require_may_ask(by, consult)
    question = PatientQuestion.objects.create(consult=consult, asked_by=by, text=text)
    question.message = post_message(consult, author=by, text=questions.question_chat_text(text))
    question.save(update_fields=["message"])
    return question


@transaction.atomic
def answer_question(consult: ConsultRequest, question_pk: object, *, by: User, text: object) -> PatientQuestion:
    """Someone of the care team answers a patient's question: the answer is the patient's to read in
    the portal (they are told, with no clinical content in the email) and goes into the chat too."""
    questions.require_may_answer(by, consult)
    text = questions.clean_text(text)
    question = (
        PatientQuestion.objects.select_for_update()
        .filter(consult=consult, pk=question_pk if str(question_pk).isdigit() else 0)
        .first()
    )
    if question is None:
        raise Http404("No such question.")
    if question.is_answered:
        who = question.answered_by.display_name if question.answered_by else "Someone"
        raise IllegalTransitionError(f"{who} answered this question already.")
    message = post_message(consult, author=by, text=questions.answer_chat_text(question, text))
    question.record_answer(by=by, text=text, message=message)
    question_answered(question)
    return question
