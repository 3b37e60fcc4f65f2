"""Responses the pages and the API both send: an attachment download and the report PDF."""

from __future__ import annotations

from django.http import Http404, HttpResponse

from teleconsult.responses import FileStreamResponse

from .models import ConsultRequest, Report


def report_pdf_response(consult: ConsultRequest, signed: list[Report] | None = None) -> HttpResponse:
    """The signed report and its addenda as a PDF download (``signed``: the versions to print,
    by default every signed one); 404 while nothing is signed."""
    from .pdf import render_report_pdf  # reportlab is loaded only when a PDF is asked for

    if signed is None:
        signed = list(consult.reports.filter(signed_at__isnull=False).select_related("signed_by"))
    if not signed:
        raise Http404("No signed report yet.")
    response = HttpResponse(render_report_pdf(consult, signed), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="consult-{consult.pk}-report.pdf"'
    return response


def attachment_response(consult: ConsultRequest, attachment_pk: int) -> FileStreamResponse:
    attachment = consult.attachments.filter(pk=attachment_pk).first()
    if attachment is None:
        raise Http404("No such attachment.")
    response = FileStreamResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    response["Content-Disposition"] = f'attachment; filename="{attachment.name.replace(chr(34), "")}"'
    return response
