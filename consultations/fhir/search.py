"""Search parameters -> querysets.

Each resource type lists its parameters (``consultations.fhir.registry``) as handlers built here:
``token``, ``reference``, ``date`` and ``string``. A handler takes the queryset and one occurrence
of the parameter and returns the narrowed queryset; a comma in a value means "any of", a repeated
parameter "all of", as FHIR says. A value a handler cannot read is a 400 naming the parameter.

``read_query`` checks the whole query first: a parameter the type does not support is a 400 (FHIR's
strict handling, the default), or is left out when the client sent ``Prefer: handling=lenient``.
Every value is checked there too, before any reaches the database: control characters (NUL, which
PostgreSQL refuses in text) and lone surrogates, ids and paging numbers past the database's
integers, are a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from .errors import InvalidError

Handler = Callable[[QuerySet, str], QuerySet]

DEFAULT_COUNT = 20
MAX_COUNT = 100
# Parameters of the search itself rather than of the resources.
CONTROL = frozenset({"_count", "_offset", "_include", "_format", "_pretty"})
DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge")
# The largest whole number the database takes as an id or an OFFSET (a 64-bit integer).
MAX_DB_INTEGER = 2**63 - 1
PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def any_of(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _or(conditions: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined


def ids(field_name: str, *, numeric: bool = True) -> Handler:
    """``_id=1,2``: a non-number where ids are numbers matches nothing (it names no resource)."""

    def handle(qs: QuerySet, value: str) -> QuerySet:
        wanted = any_of(value)
        if numeric:
            wanted = [int(v) for v in wanted if is_number(v)]
        return qs.filter(**{f"{field_name}__in": wanted})

    handle.numeric_ids = numeric
    return handle


def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def token(match: Callable[[str | None, str], Q], name: str) -> Handler:
    """``system|code``, ``|code`` (no system), ``code`` (any system) or ``system|`` (any code);
    ``match(system, code)`` gives the condition (``system`` None: any)."""

    def handle(qs: QuerySet, value: str) -> QuerySet:
        conditions = []
        for part in any_of(value):
            system, bar, code = part.partition("|")
            if not bar:
                system, code = None, part
            conditions.append(match(system, code))
        return qs.filter(_or(conditions))

    return handle


def codes(field_name: str, mapping: dict[str, list[str]], name: str) -> Handler:
    """A token over a fixed list of codes (status, priority): ``mapping`` code -> column values."""

    def match(system: str | None, code: str) -> Q:
        if code not in mapping:
            raise InvalidError(f"{name}: {code!r} is not one of {', '.join(mapping)}.", expression=[name])
        return Q(**{f"{field_name}__in": mapping[code]})

    return token(match, name)


def reference(field_name: str, target: str, name: str) -> Handler:
    """``patient=12``, ``Patient/12`` or the full URL of ``Patient/12``."""

    def handle(qs: QuerySet, value: str) -> QuerySet:
        wanted = []
        for part in any_of(value):
            kind, _, key = part.rstrip("/").rpartition("/")
            if kind and kind.rsplit("/", 1)[-1] != target:
                raise InvalidError(f"{name}: {part!r} is not a reference to a {target}.", expression=[name])
            if is_number(key):
                wanted.append(int(key))
        return qs.filter(**{f"{field_name}__in": wanted})

    handle.numeric_ids = True
    return handle


def string(field_names: list[str]) -> Handler:
    """Starts with (FHIR's default string match), in any case, in any of the fields (words of a
    DICOM person name are separated by ``^``, so each word is tried too)."""

    def handle(qs: QuerySet, value: str) -> QuerySet:
        conditions = []
        for part in any_of(value):
            for name in field_names:
                conditions += [Q(**{f"{name}__istartswith": part}), Q(**{f"{name}__icontains": f"^{part}"})]
        return qs.filter(_or(conditions))

    return handle


def date_bounds(value: str, name: str) -> tuple[str, dt.datetime, dt.datetime]:
    """``[prefix]YYYY[-MM[-DD]]`` or a dateTime -> (prefix, start, end): the instants the value
    covers, end excluded; dates are days on the site's clock (TIME_ZONE)."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    partial = PARTIAL_DATE.match(text)
    try:
        if partial:
            year, month, day = (int(g) if g else None for g in partial.groups())
            start = dt.datetime(year, month or 1, day or 1, tzinfo=zone)
            if day:
                end = start + dt.timedelta(days=1)
            elif month:
                end = start.replace(year=year + (month == 12), month=month % 12 + 1)
            else:
                end = start.replace(year=year + 1)
            return prefix, start, end
        moment = parse_datetime(text.replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidError(
            f"{name}: {value!r} is not a date such as 2024-05-01 "
            f"(with an optional prefix: {', '.join(DATE_PREFIXES)}).",
            expression=[name],
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return prefix, moment, moment + dt.timedelta(seconds=1)


def date(field_name: str, name: str, *, calendar: bool = False) -> Handler:
    """A date parameter on a datetime column, or on a date column (``calendar``: compared by day)."""

    def handle(qs: QuerySet, value: str) -> QuerySet:
        prefix, start, end = date_bounds(value.strip(), name)
        low, high = start, end
        if calendar:  # whole days; an instant on a date column stands for its day
            low = start.date()
            high = end.date() if end - start >= dt.timedelta(days=1) else low + dt.timedelta(days=1)
        f = field_name
        condition = {
            "eq": Q(**{f"{f}__gte": low, f"{f}__lt": high}),
            "ne": ~Q(**{f"{f}__gte": low, f"{f}__lt": high}) & Q(**{f"{f}__isnull": False}),
            "lt": Q(**{f"{f}__lt": low}),
            "le": Q(**{f"{f}__lt": high}),
            "gt": Q(**{f"{f}__gte": high}),
            "ge": Q(**{f"{f}__gte": low}),
        }[prefix]
        return qs.filter(condition)

    return handle


@dataclass
class Query:
    """A search's parameters, read and checked: what to filter by, which page, what to include."""

    filters: list[tuple[str, str]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def lenient(request) -> bool:
    """``Prefer: handling=lenient`` (among other preferences, separated by commas or semicolons)."""
    prefer = request.META.get("HTTP_PREFER", "").replace(";", ",")
    return any(part.replace(" ", "").lower() == "handling=lenient" for part in prefer.split(","))


def shown(value: str) -> str:
    """A value as quoted in a refusal, cut short: it may be thousands of characters long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _too_big(digits: str) -> bool:
    # Compared by length first: int() refuses strings of more than 4300 digits.
    return len(digits.lstrip("0")) > len(str(MAX_DB_INTEGER)) or int(digits) > MAX_DB_INTEGER


def _number(params, name: str, default: int, low: int) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    if not is_number(raw) or _too_big(raw) or int(raw) < low:
        raise InvalidError(
            f"{name}: {shown(raw)} is not a whole number from {low} to {MAX_DB_INTEGER}.", expression=[name]
        )
    return int(raw)


def check_value(name: str, value: str, handler: Handler | None) -> None:
    """A 400 naming the parameter for a value no search could use: one with a control character or
    a lone surrogate (text the database cannot hold), or an id past the database's integers."""
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        raise InvalidError(
            f"{name}: the value contains a control character (U+{ord(bad):04X}); search values are plain text.",
            expression=[name],
        )
    if getattr(handler, "numeric_ids", False):
        for part in any_of(value):
            key = part.rstrip("/").rpartition("/")[2]
            if is_number(key) and _too_big(key):
                raise InvalidError(
                    f"{name}: {shown(part)} names no resource: ids are whole numbers up to {MAX_DB_INTEGER}.",
                    expression=[name],
                )


def read_query(request, parameters: dict[str, Handler], includes: dict[str, object], resource_type: str) -> Query:
    params = request.query_params
    soft = lenient(request)
    query = Query()
    unknown = sorted(name for name in params if name not in parameters and name not in CONTROL)
    if unknown and not soft:
        raise InvalidError(
            f"Unknown search parameter{'s' if len(unknown) > 1 else ''} for {resource_type}: {', '.join(unknown)}. "
            f"Supported: {', '.join(sorted(parameters))}, _count, _include.",
            expression=unknown,
            issue="not-supported",
        )
    query.ignored = unknown
    for name in [*parameters, *CONTROL]:
        for value in params.getlist(name):
            check_value(name, value, parameters.get(name))
    for name in parameters:
        query.filters += [(name, value) for value in params.getlist(name) if value.strip()]
    query.count = min(_number(params, "_count", DEFAULT_COUNT, 1), MAX_COUNT)
    query.offset = _number(params, "_offset", 0, 0)
    for value in params.getlist("_include"):
        if value in includes:
            query.includes.append(value)
        elif soft:
            query.ignored.append(f"_include={value}")
        else:
            raise InvalidError(
                f"_include: {value!r} is not supported for {resource_type}"
                + (f" (supported: {', '.join(includes)})." if includes else "."),
                expression=["_include"],
                issue="not-supported",
            )
    return query


def apply(qs: QuerySet, parameters: dict[str, Handler], query: Query) -> QuerySet:
    for name, value in query.filters:
        qs = parameters[name](qs, value)
    return qs
