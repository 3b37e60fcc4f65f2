"""The signed report a share link carries when its maker ticked "Include the signed report".

What the holder reads is the study's latest signed report as its patient may read it: the consult
whose report was signed last, with every signed version of that report the patient may read now,
newest first, so an amendment is read before the version it amends and is labelled as one. It is
looked up each time the link is opened, so a report signed after the link was made goes with it too
(the access page says so when the link is made). A link made without the option never shows a
report, whatever is signed later.

Reports belong to consultations, which sits above studies: it registers where they come from
(``register_report_source``, from consultations.extensions), as it registers its panels
(studies.panels). With nothing registered a share simply has no report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpResponse

from ..models import ShareLink


@dataclass(frozen=True)
class SharedReport:
    consult: object  # the consult whose report it is
    versions: list  # its signed versions the patient may read now, newest first

    def __post_init__(self) -> None:
        # Each version names the one that superseded it (the next newer here: versions are newest
        # first), for the page's "Superseded by version N on <date>"; the latest names none.
        for newer, older in zip(self.versions, self.versions[1:], strict=False):
            older.successor = newer
        if self.versions:
            self.versions[0].successor = None

    @property
    def latest(self):
        return self.versions[0]

    @property
    def amended(self) -> bool:
        return self.latest.version > 1


@dataclass(frozen=True)
class ReportSource:
    find: Callable[[ShareLink], SharedReport | None]
    pdf: Callable[[SharedReport], HttpResponse]


_source: ReportSource | None = None


def register_report_source(find: Callable[[ShareLink], SharedReport | None], pdf: Callable) -> None:
    """``find(link)``: the report a link shows (or None); ``pdf(report)``: its PDF response."""
    global _source
    _source = ReportSource(find, pdf)


def shared_report(link: ShareLink) -> SharedReport | None:
    """The report ``link`` shows, or None (no option, nothing signed and released yet, or no source)."""
    if not link.include_report or _source is None:
        return None
    return _source.find(link)


def report_pdf_response(report: SharedReport) -> HttpResponse:
    """The shared report as the same PDF the portal sends (its versions, oldest first)."""
    return _source.pdf(report)
