"""The service's health for administrators and practice admins: what is open and due now, and how
the last weeks went (turnaround per priority, SLA compliance, volume per specialty, agreement).

Each figure is a ``Figure``: a title, its column names and rows, which the page draws as a chart
and a table and the CSV download writes as they are, so the three never disagree. Weeks start on
Monday in the reader's time zone; a consult counts in the week it was reported (turnaround, SLA),
submitted (volume) or signed (agreement).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from accounts.models import Specialty

from .models import OPEN_STATES, Agreement, ConsultRequest, Priority, Report, State

WEEKS = 12
DUE_LIST_LIMIT = 50
PRIORITIES = [Priority.STAT, Priority.URGENT, Priority.ROUTINE]


def consults_for(user) -> QuerySet | None:
    """The consults whose figures ``user`` may read: every one for administrators, their
    practices' for practice admins; None for everyone else (the page is a 404 for them)."""
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_admin:
        return ConsultRequest.objects.all()
    administered = administered_practices(user)
    if not administered:
        return None
    return ConsultRequest.objects.filter(study__practice_id__in=administered)


def administered_practices(user) -> list[int]:
    if user.is_patient:
        return []
    return list(user.memberships.filter(role="admin").values_list("practice_id", flat=True))


@dataclass
class Figure:
    key: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    unit: str = ""

    def csv_rows(self) -> list[list]:
        return [self.columns, *self.rows]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the value below which ``fraction`` of the values lie)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def week_starts(now: dt.datetime, weeks: int = WEEKS) -> list[dt.date]:
    """The Mondays of the last ``weeks`` weeks, oldest first, in the active time zone."""
    today = timezone.localtime(now).date()
    monday = today - dt.timedelta(days=today.weekday())
    return [monday - dt.timedelta(weeks=n) for n in reversed(range(weeks))]


def week_of(moment: dt.datetime) -> dt.date:
    day = timezone.localtime(moment).date()
    return day - dt.timedelta(days=day.weekday())


def window_start(weeks: list[dt.date]) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(weeks[0], dt.time.min), timezone.get_current_timezone())


# -- now -------------------------------------------------------------------------------------------


def open_now(consults: QuerySet) -> Figure:
    """Open consults by state (rows) and priority (columns)."""
    counts = Counter(consults.filter(state__in=OPEN_STATES).values_list("state", "priority"))
    figure = Figure("open", "Open consults now", ["State", *[p.label for p in PRIORITIES], "All"])
    for state in OPEN_STATES:
        per_priority = [counts.get((state, p.value), 0) for p in PRIORITIES]
        figure.rows.append([State(state).label, *per_priority, sum(per_priority)])
    return figure


def due_now(consults: QuerySet, now: dt.datetime) -> list[ConsultRequest]:
    """Open consults overdue or past the warning part of their window, most pressing first."""
    candidates = (
        consults.filter(state__in=OPEN_STATES, due_at__isnull=False)
        .select_related("study__patient", "assignee", "requester")
        .order_by("due_at")
    )
    warning = settings.TELECONSULT_SLA_WARNING_FRACTION
    found = []
    for consult in candidates[: DUE_LIST_LIMIT * 4]:
        used = consult.sla_fraction_used(now)
        if used is not None and used >= warning:
            found.append(consult)
        if len(found) == DUE_LIST_LIMIT:
            break
    return found


def due_figure(due: list[ConsultRequest], now: dt.datetime) -> Figure:
    figure = Figure("due", "Overdue and near due now", ["Consult", "Priority", "State", "Due", "Specialist"])
    for consult in due:
        figure.rows.append(
            [
                consult.pk,
                consult.get_priority_display(),
                consult.get_state_display(),
                timezone.localtime(consult.due_at).isoformat(timespec="minutes"),
                consult.assignee.display_name if consult.assignee else "",
            ]
        )
    return figure


# -- the last weeks --------------------------------------------------------------------------------


def turnaround(consults: QuerySet, weeks: list[dt.date]) -> Figure:
    """Hours from submission to the first signed report, p50 and p90 per priority and week."""
    hours: dict[tuple[dt.date, str], list[float]] = defaultdict(list)
    rows = consults.filter(reported_at__gte=window_start(weeks), submitted_at__isnull=False).values_list(
        "submitted_at", "reported_at", "priority"
    )
    for submitted, reported, priority in rows:
        hours[(week_of(reported), priority)].append((reported - submitted).total_seconds() / 3600)
    columns = ["Week"]
    for p in PRIORITIES:
        columns += [f"{p.label} p50 (h)", f"{p.label} p90 (h)", f"{p.label} n"]
    figure = Figure("turnaround", "Turnaround: submitted to signed, hours", columns, unit="h")
    for week in weeks:
        row: list = [week.isoformat()]
        for p in PRIORITIES:
            values = hours.get((week, p.value), [])
            row += [_round(percentile(values, 0.5)), _round(percentile(values, 0.9)), len(values)]
        figure.rows.append(row)
    return figure


def sla_compliance(consults: QuerySet, weeks: list[dt.date]) -> Figure:
    """Of the consults reported each week with a deadline, the share reported by it."""
    tally: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    rows = consults.filter(reported_at__gte=window_start(weeks), due_at__isnull=False).values_list(
        "reported_at", "due_at"
    )
    for reported, due in rows:
        counts = tally[week_of(reported)]
        counts[1] += 1
        counts[0] += reported <= due
    figure = Figure("sla", "Reported within the deadline, per week", ["Week", "On time", "Reported", "Percent"])
    for week in weeks:
        on_time, total = tally.get(week, [0, 0])
        figure.rows.append([week.isoformat(), on_time, total, round(100 * on_time / total) if total else None])
    return figure


def volume_by_specialty(consults: QuerySet, weeks: list[dt.date]) -> Figure:
    counts = Counter(
        consults.filter(submitted_at__gte=window_start(weeks)).values_list("specialty", "target_specialist_id")
    )
    per_specialty: Counter = Counter()
    for (specialty, target), n in counts.items():
        label = Specialty(specialty).label if specialty else ("A named specialist" if target else "Any specialist")
        per_specialty[label] += n
    figure = Figure(
        "volume", f"Consults submitted in the last {len(weeks)} weeks, by specialty", ["Specialty", "Consults"]
    )
    figure.rows = [[label, n] for label, n in per_specialty.most_common()]
    return figure


def agreement(consults: QuerySet, weeks: list[dt.date]) -> Figure:
    """Agreement with the outside report, of the consults whose report was signed in the window."""
    signed = Report.objects.filter(consult__in=consults, signed_at__gte=window_start(weeks)).order_by("version")
    # An addendum may grade again: a consult's latest signed version counts, once.
    latest = dict(signed.values_list("consult_id", "agreement"))
    counts = Counter(latest.values())
    figure = Figure("agreement", f"Agreement with the outside report, last {len(weeks)} weeks", ["Grade", "Reports"])
    for grade in Agreement:
        figure.rows.append([grade.label, counts.get(grade.value, 0)])
    figure.rows.append(["Not graded", counts.get("", 0)])
    return figure


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class Dashboard:
    """The figures of ``consults`` at ``now``, each computed when first read: the live part (open,
    due) alone reads only open consults, a CSV download only its own figure."""

    def __init__(self, consults: QuerySet, now: dt.datetime | None = None) -> None:
        self.consults = consults
        self.now = now or timezone.now()
        self.weeks = week_starts(self.now)

    @cached_property
    def open(self) -> Figure:
        return open_now(self.consults)

    @cached_property
    def due(self) -> list[ConsultRequest]:
        return due_now(self.consults, self.now)

    @cached_property
    def due_table(self) -> Figure:
        return due_figure(self.due, self.now)

    @cached_property
    def turnaround(self) -> Figure:
        return turnaround(self.consults, self.weeks)

    @cached_property
    def sla(self) -> Figure:
        return sla_compliance(self.consults, self.weeks)

    @cached_property
    def volume(self) -> Figure:
        return volume_by_specialty(self.consults, self.weeks)

    @cached_property
    def agreement(self) -> Figure:
        return agreement(self.consults, self.weeks)

    FIGURES = {
        "open": "open",
        "due": "due_table",
        "turnaround": "turnaround",
        "sla": "sla",
        "volume": "volume",
        "agreement": "agreement",
    }

    def figure(self, key: str) -> Figure | None:
        """One figure by its key (as CSV downloads name it), computing only that one."""
        name = self.FIGURES.get(key)
        return getattr(self, name) if name else None


def build(consults: QuerySet, now: dt.datetime | None = None) -> Dashboard:
    return Dashboard(consults, now)
