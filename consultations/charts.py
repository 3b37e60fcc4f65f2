"""Small charts drawn on the server as SVG: no script, readable on a phone (narrow viewBoxes that
scale to the screen's width, labels above bars rather than beside them), a title for screen
readers, and the figures themselves in a table next to each chart (templates)."""

from __future__ import annotations

import datetime as dt

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 360
# Series colours, distinguishable in grey and by the colour blind (Okabe-Ito).
COLOURS = ["#D55E00", "#E69F00", "#0072B2", "#009E73", "#CC79A7", "#56B4E9"]


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


def bars(rows: list[tuple[str, float | int | None]], *, title: str, unit: str = "") -> SafeString:
    """Horizontal bars, one per row: its label above it, its value after it."""
    top = max((value or 0 for _, value in rows), default=0) or 1
    row_height, bar_height, label_width = 38, 14, WIDTH - 70
    parts = []
    for n, (label, value) in enumerate(rows):
        y = n * row_height
        width = round(label_width * (value or 0) / top)
        parts.append(
            format_html(
                '<text x="0" y="{}" class="chart-label">{}</text>'
                '<rect x="0" y="{}" width="{}" height="{}" rx="2" fill="{}"></rect>'
                '<text x="{}" y="{}" class="chart-value">{}{}</text>',
                y + 14,
                label,
                y + 19,
                width,
                bar_height,
                COLOURS[2],
                width + 6,
                y + 31,
                _number(value),
                unit,
            )
        )
    height = max(row_height * len(rows), row_height)
    return _svg(title, height, _join(parts))


def columns(
    weeks: list[str], series: list[tuple[str, list[float | int | None]]], *, title: str, unit: str = ""
) -> SafeString:
    """Columns per week, one per series side by side, with a legend above and week labels below."""
    legend_height, axis_height, plot_height = 22 * ((len(series) + 1) // 2), 18, 140
    values = [value for _, line in series for value in line if value is not None]
    top = max(values, default=0) or 1
    group = WIDTH / max(len(weeks), 1)
    bar = max(2.0, (group - 4) / max(len(series), 1))
    parts = []
    for n, (name, _) in enumerate(series):
        x, y = (n % 2) * (WIDTH / 2), (n // 2) * 22
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"></rect>'
                '<text x="{}" y="{}" class="chart-label">{}</text>',
                x,
                y + 2,
                COLOURS[n % len(COLOURS)],
                x + 16,
                y + 12,
                name,
            )
        )
    base = legend_height + plot_height
    parts.append(format_html('<line x1="0" x2="{}" y1="{}" y2="{}" class="chart-axis"></line>', WIDTH, base, base))
    parts.append(
        format_html('<text x="0" y="{}" class="chart-value">{}{}</text>', legend_height + 10, _number(top), unit)
    )
    for w, week in enumerate(weeks):
        for n, (name, line) in enumerate(series):
            value = line[w]
            if value is None:
                continue
            height = round(plot_height * value / top, 1)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}{}</title></rect>',
                    round(w * group + 2 + n * bar, 1),
                    base - height,
                    round(bar - 0.5, 1),
                    height,
                    COLOURS[n % len(COLOURS)],
                    name,
                    week,
                    _number(value),
                    unit,
                )
            )
        if w % 2 == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="chart-tick">{}</text>', round(w * group + 1, 1), base + 13, _short(week)
                )
            )
    return _svg(title, base + axis_height, _join(parts))


def _short(week: str) -> str:
    try:
        day = dt.date.fromisoformat(week)
    except ValueError:
        return week
    return f"{day.day} {day:%b}"


def _svg(title: str, height: float, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">'
        "<title>{}</title>{}</svg>",
        WIDTH,
        height,
        title,
        title,
        body,
    )


def _join(parts: list[SafeString]) -> SafeString:
    """Markup already escaped by format_html, joined (format_html_join keeps it safe)."""
    return format_html_join("", "{}", ((part,) for part in parts))
