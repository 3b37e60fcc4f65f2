"""The service dashboard for administrators and practice admins (consultations.dashboard)."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from teleconsult.spreadsheets import csv_line

from .. import charts, dashboard


@require_safe
@login_required
def service_dashboard(request: HttpRequest) -> HttpResponse:
    """``?part=now``: the live part alone (the page refreshes it); ``?csv=<figure>``: one figure."""
    consults = dashboard.consults_for(request.user)
    if consults is None:
        raise Http404("No such page.")
    board = dashboard.build(consults)
    if wanted := request.GET.get("csv"):
        figure = board.figure(wanted)
        if figure is None:
            names = ", ".join(sorted(board.FIGURES))
            return HttpResponse(
                f"No figure named {wanted!r}; there are: {names}.", status=400, content_type="text/plain"
            )
        return csv_response(figure.csv_rows(), f"{figure.key}-{dt.date.today().isoformat()}.csv")
    if request.GET.get("part") == "now":
        return render(request, "consultations/_dashboard_now.html", {"board": board})
    context = {"board": board, "charts": chart_context(board), "title": "Service dashboard"}
    return render(request, "consultations/dashboard.html", context)


def chart_context(board: dashboard.Dashboard) -> dict:
    weeks = [row[0] for row in board.turnaround.rows]
    p50 = [
        (priority.label, [row[1 + 3 * n] for row in board.turnaround.rows])
        for n, priority in enumerate(dashboard.PRIORITIES)
    ]
    p90 = [
        (priority.label, [row[2 + 3 * n] for row in board.turnaround.rows])
        for n, priority in enumerate(dashboard.PRIORITIES)
    ]
    return {
        "open": charts.bars([(row[0], row[-1]) for row in board.open.rows], title=board.open.title),
        "turnaround_p50": charts.columns(weeks, p50, title="Turnaround p50 per priority, hours", unit=" h"),
        "turnaround_p90": charts.columns(weeks, p90, title="Turnaround p90 per priority, hours", unit=" h"),
        "sla": charts.columns(
            [row[0] for row in board.sla.rows],
            [("Reported on time", [row[3] for row in board.sla.rows])],
            title=board.sla.title,
            unit=" %",
        ),
        "volume": charts.bars([(row[0], row[1]) for row in board.volume.rows], title=board.volume.title),
        "agreement": charts.bars([(row[0], row[1]) for row in board.agreement.rows], title=board.agreement.title),
    }


def csv_response(rows: list[list], filename: str) -> HttpResponse:
    """A figure as CSV, its cells safe to open in a spreadsheet (teleconsult.spreadsheets)."""
    response = HttpResponse("".join(csv_line(row) for row in rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
