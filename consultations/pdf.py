"""The signed report as a PDF (reportlab): every signed version, newest first, with its hash, the
signer's credentials and the consult's key images. An amended report says so under its title; each
version says what it amends or what superseded it (consultations.versions)."""

from __future__ import annotations

import io
import logging
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from accounts.timeformat import format_instant
from studies.rendering import encode, render_frame
from studies.vocabulary import modalities_in_words

from . import identity, versions
from .models import ConsultRequest, Report
from .reports import Evidence, evidence_for

logger = logging.getLogger(__name__)

KEY_IMAGES_PER_ROW = 3
KEY_IMAGE_BOX = (480, 480)  # pixels rendered for a cell about 55 mm wide: sharp in print
MAX_KEY_IMAGES = 12


def _para(text: str, style) -> Paragraph:
    return Paragraph(escape(text or "-").replace("\n", "<br/>"), style)


def _when(value) -> str:
    return format_instant(value) or "-"


def _key_image_cell(evidence: Evidence, width: float, body) -> list:
    """The key image's frame, rendered by studies.rendering, and its caption; the caption alone
    when the frame cannot be rendered (the PDF never fails for one picture)."""
    instance, annotation = evidence.instance, evidence.annotation
    caption = _para(evidence.line, body)
    try:
        with instance.file.storage.open(instance.file.name, "rb") as handle:
            picture = render_frame(handle, frame=annotation.frame, viewport=KEY_IMAGE_BOX)
        data = encode(picture, "image/jpeg", quality=85)
    except Exception:  # noqa: BLE001 - any file or decoder failure: the caption says so
        logger.warning("Key image %s of consult %s not rendered", annotation.pk, annotation.consult_id, exc_info=True)
        return [_para(f"{evidence.line}: the image cannot be shown.", body)]
    height = width * picture.height / max(picture.width, 1)
    return [Image(io.BytesIO(data), width=width, height=height), caption]


def key_images_table(consult: ConsultRequest, width: float, body) -> Table | None:
    key_images = evidence_for(consult, tools=["key_image"])[:MAX_KEY_IMAGES]
    if not key_images:
        return None
    cell_width = width / KEY_IMAGES_PER_ROW - 4 * mm
    cells = [_key_image_cell(evidence, cell_width, body) for evidence in key_images]
    rows = [cells[i : i + KEY_IMAGES_PER_ROW] for i in range(0, len(cells), KEY_IMAGES_PER_ROW)]
    rows[-1] += [""] * (KEY_IMAGES_PER_ROW - len(rows[-1]))
    table = Table(rows, colWidths=[width / KEY_IMAGES_PER_ROW] * KEY_IMAGES_PER_ROW)
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def render_report_pdf(consult: ConsultRequest, versions_to_print: list[Report]) -> bytes:
    """``versions_to_print``: the signed versions to print (the caller picks what the reader may see)."""
    styles = getSampleStyleSheet()
    body, heading, small = styles["BodyText"], styles["Heading3"], styles["Italic"]
    warning = ParagraphStyle("Version", parent=body, textColor=colors.HexColor("#b3261e"), fontName="Helvetica-Bold")
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
    modalities = modalities_in_words(study.modality_list) or "-"
    story = [
        Paragraph(f"Second-opinion report - consult #{consult.pk}", styles["Title"]),
    ]
    labelled = sorted(versions.labelled(versions_to_print), key=lambda r: r.version, reverse=True)
    current = labelled[0] if labelled else None
    if current is not None and current.is_addendum:
        story += [
            _para(
                f"AMENDED REPORT. {versions.amended_text(current)} The current version comes first; "
                "earlier versions follow, each marked as superseded.",
                warning,
            ),
            Spacer(1, 2 * mm),
        ]
    # Whose images, which study: the same facts as the report editor and the signing form.
    facts = [[label, value] for label, value in identity.rows(identity.of_study(study))]
    facts += [
        ["Study", f"{study.description or 'Study'} ({modalities})"],
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
    for report in labelled:
        label = "Report (version 1)" if report.version == 1 else f"Amended report: Addendum (version {report.version})"
        if report.successor is not None:
            label += " - superseded"
        story += [Spacer(1, 4 * mm), Paragraph(label, styles["Heading2"])]
        if report.successor is not None:
            note = f"{versions.superseded_text(report)}: read that version; this one is kept as signed."
            story += [_para(note, warning)]
        if report.is_addendum:
            story += [_para(versions.amended_text(report), body)]
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
        story += [
            Spacer(1, 2 * mm),
            _para(f"Electronically signed by {report.signer_line} on {_when(report.signed_at)}.", small),
            _para(f"SHA-256 of the signed content: {report.content_sha256}", small),
        ]
    key_images = key_images_table(consult, doc.width, body)
    if key_images is not None:
        story += [Spacer(1, 4 * mm), KeepTogether([Paragraph("Key images", styles["Heading2"]), key_images])]
    doc.build(story)
    return buffer.getvalue()
