"""The report editor: write the draft (autosaved through the API, or saved here without
JavaScript), start over from another fitting template, insert the consult's measurements and key
images into the findings, sign, start an addendum, download the PDF."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from studies import audit
from studies.models import AccessEvent
from studies.vocabulary import modalities_in_words
from teleconsult.errors import on_refusal

from .. import forms, identity, permissions, reports
from ..models import ReportTemplate
from ..portal import signed_versions
from ..responses import report_pdf_response
from .consult import detail_url


def editor_url(consult) -> str:
    return reverse("consultations:report", args=[consult.pk])


@login_required
def report_editor(request, pk: int):
    """The assignee writes the report (autosaved through the API), signs it, or starts an addendum."""
    consult = permissions.get_consult_for_user(request.user, pk)
    if request.user.pk != consult.assignee_id:
        raise PermissionDenied("Only the specialist who accepted this consult writes its report.")
    on_refusal(request, detail_url(consult))
    current = consult.current_report
    draft = None
    if current is None or not current.is_signed:
        draft = reports.get_or_start_draft(consult, by=request.user)
    form = forms.ReportForm(initial={f: getattr(draft, f) for f in forms.ReportForm.base_fields} if draft else None)
    fitting = reports.templates_for(consult)
    fitting_ids = {t.pk for t in fitting}
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
            "templates": fitting,
            "other_templates": [t for t in ReportTemplate.objects.all() if t.pk not in fitting_ids],
            "edited": draft is not None and reports.is_edited(draft),
            "evidence": reports.evidence_for(consult) if draft else [],
            "modalities": modalities_in_words(consult.study.modality_list),
            "identity": identity.rows(identity.of_study(consult.study)),
            "identity_changes": identity.differences(consult) if draft else [],
        },
    )


def _back_to(request, consult) -> str:
    """Where a refused change of the draft goes back to: the editor for its writer (where the
    message is beside the form), the consult page for anyone else (who cannot open the editor)."""
    return editor_url(consult) if request.user.pk == consult.assignee_id else detail_url(consult)


def _flash_form_errors(request, form) -> None:
    for field, errors in form.errors.items():
        messages.error(request, f"{field}: {' '.join(errors)}")


@login_required
@require_POST
def report_save(request, pk: int):
    """Saves the draft when the page is used without JavaScript (the editor autosaves otherwise);
    an "Insert" button of a measurement or key image also adds its line to the findings."""
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, _back_to(request, consult))
    form = forms.ReportForm(request.POST)
    if not form.is_valid():
        _flash_form_errors(request, form)
        return redirect(editor_url(consult))
    reports.save_draft(consult, by=request.user, **form.cleaned_data)
    if "insert" in request.POST:
        report = reports.insert_evidence(consult, by=request.user, annotation_id=request.POST["insert"])
        messages.success(request, f"Added to the findings: {report.findings.splitlines()[-1]}")
    else:
        messages.success(request, "Draft saved.")
    return redirect(editor_url(consult))


@login_required
@require_POST
def report_template(request, pk: int):
    """Start the draft over from another template (the draft only; signed versions never change).
    Once the draft was edited, only with "Replace my text" ticked."""
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, _back_to(request, consult))
    choice = request.POST.get("template", "")
    template = ReportTemplate.objects.filter(pk=int(choice)).first() if choice.isdigit() else None
    if template is None:
        messages.error(request, "template: Choose one of the templates.")
        return redirect(editor_url(consult))
    reports.apply_template(
        consult, by=request.user, template=template, replace_edited=bool(request.POST.get("replace"))
    )
    messages.success(request, f"The draft now starts from the template “{template.name}”.")
    return redirect(editor_url(consult))


@login_required
@require_POST
def report_sign(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, editor_url(consult))
    report_form = forms.ReportForm(request.POST)
    sign_form = forms.SignForm(request.POST)
    if not sign_form.is_valid():
        _flash_form_errors(request, sign_form)
        return redirect(editor_url(consult))
    if report_form.is_valid() and any(name in request.POST for name in forms.ReportForm.base_fields):
        reports.save_draft(consult, by=request.user, **report_form.cleaned_data)
    reports.sign_report(consult, by=request.user, **sign_form.cleaned_data)
    messages.success(request, "Report signed. The requester and the patient have been told.")
    return redirect(detail_url(consult))


@login_required
@require_POST
def report_addendum(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, detail_url(consult))
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"reason: {' '.join(form.errors['reason'])}")
        return redirect(detail_url(consult))
    reports.start_addendum(consult, by=request.user, reason=form.cleaned_data["reason"])
    return redirect(editor_url(consult))


@login_required
def report_pdf(request, pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    response = report_pdf_response(consult, signed_versions(request.user, consult))
    audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
    return response
