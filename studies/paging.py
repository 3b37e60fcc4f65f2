"""Pages of large result sets: the keys of a page first, then its rows; a count that stops.

At a hospital's scale a page of a search is cheapest in two steps: the database sorts narrow rows
(the keys and the columns of the ordering) and stops at the page, then fetches the page's wide rows
(the patient's name, summaries) for those keys only. In one step it joins every match to its
patient before sorting them. Exact counts of large sets scan them all, so the list page counts up
to a limit.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

# The list page counts matches up to this many (or one page past the page shown, when further);
# past it, it says "more than": an exact count of a large practice's studies scans all of them.
COUNT_LIMIT = 1000
# Pages further than this are not served (narrow the search instead): each page's keys are read
# from the first match on.
MAX_PAGE = 400


class CappedPaginator(Paginator):
    """A paginator that counts at most ``COUNT_LIMIT`` matches, or one page past the page asked
    for when that is further; ``capped`` says there are more than it counted (so the last page
    is not known, and "next" still leads on)."""

    asked = 1

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
        return list(self.object_list.values_list("pk", flat=True)[: self.top + 1])

    @cached_property
    def count(self) -> int:
        # When the matches end before the page does, its keys are all of them: no count to make.
        if len(self.keys) <= self.top:
            return len(self.keys)
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
