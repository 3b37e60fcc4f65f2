"""Which version of a report is the one to act on: an amended version says so (when, and why), and an
older one says what superseded it, the same way on every surface (consult page, report editor,
patient portal, share page, PDF, REST API, the clinicians' notification).

A consult's report versions are consecutive: version 1 answers the consult, each later version is
an addendum started from the signed text with a reason (``consultations.reports.start_addendum``),
signed before the next may start. So version N, once signed, supersedes version N-1.

What supersedes a version is relative to its reader: a patient reads a version only once it is
released (``consultations.release``), so ``labelled`` is given what the reader may read and a
version is superseded only by one they may read too.
"""

from __future__ import annotations

from collections.abc import Iterable

from accounts.timeformat import format_instant

from .models import Report

# The clinical sections whose changes an amendment's notification names, in reading order.
SECTIONS = (("findings", "findings"), ("impression", "impression"), ("recommendations", "recommendations"))


def labelled(reports: Iterable[Report]) -> list[Report]:
    """``reports`` (one consult's versions a reader may read) as a list in the order given, each
    with ``predecessor`` (the signed version before it in the list, or None) and ``successor``
    (the signed version after it in the list, or None: the current one)."""
    versions = list(reports)
    signed = sorted((r for r in versions if r.is_signed), key=lambda r: r.version)
    for report in versions:
        report.predecessor = report.successor = None
    for earlier, later in zip(signed, signed[1:], strict=False):
        earlier.successor, later.predecessor = later, earlier
    for report in versions:
        if not report.is_signed and signed and signed[-1].version < report.version:
            report.predecessor = signed[-1]  # a draft addendum amends the latest signed version
    return versions


def supersedes(report: Report) -> int | None:
    """The version number ``report`` replaces (None for the first)."""
    predecessor = getattr(report, "predecessor", None)
    if predecessor is not None:
        return predecessor.version
    return report.version - 1 if report.version > 1 else None


def superseded_text(report: Report) -> str:
    """ "Superseded by version 2 on 7 Dec 2026, 14:30 CET" ("" for the current version)."""
    successor = getattr(report, "successor", None)
    if successor is None:
        return ""
    return f"Superseded by version {successor.version} on {format_instant(successor.signed_at)}"


def amended_text(report: Report) -> str:
    """ "Amended on 7 Dec 2026, 14:30 CET (version 2, replaces version 1). Reason: ..." ("" for version 1)."""
    if not report.is_addendum:
        return ""
    when = f"Amended on {format_instant(report.signed_at)}" if report.is_signed else "Amendment, not signed yet"
    text = f"{when} (version {report.version}, replaces version {supersedes(report)})."
    return f"{text} Reason: {report.addendum_reason}" if report.addendum_reason else text


def previous_signed(report: Report) -> Report | None:
    """The signed version ``report`` amends."""
    return (
        Report.objects.filter(consult_id=report.consult_id, version__lt=report.version, signed_at__isnull=False)
        .order_by("-version")
        .first()
    )


def changed_sections(previous: Report | None, report: Report) -> list[str]:
    """The clinical sections whose text differs between the two versions (trailing spaces aside)."""
    if previous is None:
        return []
    return [label for name, label in SECTIONS if _text(previous, name) != _text(report, name)]


def _text(report: Report, name: str) -> str:
    return (getattr(report, name) or "").strip()
