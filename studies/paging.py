"""Pages of large result sets: the keys of a page first, then its rows; a count that stops.

At a hospital's scale a page of a search is cheapest in two steps: the database sorts narrow rows
(the keys and the columns of the ordering) and stops at the page, then fetches the page's wide rows
(the patient's name, summaries) for those keys only. In one step it joins every match to its
patient before sorting them. Exact counts of large sets scan them all, so the list page counts up
to a limit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db.models import F, QuerySet
from django.db.models.expressions import OrderBy
from django.utils.functional import cached_property

# The list page counts matches up to this many (or one page past the page shown, when further);
# past it, it says "more than": counting matches reads them, and a name search among a million
# studies reads a dozen rows per match (the count grows as the reader pages further).
COUNT_LIMIT = 100
# Pages further than this are not served (narrow the search instead): each page's keys are read
# from the first match on.
MAX_PAGE = 400


class CappedPaginator(Paginator):
    """A paginator that counts at most ``COUNT_LIMIT`` matches, or one page past the page asked
    for when that is further; ``capped`` says there are more than it counted (so the last page
    is not known, and "next" still leads on).

    ``keys_for(stop)``, when given, answers the keys of the first ``stop`` matches in order (see
    :func:`ordered_keys`), read once for the page and the count; otherwise they are read from
    ``object_list``."""

    asked = 1

    def __init__(self, object_list, per_page, *, keys_for: Callable[[int], list] | None = None, **kwargs) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.keys_for = keys_for

    def get_page(self, number):
        try:
            self.asked = min(max(1, int(number)), MAX_PAGE)
        except (TypeError, ValueError, OverflowError):
            self.asked = 1
        return super().get_page(self.asked)

    @cached_property
    def limit(self) -> int:
        return max(COUNT_LIMIT, (self.asked + 1) * self.per_page)

    @cached_property
    def top(self) -> int:
        return self.asked * self.per_page

    @cached_property
    def keys(self) -> list:
        """The keys of the matches up to the end of the page asked for (and one more), in order."""
        if self.keys_for is not None:
            return self.counted_keys[: self.top + 1]
        return list(self.object_list.values_list("pk", flat=True)[: self.top + 1])

    @cached_property
    def counted_keys(self) -> list:
        """With ``keys_for``: the keys of the matches up to the count's limit (and one more)."""
        return self.keys_for(self.limit + 1)

    @cached_property
    def count(self) -> int:
        # When the matches end before the page does, its keys are all of them: no count to make.
        if len(self.keys) <= self.top:
            return len(self.keys)
        if self.keys_for is not None:
            return len(self.counted_keys)
        return self.object_list.order_by().values("pk")[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.limit

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = rows_for_keys(self.object_list, self.keys[bottom : bottom + self.per_page])
        return self._get_page(rows, number, self)


def page_by_keys(queryset: QuerySet, start: int, stop: int) -> list:
    """``queryset[start:stop]`` (model instances or ``values()`` dicts with "pk"), found in two
    queries: the page's keys in the queryset's order, then their rows."""
    return rows_for_keys(queryset, list(queryset.values_list("pk", flat=True)[start:stop]))


def rows_for_keys(queryset: QuerySet, keys: list) -> list:
    """The rows of ``queryset`` with these keys, in the order of ``keys``."""
    if not keys:
        return []
    rows = {(row["pk"] if isinstance(row, dict) else row.pk): row for row in queryset.order_by().filter(pk__in=keys)}
    return [rows[key] for key in keys if key in rows]


# -- one search over the branches of a visibility rule ------------------------------------------


@functools.total_ordering
class _Descending:
    """A value that sorts the other way round."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __eq__(self, other) -> bool:
        return self.value == other.value

    def __lt__(self, other) -> bool:
        return other.value < self.value


@dataclass(frozen=True)
class Order:
    """An order of rows by columns, each ``(column, descending)``, NULLs first: written out in full
    so that the database and :func:`ordered_keys`' merge agree on it whatever the database."""

    columns: tuple[tuple[str, bool], ...]

    def expressions(self, names: Mapping[str, str]) -> list[OrderBy]:
        return [
            F(names.get(column, column)).desc(nulls_first=True)
            if descending
            else F(names.get(column, column)).asc(nulls_first=True)
            for column, descending in self.columns
        ]

    def merge_key(self, values: tuple) -> tuple:
        return tuple(
            (0,) if value is None else (1, _Descending(value) if descending else value)
            for value, (_, descending) in zip(values, self.columns, strict=True)
        )


@dataclass(frozen=True)
class Branch:
    """One way rows come to be visible: ``queryset``, read in order along an index of its own (a
    practice's studies). A branch with ``walk`` is read through another table instead: ``walk``
    gives the keys in order with copies of the sort columns (named by ``names``; a user's grants
    with their study's date, say), and ``queryset`` is narrowed to a window of those keys at a
    time, so the search's filters are checked on a few hundred rows per query whatever the
    database would otherwise plan for them."""

    queryset: QuerySet
    walk: QuerySet | None = None
    names: Mapping[str, str] = field(default_factory=dict)


# A walked branch reads at least this many keys at a time, four times as many each time after.
WALK_WINDOW = 256
WALK_GROWTH = 4


def ordered_keys(
    branches: list[Branch],
    narrow: Callable[[QuerySet], QuerySet],
    order: Order,
    stop: int,
    narrow_copies: Callable[[QuerySet], QuerySet] | None = None,
) -> list:
    """The keys of the first ``stop`` rows, in ``order``, of the union of ``branches``, each
    narrowed by ``narrow`` (the search's filters). ``narrow_copies``: those of the filters that a
    walked branch's copies answer too (the study date), applied to its walk as well, so that its
    windows hold only rows that may match.

    Each branch gives its first ``stop`` matches in order, then they are merged here: a physician
    who sees the 5,000 studies of their grants among a million costs the first page of their
    grants, not 5,000 lookups and a sort. A row two branches hold is kept once."""
    rows: list[tuple[tuple, object]] = []
    for branch in branches:
        read = _walked if branch.walk is not None else _read
        if branch.walk is not None and narrow_copies is not None:
            branch = Branch(branch.queryset, walk=narrow_copies(branch.walk), names=branch.names)
        rows += [(order.merge_key(values), key) for key, values in read(branch, narrow, order, stop)]
    rows.sort(key=lambda row: row[0])
    return list(dict.fromkeys(key for _, key in rows))[:stop]


def _read(branch: Branch, narrow, order: Order, stop: int) -> list[tuple[object, tuple]]:
    columns = [column for column, _ in order.columns]
    found = narrow(branch.queryset).order_by(*order.expressions({})).values_list("pk", *columns)[:stop]
    return [(row[0], row[1:]) for row in found]


def _walked(branch: Branch, narrow, order: Order, stop: int) -> list[tuple[object, tuple]]:
    """The first ``stop`` distinct rows of ``branch.queryset`` whose keys ``branch.walk`` gives,
    in its order, that ``narrow`` keeps: a window of keys at a time, each a subquery of the next
    query, so that the database joins the filters to a few hundred rows it reads along an index.
    A row's copies (``branch.names``) sort like the row itself, so the rows of one window are in
    order by the row's own columns."""
    walk = branch.walk.order_by(*order.expressions(branch.names)).values(branch.names["pk"])
    total = walk.count()
    columns = [column for column, _ in order.columns]
    found: dict[object, tuple] = {}
    start, size = 0, max(stop, WALK_WINDOW)
    while len(found) < stop and start < total:
        window = narrow(branch.queryset.filter(pk__in=walk[start : start + size]))
        # ``stop`` rows hold the ones still wanted even if all found so far are among them.
        rows = window.order_by(*order.expressions({})).values_list("pk", *columns)[:stop]
        for row in rows:
            found.setdefault(row[0], row[1:])
        start += size
        # The next window: as many keys as the matches so far say the rest needs (and half again),
        # or four times as many when nothing matched yet.
        wanted = stop - len(found)
        size = math.ceil(wanted * start / len(found) * 1.5) if found else size * WALK_GROWTH
        size = max(size, WALK_WINDOW)
    return list(found.items())[:stop]
