"""The signed report as a PDF (reportlab): every signed version, newest first, with its hash."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .models import ConsultRequest, Report


def _para(text: str, style) -> Paragraph:
    return Paragraph(escape(text or "-").replace("\n", "<br/>"), style)


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z") if value else "-"


def render_report_pdf(consult: ConsultRequest, versions: list[Report]) -> bytes:
    """``versions``: the signed versions to print (the caller picks what the reader may see)."""
    styles = getSampleStyleSheet()
    body, heading, small = styles["BodyText"], styles["Heading3"], styles["Italic"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Second-opinion report, consult {consult.pk}",
        author="teleconsult",
    )
    study = consult.study
    patient = study.patient
    story = [
        Paragraph(f"Second-opinion report - consult #{consult.pk}", styles["Title"]),
    ]
    facts = [
        ["Patient", f"{patient.display_name} (ID {patient.patient_id or '-'})"],
        ["Birth date", str(patient.birth_date or "-")],
        ["Study", f"{study.description or 'Study'} {study.study_date or ''} [{study.modalities or '-'}]"],
        ["Study UID", study.study_instance_uid],
        ["Requested by", consult.requester.display_name],
        ["Priority", consult.get_priority_display()],
        ["Reported by", consult.assignee.display_name if consult.assignee else "-"],
    ]
    table = Table([[k, _para(v, body)] for k, v in facts], colWidths=[35 * mm, None])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey),
            ]
        )
    )
    story += [table, Spacer(1, 4 * mm), Paragraph("Clinical question", heading), _para(consult.question, body)]
    if consult.clinical_history:
        story += [Paragraph("Clinical history", heading), _para(consult.clinical_history, body)]
    for report in sorted(versions, key=lambda r: r.version, reverse=True):
        label = "Report" if report.version == 1 else f"Addendum (version {report.version})"
        story += [Spacer(1, 4 * mm), Paragraph(label, styles["Heading2"])]
        if report.addendum_reason:
            story += [Paragraph("Reason for the addendum", heading), _para(report.addendum_reason, body)]
        story += [
            Paragraph("Findings", heading),
            _para(report.findings, body),
            Paragraph("Impression", heading),
            _para(report.impression, body),
        ]
        if report.recommendations:
            story += [Paragraph("Recommendations", heading), _para(report.recommendations, body)]
        if report.agreement:
            story += [
                Paragraph("Agreement with the original report", heading),
                _para(report.get_agreement_display(), body),
            ]
        if report.patient_summary:
            story += [Paragraph("Summary for the patient", heading), _para(report.patient_summary, body)]
        signer = report.signed_by.display_name if report.signed_by else "-"
        story += [
            Spacer(1, 2 * mm),
            _para(f"Electronically signed by {signer} on {_when(report.signed_at)}.", small),
            _para(f"SHA-256 of the signed content: {report.content_sha256}", small),
        ]
    doc.build(story)
    return buffer.getvalue()
