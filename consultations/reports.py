"""Writing, signing and amending consult reports.

Signing asks again for the password or a TOTP code; the signed version stores signer, time and a
SHA-256 of its content and never changes. An addendum is a new draft version with a reason; the
versions before it stay visible.
"""

from __future__ import annotations

from django.db import transaction

from accounts.mfa import verify_code

from . import actions, transitions
from .errors import IllegalTransitionError, ReauthenticationError
from .models import ConsultRequest, Report, ReportTemplate


def templates_for(consult: ConsultRequest):
    """Templates for the consult's specialty and the study's modalities, best first."""
    modalities = consult.study.modality_list
    qs = ReportTemplate.objects.all()
    if consult.specialty:
        exact = qs.filter(specialty=consult.specialty, modality__in=modalities)
        if exact.exists():
            return exact
    by_modality = qs.filter(modality__in=modalities)
    return by_modality if by_modality.exists() else qs


def get_or_start_draft(consult: ConsultRequest, *, by, template: ReportTemplate | None = None) -> Report:
    """The assignee's working version: the unsigned newest one, or version 1 from a template."""
    transitions.require_actor(consult, "write-report", by)
    current = consult.current_report
    if current is not None and not current.is_signed:
        return current
    if current is not None:
        raise IllegalTransitionError("The report is signed; start an addendum to change it.")
    # No version yet, so the consult has not been reported: the state is accepted or earlier.
    transitions.require_state(consult, "write-report")
    if template is None:
        template = templates_for(consult).first()
    return Report.objects.create(
        consult=consult,
        version=1,
        author=by,
        template=template,
        findings=template.findings if template else "",
        impression=template.impression if template else "",
        recommendations=template.recommendations if template else "",
    )


def save_draft(consult: ConsultRequest, *, by, **fields) -> Report:
    with transaction.atomic():
        report = get_or_start_draft(consult, by=by)
        report.update_draft(by=by, **fields)
    return report


def check_reauthentication(user, *, password: str = "", code: str = "") -> None:
    """The signer proves it is them again: the account password or a TOTP/recovery code."""
    if code and verify_code(user, code):
        return
    if password and user.check_password(password):
        return
    field = "code" if code else "password"
    if not password and not code:
        raise ReauthenticationError("Enter your password or an authenticator code to sign.", field=field)
    raise ReauthenticationError("The password or code is wrong.", field=field)


def sign_report(consult: ConsultRequest, *, by, password: str = "", code: str = "") -> Report:
    report = consult.current_report
    if report is None or report.is_signed:
        raise IllegalTransitionError("There is no draft to sign.")
    transitions.require_actor(consult, "report", by)
    check_reauthentication(by, password=password, code=code)
    with transaction.atomic():
        locked = ConsultRequest.objects.select_for_update().get(pk=consult.pk)
        report = Report.objects.select_for_update().get(pk=report.pk)
        report.consult = locked
        report.sign(by=by)
        actions.report_signed(locked, report)
    consult.refresh_from_db()
    return report


def start_addendum(consult: ConsultRequest, *, by, reason: str) -> Report:
    """A new draft version that starts from the signed text; the signed one stays as it was."""
    reason = (reason or "").strip()
    if not reason:
        raise IllegalTransitionError("Give the reason for the addendum.")
    consult.require("addendum", by)
    with transaction.atomic():
        current = Report.objects.select_for_update().filter(consult=consult).order_by("-version").first()
        if current is None or not current.is_signed:
            raise IllegalTransitionError("Finish and sign the open addendum first.")
        return Report.objects.create(
            consult=consult,
            version=current.version + 1,
            author=by,
            template=current.template,
            findings=current.findings,
            impression=current.impression,
            recommendations=current.recommendations,
            agreement=current.agreement,
            patient_summary=current.patient_summary,
            addendum_reason=reason,
        )


def apply_template(consult: ConsultRequest, *, by, template: ReportTemplate) -> Report:
    """Replace the draft's findings, impression and recommendations with a template's text."""
    with transaction.atomic():
        report = get_or_start_draft(consult, by=by, template=template)
        report.template = template
        report.update_draft(
            by=by,
            findings=template.findings,
            impression=template.impression,
            recommendations=template.recommendations,
        )
    return report
