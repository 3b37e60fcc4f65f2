"""Pages: request a consult, the consult, the worklist, my consults, the report editor,
notifications and email settings. Each view checks access first (404 for outsiders), calls one
action and redirects or renders."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from studies import audit
from studies.models import AccessEvent
from studies.permissions import can_view_study, get_study_for_user
from studies.viewer_views import viewer_context

from . import actions, colleagues, dicom_export, forms, notifications, permissions, reports, room
from .api import attachment_response, report_pdf_response
from .models import (
    EMAIL_KINDS,
    ColleagueInvitation,
    ConsultError,
    ConsultRequest,
    IllegalTransitionError,
    Notification,
    NotificationPreference,
    ReportTemplate,
    State,
)


def _detail(consult: ConsultRequest):
    return redirect("consultations:detail", pk=consult.pk)


@login_required
def consult_new(request, study_uid: str):
    """Request a consult on a study the physician may see."""
    study = get_study_for_user(request.user, study_uid)
    if not (request.user.is_physician or request.user.is_admin):
        raise PermissionDenied("Only physicians request consults.")
    form = forms.ConsultRequestForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                consult = actions.create_consult(
                    by=request.user,
                    study=study,
                    submit=False,
                    question=data["question"],
                    clinical_history=data["clinical_history"],
                    priority=data["priority"],
                    specialty=data["specialty"],
                    target_specialist=data["specialist"],
                    jurisdiction=data["jurisdiction"],
                    outside_report=data["outside_report"],
                )
                if data.get("attachment"):
                    actions.add_attachment(consult, by=request.user, upload=data["attachment"])
                actions.submit_consult(consult, by=request.user)
        except actions.AttachmentRefusedError as exc:
            form.add_error("attachment", exc.message)
        except ConsultError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Consult requested. Matching specialists have been told.")
            return _detail(consult)
    return render(request, "consultations/new.html", {"form": form, "study": study})


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
    visible = permissions.visible_reports(user, consult)
    newest = visible.order_by("-version").first()
    if newest is not None:
        audit.record(request, AccessEvent.Action.REPORT_VIEW, consult.study, f"report:{newest.pk}")
    context = {
        "consult": consult,
        "study": consult.study,
        "study_visible": study_visible,
        "series": series,
        "events": consult.events.select_related("actor"),
        "reports": visible,
        "allowed": permissions.allowed_actions(user, consult),
        "is_requester": user.pk == consult.requester_id,
        "participants": consult.active_participants(),
        "colleague_invitations": (
            list(ColleagueInvitation.pending().filter(consult=consult)) if user.pk == consult.requester_id else []
        ),
        "attachments": consult.attachments.all(),
        "may_attach": (consult.may_requester_act(user) or user.pk == consult.assignee_id)
        and consult.state not in (State.CANCELLED, State.CLOSED),
        "reason_form": forms.ReasonForm(),
        "question_form": forms.QuestionForm(),
        "answer_form": forms.AnswerForm(),
        "participant_form": forms.ParticipantForm(),
        "attachment_form": forms.AttachmentForm(),
        "in_room": room.may_join(user, consult),
    }
    if study_visible:
        context.update(viewer_context(user, consult.study))
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


@login_required
@require_POST
def consult_action(request, pk: int, action: str):
    if action == "accept":
        consult = permissions.get_consult_to_claim(request.user, pk)
    else:
        consult = permissions.get_consult_for_user(request.user, pk, offer_view=action in OFFER_ACTIONS)
    if action not in ACTIONS:
        raise Http404("No such action.")
    form_class, call = ACTIONS[action]
    form = form_class(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return _detail(consult)
    try:
        call(consult, request.user, form.cleaned_data)
    except ConsultError as exc:
        messages.error(request, exc.message)
        # A specialist a moment too late no longer sees the consult: back to their worklist.
        if not permissions.visible_consults(request.user).filter(pk=consult.pk).exists():
            return redirect("consultations:worklist")
        return _detail(consult)
    messages.success(request, "Done.")
    if action == "decline" and not permissions.visible_consults(request.user).filter(pk=consult.pk).exists():
        return redirect("consultations:worklist")
    return _detail(consult)


@login_required
@require_POST
def add_participant(request, pk: int):
    """Invite a colleague by email; the answer is the same whoever the address belongs to."""
    consult = permissions.get_consult_for_user(request.user, pk)
    form = forms.ParticipantForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"email: {' '.join(form.errors['email'])}")
        return _detail(consult)
    try:
        _invitation, answer = colleagues.invite_colleague(consult, by=request.user, email=form.cleaned_data["email"])
    except ConsultError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, answer)
    return _detail(consult)


@login_required
@require_POST
def withdraw_invitation(request, pk: int, invitation_pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    try:
        invitation = colleagues.withdraw(consult, invitation_pk, by=request.user)
    except ConsultError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The invitation to {invitation.email} is withdrawn.")
    return _detail(consult)


@login_required
def colleague_invitation(request, invitation_pk: int):
    """The invited colleague's page: which consult, who asks, accept or decline."""
    invitation = colleagues.get_invitation_for_user(request.user, invitation_pk)
    if request.method == "POST":
        answer = request.POST.get("answer")
        try:
            if answer not in colleagues.ANSWERS:
                raise IllegalTransitionError("answer: accept or decline.")
            colleagues.ANSWERS[answer](invitation, user=request.user)
        except ConsultError as exc:
            messages.error(request, exc.message)
        else:
            if answer == "decline":
                messages.success(request, "Declined.")
                return redirect("consultations:mine")
            messages.success(request, f"You joined consult #{invitation.consult_id}.")
            return _detail(invitation.consult)
    return render(request, "consultations/colleague_invitation.html", {"invitation": invitation})


@login_required
@require_POST
def remove_participant(request, pk: int, user_id: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    participant = consult.active_participants().filter(user_id=user_id).first()
    if participant is None:
        raise Http404("No such colleague on this consult.")
    try:
        actions.remove_participant(consult, by=request.user, user=participant.user)
    except ConsultError as exc:
        messages.error(request, exc.message)
    return _detail(consult)


@login_required
def attachment(request, pk: int, attachment_pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    return attachment_response(consult, attachment_pk)


@login_required
@require_POST
def upload_attachment(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    form = forms.AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, f"file: {' '.join(form.errors['file'])}")
        return _detail(consult)
    try:
        actions.add_attachment(consult, by=request.user, upload=form.cleaned_data["file"])
    except ConsultError as exc:
        messages.error(request, f"file: {exc.message}" if exc.status_code == 400 else exc.message)
    else:
        messages.success(request, "Attached.")
    return _detail(consult)


def _filtered(request, qs):
    form = forms.WorklistFilterForm(request.GET or None)
    if form.is_valid():
        for name in ("state", "priority", "specialty"):
            if form.cleaned_data.get(name):
                qs = qs.filter(**{name: form.cleaned_data[name]})
    return form, qs


@login_required
def worklist(request):
    """Specialists: consults offered to me and mine, overdue first, then priority, then due time."""
    if not request.user.is_specialist:
        return redirect("consultations:mine")
    qs = ConsultRequest.objects.worklist_for(request.user).select_related("study__patient", "requester", "assignee")
    form, qs = _filtered(request, qs)
    consults = list(qs.in_worklist_order())
    return render(
        request,
        "consultations/worklist.html",
        {
            "consults": consults,
            "filter_form": form,
            "title": "Worklist",
            "worklist": True,
            "colleague_invitations": list(colleagues.invitations_for(request.user)),
        },
    )


@login_required
def my_consults(request):
    """Requesters (and colleagues they added) see theirs; patients see those on their studies."""
    user = request.user
    qs = permissions.visible_consults(user)
    if user.is_physician:
        qs = qs.filter(Q(requester=user) | Q(participants__user=user, participants__removed_at__isnull=True))
    elif user.is_specialist:
        qs = qs.filter(assignee=user)
    qs = qs.select_related("study__patient", "requester", "assignee").distinct()
    form, qs = _filtered(request, qs)
    return render(
        request,
        "consultations/worklist.html",
        {
            "consults": list(qs.in_worklist_order()),
            "filter_form": form,
            "title": "My consults",
            "worklist": False,
            "colleague_invitations": list(colleagues.invitations_for(user)),
        },
    )


@login_required
def report_editor(request, pk: int):
    """The assignee writes the report (autosaved through the API), signs it, or starts an addendum."""
    consult = permissions.get_consult_for_user(request.user, pk)
    if request.user.pk != consult.assignee_id:
        raise PermissionDenied("Only the specialist who accepted this consult writes its report.")
    current = consult.current_report
    draft = None
    if current is None or not current.is_signed:
        try:
            draft = reports.get_or_start_draft(consult, by=request.user)
        except ConsultError as exc:
            messages.error(request, exc.message)
            return _detail(consult)
    form = forms.ReportForm(initial={f: getattr(draft, f) for f in forms.ReportForm.base_fields} if draft else None)
    return render(
        request,
        "consultations/report_editor.html",
        {
            "consult": consult,
            "draft": draft,
            "form": form,
            "sign_form": forms.SignForm(),
            "addendum_form": forms.ReasonForm(),
            "signed_versions": consult.reports.filter(signed_at__isnull=False).select_related("signed_by"),
            "templates": ReportTemplate.objects.all(),
        },
    )


@login_required
@require_POST
def report_save(request, pk: int):
    """Saves the draft when the page is used without JavaScript (the editor autosaves otherwise)."""
    consult = permissions.get_consult_for_user(request.user, pk)
    form = forms.ReportForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("consultations:report", pk=consult.pk)
    try:
        reports.save_draft(consult, by=request.user, **form.cleaned_data)
    except ConsultError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Draft saved.")
    return redirect("consultations:report", pk=consult.pk)


@login_required
@require_POST
def report_template(request, pk: int):
    """Start the draft over from another template (the draft only; signed versions never change)."""
    consult = permissions.get_consult_for_user(request.user, pk)
    choice = request.POST.get("template", "")
    template = ReportTemplate.objects.filter(pk=int(choice)).first() if choice.isdigit() else None
    if template is None:
        messages.error(request, "template: Choose one of the templates.")
        return redirect("consultations:report", pk=consult.pk)
    try:
        reports.apply_template(consult, by=request.user, template=template)
    except ConsultError as exc:
        messages.error(request, exc.message)
        return _detail(consult)
    else:
        messages.success(request, f"The draft now starts from the template “{template.name}”.")
    return redirect("consultations:report", pk=consult.pk)


@login_required
@require_POST
def report_sign(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    report_form = forms.ReportForm(request.POST)
    sign_form = forms.SignForm(request.POST)
    if not sign_form.is_valid():
        for field, errors in sign_form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("consultations:report", pk=consult.pk)
    try:
        if report_form.is_valid() and any(name in request.POST for name in forms.ReportForm.base_fields):
            reports.save_draft(consult, by=request.user, **report_form.cleaned_data)
        reports.sign_report(consult, by=request.user, **sign_form.cleaned_data)
    except ConsultError as exc:
        messages.error(request, exc.message)
        return redirect("consultations:report", pk=consult.pk)
    messages.success(request, "Report signed. The requester and the patient have been told.")
    return _detail(consult)


@login_required
@require_POST
def report_addendum(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"reason: {' '.join(form.errors['reason'])}")
        return _detail(consult)
    try:
        reports.start_addendum(consult, by=request.user, reason=form.cleaned_data["reason"])
    except ConsultError as exc:
        messages.error(request, exc.message)
        return _detail(consult)
    return redirect("consultations:report", pk=consult.pk)


@login_required
def report_pdf(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    response = report_pdf_response(consult)
    audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
    return response


@login_required
def notification_list(request):
    if request.method == "POST":
        notifications.mark_read(request.user)
        return redirect("consultations:notifications")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    items = list(Notification.objects.filter(user=request.user).select_related("consult")[:200])
    return render(
        request,
        "consultations/notifications.html",
        {"items": items, "unread": notifications.unread_count(request.user)},
    )


@login_required
def notification_open(request, pk: int):
    """Mark one notification read and go where it points."""
    item = Notification.objects.filter(user=request.user, pk=pk).first()
    if item is None:
        raise Http404("No such notification.")
    notifications.mark_read(request.user, [item.pk])
    return redirect(item.url or reverse("consultations:notifications"))


@login_required
def email_settings(request):
    current = dict(NotificationPreference.objects.filter(user=request.user).values_list("kind", "email"))
    form = forms.EmailPreferencesForm(request.POST or None, kinds=EMAIL_KINDS, current=current)
    if request.method == "POST" and form.is_valid():
        notifications.set_email_preferences(request.user, form.cleaned_data)
        messages.success(request, "Email settings saved.")
        return redirect("consultations:email-settings")
    return render(request, "consultations/email_settings.html", {"form": form})
