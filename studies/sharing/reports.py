"""The signed report a share link carries when its maker ticked "Include the signed report".

What the holder reads is the study's latest signed report as its patient may read it: the consult
whose report was signed last, with every signed version of that report the patient may read now
(released: ``consultations.release.released``), newest first, so an amendment is read before the
version it amends and is labelled as one. It is looked up each time the link is opened, so a report
signed after the link was made goes with it too (the access page says so when the link is made).
A link made without the option never shows a report, whatever is signed later.

The report rows belong to consultations, which sits above studies: they are read here through
consultations' own read-only helpers, imported when a share asks for its report (never at import
time), so studies still loads, and shares still work, with no consult anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpResponse

from ..models import ShareLink


@dataclass(frozen=True)
class SharedReport:
    consult: object  # consultations.models.ConsultRequest
    versions: list  # consultations.models.Report, signed and released, newest first

    @property
    def latest(self):
        return self.versions[0]

    @property
    def amended(self) -> bool:
        return self.latest.version > 1


def shared_report(link: ShareLink) -> SharedReport | None:
    """The report ``link`` shows, or None (no option, or nothing signed and released yet)."""
    if not link.include_report:
        return None
    from consultations.models import Report
    from consultations.release import released

    signed = released(Report.objects.filter(consult__study_id=link.study_id))
    newest = signed.order_by("-signed_at", "-pk").only("consult_id").first()
    if newest is None:
        return None
    versions = released(Report.objects.filter(consult_id=newest.consult_id)).select_related("signed_by", "consult")
    versions = list(versions.order_by("-version"))
    return SharedReport(consult=versions[0].consult, versions=versions)


def report_pdf_response(report: SharedReport) -> HttpResponse:
    """The shared report as the same PDF the portal sends (its versions, oldest first)."""
    from consultations.responses import report_pdf_response as pdf_response

    return pdf_response(report.consult, list(reversed(report.versions)))
