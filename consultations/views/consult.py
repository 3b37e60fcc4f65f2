"""The consult page, its transitions (one POST route per action) and its attachments."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.timeformat import format_instant
from studies import audit, viewer
from studies.models import AccessEvent
from studies.permissions import can_view_study
from teleconsult.errors import on_refusal

from .. import actions, dicom_export, forms, permissions, questions, release, room, transitions
from ..errors import FieldError
from ..models import ColleagueInvitation, ConsultRequest
from ..responses import attachment_response


def detail_url(consult: ConsultRequest) -> str:
    return reverse("consultations:detail", args=[consult.pk])


@login_required
def consult_detail(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk, offer_view=True)
    user = request.user
    if permissions.is_offer_only(user, consult):
        context = {
            "consult": consult,
            "body_parts": sorted({b for b in consult.study.series.values_list("body_part", flat=True) if b}),
            "allowed": permissions.allowed_actions(user, consult),
            "reason_form": forms.ReasonForm(),
        }
        return render(request, "consultations/offer.html", context)
    study_visible = can_view_study(user, consult.study)
    series = []
    if study_visible:
        for s in consult.study.series.all():
            first = s.instances.filter(status="ready").exclude(thumbnail="").first()
            series.append({"series": s, "thumbnail_instance": first})
    visible = release.for_reader(user, permissions.visible_reports(user, consult))
    newest = visible.order_by("-version").first()
    events = consult.events.select_related("actor")
    waiting = release.waiting_until(user, consult)
    if waiting is not None:
        # The patient learns of a version (and an addendum's reason) when it is released to them.
        first_waiting = consult.reports.filter(signed_at__isnull=False, release_at__gt=timezone.now())
        events = events.filter(at__lt=first_waiting.order_by("signed_at").values_list("signed_at", flat=True)[:1])
    if newest is not None:
        audit.record(request, AccessEvent.Action.REPORT_VIEW, consult.study, f"report:{newest.pk}")
    context = {
        "consult": consult,
        "study": consult.study,
        "study_visible": study_visible,
        "series": series,
        "events": events,
        "reports": visible,
        "has_signed_report": visible.filter(signed_at__isnull=False).exists(),
        "report_waiting_until": waiting,
        "allowed": permissions.allowed_actions(user, consult),
        "is_requester": user.pk == consult.requester_id,
        "participants": consult.active_participants(),
        "colleague_invitations": (
            list(ColleagueInvitation.pending().filter(consult=consult)) if user.pk == consult.requester_id else []
        ),
        "attachments": consult.attachments.all(),
        "may_attach": transitions.may(user, consult, "attach"),
        "reason_form": forms.ReasonForm(),
        "question_form": forms.QuestionForm(),
        "answer_form": forms.AnswerForm(),
        "participant_form": forms.ParticipantForm(),
        "attachment_form": forms.AttachmentForm(),
        "in_room": room.may_join(user, consult),
    }
    if questions.may_answer(user, consult):
        context.update(questions.panel_context(user, consult))
    if study_visible:
        context.update(viewer.viewer_context(user, consult.study))
    return render(request, "consultations/detail.html", context)


# action name -> (form, call)
ACTIONS = {
    "submit": (forms.EmptyForm, lambda c, u, d: actions.submit_consult(c, by=u)),
    "accept": (forms.EmptyForm, lambda c, u, d: actions.accept_consult(c, by=u)),
    "decline": (forms.ReasonForm, lambda c, u, d: actions.decline_consult(c, by=u, reason=d["reason"])),
    "cancel": (forms.OptionalReasonForm, lambda c, u, d: actions.cancel_consult(c, by=u, reason=d["reason"])),
    "request-info": (forms.QuestionForm, lambda c, u, d: actions.request_info(c, by=u, question=d["question"])),
    "answer-info": (forms.AnswerForm, lambda c, u, d: actions.answer_info(c, by=u, answer=d["answer"])),
    "close": (forms.EmptyForm, lambda c, u, d: actions.close_consult(c, by=u)),
    "export-sr": (forms.EmptyForm, lambda c, u, d: dicom_export.export_measurements(c, by=u)),
}


# What a specialist who only holds an offer may do with it.
OFFER_ACTIONS = frozenset({"accept", "decline"})


def _due_words(user, consult: ConsultRequest) -> str:
    """'due in 3 h 40 min (7 Dec 2026, 14:30 CET)' in the reader's time zone (activated for the
    request by accounts.timezones); 'overdue by 20 min (...)' once past."""
    if consult.due_at is None or not consult.is_open:
        return ""
    when = format_instant(consult.due_at)
    minutes = int(abs((consult.due_at - timezone.now()).total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    span = f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{'overdue by' if consult.is_overdue else 'due in'} {span} ({when})"


DECLINE_OUTCOMES = {
    "pool": "it goes back to the specialty pool",
    "requester": "it goes back to the requester",
    "offer": "it stays with the other specialists it was offered to",
}

# action -> what the flash message says happened: (consult, user, what the action returned).
DONE = {
    "submit": lambda c, u, r: f"Consult #{c.pk} submitted as {c.get_priority_display().lower()}: {_due_words(u, c)}.",
    "accept": lambda c, u, r: f"Consult #{c.pk} accepted: {_due_words(u, c)}.",
    "decline": lambda c, u, r: f"Consult #{c.pk} declined: {DECLINE_OUTCOMES.get(r, 'it is no longer yours')}.",
    "cancel": lambda c, u, r: f"Consult #{c.pk} cancelled.",
    "request-info": lambda c, u, r: f"Consult #{c.pk}: your question was sent to {c.requester.display_name}.",
    "answer-info": lambda c, u, r: f"Consult #{c.pk}: your answer was sent to {c.assignee.display_name}.",
    "close": lambda c, u, r: f"Consult #{c.pk} closed.",
    "export-sr": lambda c, u, r: f"Consult #{c.pk}: measurements stored in the study as a DICOM SR series.",
}

# Where the consult page opens after an action: accepting goes straight to the images.
OPENS_AT = {"accept": "#viewer"}


def _page_after(user, consult: ConsultRequest) -> str:
    """The consult's page, or the worklist once the user no longer sees the consult (a specialist
    a moment too late, or one who declined their offer)."""
    if not permissions.visible_consults(user).filter(pk=consult.pk).exists():
        return reverse("consultations:worklist")
    return detail_url(consult)


@login_required
@require_POST
def consult_action(request, pk: int, action: str):
    if action == "accept":
        consult = permissions.get_consult_to_claim(request.user, pk)
    else:
        consult = permissions.get_consult_for_user(request.user, pk, offer_view=action in OFFER_ACTIONS)
    if action not in ACTIONS:
        raise Http404("No such action.")
    on_refusal(request, lambda: _page_after(request.user, consult))
    form_class, call = ACTIONS[action]
    form = form_class(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(detail_url(consult))
    result = call(consult, request.user, form.cleaned_data)
    messages.success(request, DONE[action](consult, request.user, result))
    if action == "decline":
        return redirect(_page_after(request.user, consult))
    return redirect(detail_url(consult) + OPENS_AT.get(action, ""))


@login_required
def attachment(request, pk: int, attachment_pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    return attachment_response(consult, attachment_pk)


@login_required
@require_POST
def upload_attachment(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, detail_url(consult))
    form = forms.AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, f"file: {' '.join(form.errors['file'])}")
        return redirect(detail_url(consult))
    try:
        actions.add_attachment(consult, by=request.user, upload=form.cleaned_data["file"])
    except FieldError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    else:
        messages.success(request, "Attached.")
    return redirect(detail_url(consult))
