"""CSV that spreadsheets open safely: a cell whose text a spreadsheet would run as a formula (it
starts with =, +, -, @, a tab or a carriage return; OWASP's CSV injection guidance) is written with
a leading apostrophe. Numbers stay numbers. Used by every CSV export (access history, dashboard)."""

from __future__ import annotations

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file whose write() hands the line back, for csv.writer into a streamed response."""

    def write(self, value: str) -> str:
        return value


def csv_line(cells) -> str:
    """One CSV line of safe cells."""
    return csv.writer(_Echo()).writerow([safe_cell(cell) for cell in cells])
