"""QIDO-RS (PS3.18 8.3.4, PS3.4 C.2.2.2): query parameters read and validated, matching as
database filters, and the answers at study, series and instance level, in a constant number of
queries whatever the number of results."""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Func, JSONField, OuterRef, Q, QuerySet, Subquery
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from ..models import Instance, Series, Study
from ..paging import Branch, Order, ordered_keys, page_by_keys, rows_for_keys
from .attributes import STUDY_FIELDS, instance_attributes, series_attributes, study_attributes, study_row, tag_key
from .errors import DicomwebError

# Results per QIDO answer when the client gives no smaller limit; more are announced in a Warning.
QIDO_MAX_RESULTS = 5000
# Studies are answered newest first: study date, then time (studies without them first: the
# order of PostgreSQL's descending index, written out so every database agrees), then the newest row.
STUDY_ORDER = Order((("study_date", True), ("study_time", True), ("pk", True)))

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
DATE_RE = re.compile(r"^\d{8}$")
TIME_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


@dataclass(frozen=True)
class Matcher:
    """How one query key filters: the model field path (from the level's model) and the kind."""

    level: str  # "study", "series" or "instance"
    path: str
    kind: str  # uid, text, itext, pn, date, time, int, modalities


# Paths are relative to the model of their level; PREFIXES reaches them from a lower level.
MATCHERS: dict[str, Matcher] = {
    "PatientID": Matcher("study", "patient__patient_id", "text"),
    "IssuerOfPatientID": Matcher("study", "patient__issuer", "text"),
    "PatientName": Matcher("study", "patient__name", "pn"),
    "PatientBirthDate": Matcher("study", "patient__birth_date", "date"),
    "PatientSex": Matcher("study", "patient__sex", "text"),
    "StudyDate": Matcher("study", "study_date", "date"),
    "StudyTime": Matcher("study", "study_time", "time"),
    "AccessionNumber": Matcher("study", "accession_number", "text"),
    "ModalitiesInStudy": Matcher("study", "pk", "modalities"),
    "ReferringPhysicianName": Matcher("study", "referring_physician", "pn"),
    "StudyDescription": Matcher("study", "description", "itext"),
    "StudyInstanceUID": Matcher("study", "study_instance_uid", "uid"),
    "StudyID": Matcher("study", "study_id", "text"),
    "Modality": Matcher("series", "modality", "text"),
    "SeriesInstanceUID": Matcher("series", "series_instance_uid", "uid"),
    "SeriesNumber": Matcher("series", "series_number", "int"),
    "SeriesDescription": Matcher("series", "description", "itext"),
    "BodyPartExamined": Matcher("series", "body_part", "text"),
    "SOPInstanceUID": Matcher("instance", "sop_instance_uid", "uid"),
    "SOPClassUID": Matcher("instance", "sop_class_uid", "uid"),
    "InstanceNumber": Matcher("instance", "instance_number", "int"),
}
LEVELS = ("study", "series", "instance")
PREFIXES = {
    ("study", "study"): "",
    ("series", "study"): "study__",
    ("series", "series"): "",
    ("instance", "study"): "series__study__",
    ("instance", "series"): "series__",
    ("instance", "instance"): "",
}
CONTROL_PARAMS = {"limit", "offset", "includefield", "fuzzymatching"}
# Kinds of key where a repeated key is list matching (PS3.18 8.3.4.1, PS3.4 C.2.2.2): a match of
# any of the values. A date, time or number takes one value (or one range): a repeat is refused.
LIST_KINDS = {"uid", "text", "itext", "pn", "modalities"}

# Attributes that "includefield=all" adds at study and series level, read from a first instance.
EXTRA_STUDY_KEYWORDS = (
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "OtherPatientIDs",
    "InstitutionName",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "PatientComments",
    "IssuerOfAccessionNumberSequence",
)
EXTRA_SERIES_KEYWORDS = (
    "SeriesDate",
    "SeriesTime",
    "ProtocolName",
    "Laterality",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "StationName",
    "PatientPosition",
    "FrameOfReferenceUID",
)


@dataclass
class QidoQuery:
    # keyword -> raw values: one, or several when the key was repeated (a match of any of them)
    filters: dict[str, list[str]] = field(default_factory=dict)
    limit: int | None = None
    offset: int = 0
    include_all: bool = False
    include_tags: list[str] = field(default_factory=list)  # 8-hex keys
    unsupported: list[str] = field(default_factory=list)
    fuzzy: bool = False  # fuzzymatching=true was asked for (and is not done: see warning_header)


def keyword_of(key: str) -> str | None:
    """A query key as a DICOM keyword: keywords as they are, tags as ``00100010`` or ``(0010,0010)``."""
    text = key.strip().strip("()").replace(",", "")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        return keyword_for_tag(int(text, 16)) or None
    return key if tag_for_keyword(key) is not None else None


def include_tag(value: str) -> str:
    keyword = keyword_of(value)
    if keyword is None:
        raise DicomwebError(f"includefield: {value!r} is not a DICOM keyword or tag.")
    return tag_key(tag_for_keyword(keyword))


def parse_int(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DicomwebError(f"{name} must be an integer, not {value!r}.") from None
    if number < minimum:
        raise DicomwebError(f"{name} must be at least {minimum}, not {number}.")
    return number


def single(name: str, values: list[str]) -> str:
    """The one value of a parameter that takes one; a repeat is refused rather than half-read."""
    if len(values) > 1:
        raise DicomwebError(f"{name} is given {len(values)} times; give it once.")
    return values[0]


def parse_fuzzy(values: list[str]) -> bool:
    value = single("fuzzymatching", values).strip().lower()
    if value not in ("true", "false"):
        raise DicomwebError(f"fuzzymatching must be true or false, not {values[0]!r}.")
    return value == "true"


def parse_qido(params, level: str) -> QidoQuery:
    """Read and validate QIDO query parameters for a search at ``level``; raises DicomwebError.

    A matching key given more than once (``ModalitiesInStudy=CT&ModalitiesInStudy=MR``, as
    dicomweb-client sends a list) matches any of its values where list matching applies
    (``LIST_KINDS``); elsewhere, and for ``limit``, ``offset`` and ``fuzzymatching``, it is a 400."""
    query = QidoQuery()
    allowed = set(LEVELS[: LEVELS.index(level) + 1])
    for key in params:
        values = params.getlist(key)
        if key == "limit":
            query.limit = parse_int("limit", single("limit", values), minimum=1)
        elif key == "offset":
            query.offset = parse_int("offset", single("offset", values), minimum=0)
        elif key == "includefield":
            for value in values:
                for item in re.split(r"[,\\]", value):
                    item = item.strip()
                    if not item:
                        continue
                    if item.lower() == "all":
                        query.include_all = True
                    else:
                        query.include_tags.append(include_tag(item))
        elif key == "fuzzymatching":
            query.fuzzy = parse_fuzzy(values)
        else:
            keyword = keyword_of(key)
            if keyword is None:
                raise DicomwebError(f"{key!r} is not a query parameter or DICOM attribute.")
            matcher = MATCHERS.get(keyword)
            if matcher is None or matcher.level not in allowed:
                query.unsupported.append(keyword)
                continue
            # The keyword and its tag (PatientID, 00100020) are the same key given twice.
            given = query.filters.setdefault(keyword, [])
            given += values
            if len(given) > 1 and matcher.kind not in LIST_KINDS:
                raise DicomwebError(
                    f"{keyword} is given {len(given)} times; it takes one value (or one range, such as "
                    "20240101-20241231), so a repeat cannot be matched."
                )
            for value in values:
                validate_value(keyword, matcher, value)
    return query


def split_list(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\\]", value) if item.strip()]


def parse_date(keyword: str, text: str) -> dt.date:
    if not DATE_RE.match(text):
        raise DicomwebError(f"{keyword}: {text!r} is not a date (YYYYMMDD, or a range such as 20240101-20241231).")
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise DicomwebError(f"{keyword}: {text!r} is not a valid date.") from None


def parse_time(keyword: str, text: str, *, upper: bool) -> dt.time:
    """A (partial) TM value; as an upper bound, missing parts take their largest value."""
    match = TIME_RE.match(text.replace(":", ""))
    if not match:
        raise DicomwebError(f"{keyword}: {text!r} is not a time (HHMMSS.FFFFFF, or a range such as 0800-1200).")
    hour, minute, second, fraction = match.groups()
    try:
        return dt.time(
            int(hour),
            int(minute) if minute else (59 if upper else 0),
            int(second) if second else (59 if upper else 0),
            int(fraction.ljust(6, "0")) if fraction else (999999 if upper and not second else 0),
        )
    except ValueError:
        raise DicomwebError(f"{keyword}: {text!r} is not a valid time.") from None


def split_range(keyword: str, value: str) -> tuple[str, str] | None:
    if "-" not in value:
        return None
    if value.count("-") != 1 or value == "-":
        raise DicomwebError(f"{keyword}: {value!r} is not a range (a-b, a- or -b).")
    low, high = value.split("-")
    return low.strip(), high.strip()


def validate_value(keyword: str, matcher: Matcher, value: str) -> None:
    if value in ("", "*"):
        return
    if matcher.kind == "uid":
        for uid in split_list(value):
            if not UID_RE.match(uid) or len(uid) > 64:
                raise DicomwebError(f"{keyword}: {uid!r} is not a UID.")
    elif matcher.kind == "int":
        parse_int(keyword, value, minimum=-(2**31))
    elif matcher.kind in ("date", "time"):
        date_or_time_q(keyword, matcher.kind, "x", value)


def date_or_time_q(keyword: str, kind: str, path: str, value: str) -> Q:
    bounds = split_range(keyword, value)
    if kind == "date":
        if bounds is None:
            return Q(**{path: parse_date(keyword, value)})
        low, high = bounds
        q = Q()
        if low:
            q &= Q(**{f"{path}__gte": parse_date(keyword, low)})
        if high:
            q &= Q(**{f"{path}__lte": parse_date(keyword, high)})
        return q
    if bounds is None:
        low, high = value, value
    else:
        low, high = bounds
    q = Q()
    if low:
        q &= Q(**{f"{path}__gte": parse_time(keyword, low, upper=False)})
    if high:
        q &= Q(**{f"{path}__lte": parse_time(keyword, high, upper=True)})
    return q


def wildcard_q(path: str, value: str, *, insensitive: bool) -> Q:
    """Single value or ``*``/``?`` wildcard matching; common shapes stay plain LIKE lookups."""
    i = "i" if insensitive else ""
    if "*" not in value and "?" not in value:
        return Q(**{f"{path}__{i}exact": value})
    inner = value.strip("*")
    if "?" not in value and "*" not in inner:
        if value.startswith("*") and value.endswith("*"):
            return Q(**{f"{path}__{i}contains": inner})
        if value.endswith("*"):
            return Q(**{f"{path}__{i}startswith": inner})
        return Q(**{f"{path}__{i}endswith": inner})
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return Q(**{f"{path}__{i}regex": f"^{pattern}$"})


def person_name_q(path: str, value: str) -> Q:
    """A person name matching ``value`` in any of its component groups (PS3.18 F.2.2: alphabetic,
    ideographic, phonetic, stored as ``A=I=P``), case-insensitively: ``山田*`` finds
    ``Yamada^Tarou=山田^太郎=やまだ^たろう``. A value that names groups itself (holds ``=``) is
    matched against the whole name. Every match holds the value's literal parts, as
    ``narrow_walk`` assumes."""
    if "=" in value:
        return wildcard_q(path, value, insensitive=True)
    inner = value.strip("*")
    if "?" not in value and "*" not in inner:
        # Common shapes stay LIKE lookups: a group is the name's start or end, or sits between "=".
        if "*" not in value:
            return (
                Q(**{f"{path}__iexact": value})
                | Q(**{f"{path}__istartswith": f"{value}="})
                | Q(**{f"{path}__iendswith": f"={value}"})
                | Q(**{f"{path}__icontains": f"={value}="})
            )
        if value.startswith("*") and value.endswith("*"):
            return Q(**{f"{path}__icontains": inner})
        if value.endswith("*"):
            return Q(**{f"{path}__istartswith": inner}) | Q(**{f"{path}__icontains": f"={inner}"})
        return Q(**{f"{path}__iendswith": inner}) | Q(**{f"{path}__icontains": f"{inner}="})
    pattern = "".join("[^=]*" if c == "*" else "[^=]" if c == "?" else re.escape(c) for c in value)
    return Q(**{f"{path}__iregex": f"(^|=){pattern}(=|$)"})


def filter_q(keyword: str, values: list[str], level: str) -> Q:
    """The filter of one key: a match of any of its ``values`` (one, unless the key was repeated)."""
    matcher = MATCHERS[keyword]
    path = PREFIXES[(level, matcher.level)] + matcher.path
    if any(value in ("", "*") for value in values):
        return Q()  # universal matching: any one of them matches everything
    if matcher.kind == "uid":
        return Q(**{f"{path}__in": [uid for value in values for uid in split_list(value)]})
    if matcher.kind == "modalities":
        # ModalitiesInStudy: a study matches when one of its series has one of the modalities.
        modalities = [modality for value in values for modality in split_list(value)]
        return Q(**{f"{path}__in": Series.objects.filter(modality__in=modalities).values("study_id")})
    return functools.reduce(operator.or_, (value_q(keyword, matcher, path, value) for value in values))


def value_q(keyword: str, matcher: Matcher, path: str, value: str) -> Q:
    if matcher.kind in ("text", "itext"):
        return wildcard_q(path, value, insensitive=matcher.kind == "itext")
    if matcher.kind == "pn":
        return person_name_q(path, value)
    if matcher.kind in ("date", "time"):
        return date_or_time_q(keyword, matcher.kind, path, value)
    return Q(**{path: int(value)})  # int


def apply_filters(queryset: QuerySet, query: QidoQuery, level: str) -> QuerySet:
    for keyword, values in query.filters.items():
        queryset = queryset.filter(filter_q(keyword, values, level))
    return queryset


# Study attributes a grant keeps a copy of under the same name (studies.models.AccessGrant), so
# their filters narrow a walk of grants too.
COPIED_KEYWORDS = ("StudyDate", "StudyTime")


# Keys whose values a grant's search text holds (studies.models.study_search_text): a study can
# match one only if its grant's text holds the value's longest literal part, so a walk of grants
# skips the others. This holds while matching is literal (wildcards, case-insensitive names, a
# name's component groups: each is a part of the stored name); a fuzzy name matcher would have to
# leave PatientName out.
TEXT_COPIED_KEYWORDS = ("PatientName", "PatientID", "AccessionNumber")


def copied_filters(query: QidoQuery) -> QidoQuery:
    return QidoQuery(filters={k: v for k, v in query.filters.items() if k in COPIED_KEYWORDS})


def narrow_walk(walk: QuerySet, query: QidoQuery) -> QuerySet:
    """A walk of grants narrowed by what their copies answer of ``query``. A repeated key (a match
    of any of its values) narrows nothing: a grant may hold any one of their literals."""
    walk = apply_filters(walk, copied_filters(query), "study")
    literals = [
        longest_literal(values[0])
        for key, values in query.filters.items()
        if key in TEXT_COPIED_KEYWORDS and len(values) == 1
    ]
    return walk.containing(*literals)


def longest_literal(value: str) -> str:
    """The longest part of a matching value without wildcards: "smi" of "smi*", "" of "*"."""
    return max(re.split(r"[*?]", value), key=len)


def page(queryset: QuerySet, query: QidoQuery, keys_for=None) -> tuple[list, bool]:
    """The requested slice, and whether the server cut the answer short at its own maximum.
    ``keys_for(stop)``: the keys of the first ``stop`` matches, where the caller has a faster way
    to them than ``queryset`` (see studies.paging.ordered_keys)."""
    limit = min(query.limit or QIDO_MAX_RESULTS, QIDO_MAX_RESULTS)
    start, stop = query.offset, query.offset + limit + 1
    if keys_for is None:
        rows = page_by_keys(queryset, start, stop)
    else:
        rows = rows_for_keys(queryset, keys_for(stop)[start:])
    more = len(rows) > limit
    return rows[:limit], more and (query.limit is None or query.limit > QIDO_MAX_RESULTS)


def wanted_extra_tags(query: QidoQuery, level: str, standard: dict[str, Any]) -> list[str]:
    tags = [t for t in query.include_tags if t not in standard]
    if query.include_all and level != "instance":
        keywords = EXTRA_STUDY_KEYWORDS if level == "study" else EXTRA_SERIES_KEYWORDS
        tags += [tag_key(tag_for_keyword(k)) for k in keywords]
    return tags


def add_from_metadata(
    dataset: dict[str, Any], metadata: dict[str, Any] | None, tags: list[str], include_all: bool
) -> None:
    """Attributes asked for through includefield, taken from stored header metadata when present."""
    if not metadata:
        return
    if include_all:
        for key, value in metadata.items():
            dataset.setdefault(key, value)
        return
    for key in tags:
        if key in metadata:
            dataset.setdefault(key, metadata[key])


class HeaderAttribute(Func):
    """One attribute of ``Instance.metadata`` by tag key, extracted by the database.

    Django's key lookups take all-digit keys such as ``00080080`` for array indexes, so the JSON
    path is written here with the key quoted.
    """

    output_field = JSONField()

    def __init__(self, tag: str) -> None:
        if not re.fullmatch(r"[0-9A-F]{8}", tag):
            raise ValueError(f"not a tag key: {tag!r}")
        self.tag = tag
        super().__init__(F("metadata"))

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"({column} -> %s)", [*params, self.tag]
        return f"JSON_EXTRACT({column}, %s)", [*params, f'$."{self.tag}"']


def metadata_values(instances: QuerySet, tags: list[str]) -> Iterator[tuple[int, dict]]:
    """(pk, {tag: attribute}) rows holding only the asked-for attributes of each stored header.

    The database extracts them, so a full header (often tens of kilobytes) is never decoded here.
    """
    names = {f"tag_{tag}": HeaderAttribute(tag) for tag in dict.fromkeys(tags)}
    for row in instances.annotate(**names).values_list("pk", *names):
        yield row[0], {name[4:]: value for name, value in zip(names, row[1:], strict=True) if value is not None}


def first_instance_metadata(level: str, pks: list[int], tags: list[str]) -> dict[int, dict]:
    """The ``tags`` of one instance per study or series, in two queries whatever the count."""
    if not pks:
        return {}
    model, owner = (Study, "series__study") if level == "study" else (Series, "series")
    first = Instance.objects.filter(**{owner: OuterRef("pk")}).order_by("pk").values("pk")[:1]
    first_pk = dict(model.objects.filter(pk__in=pks).annotate(first=Subquery(first)).values_list("pk", "first"))
    instances = Instance.objects.filter(pk__in=[pk for pk in first_pk.values() if pk])
    metadata = dict(metadata_values(instances, tags))
    return {owner_pk: metadata.get(instance_pk) or {} for owner_pk, instance_pk in first_pk.items()}


def search_studies(
    studies: QuerySet, query: QidoQuery, study_url, *, branches: list[Branch] | None = None
) -> tuple[list[dict], bool]:
    """``studies`` matching ``query``, newest first. ``branches``: the same studies as the
    branches of the user's visibility rule (``Study.objects.visible_branches``), read each in order."""
    queryset = apply_filters(studies, query, "study").order_by(*STUDY_ORDER.expressions({})).values(*STUDY_FIELDS)
    keys_for = None
    if branches is not None:
        queryset = Study.objects.values(*STUDY_FIELDS)

        def keys_for(stop: int) -> list:
            return ordered_keys(
                branches,
                lambda found: apply_filters(found, query, "study"),
                STUDY_ORDER,
                stop,
                narrow_copies=lambda walk: narrow_walk(walk, query),
            )

    rows, more = page(queryset, query, keys_for)
    answer = [study_attributes(row, study_url(row["study_instance_uid"])) for row in rows]
    extra = wanted_extra_tags(query, "study", answer[0] if answer else {})
    if extra:
        metadata = first_instance_metadata("study", [row["pk"] for row in rows], extra)
        for row, dataset in zip(rows, answer, strict=True):
            add_from_metadata(dataset, metadata.get(row["pk"]), extra, include_all=False)
    return answer, more


def search_series(series: QuerySet, query: QidoQuery, series_url, *, with_study: bool) -> tuple[list[dict], bool]:
    queryset = apply_filters(series.select_related("study__patient"), query, "series").order_by(
        "study_id", "series_number", "pk"
    )
    rows, more = page(queryset, query)
    answer = []
    for item in rows:
        dataset = series_attributes(item, series_url(item))
        if with_study:
            study = study_attributes(study_row(item.study), None)
            for key, value in study.items():
                dataset.setdefault(key, value)
        answer.append(dataset)
    extra = wanted_extra_tags(query, "series", answer[0] if answer else {})
    if extra:
        metadata = first_instance_metadata("series", [item.pk for item in rows], extra)
        for item, dataset in zip(rows, answer, strict=True):
            add_from_metadata(dataset, metadata.get(item.pk), extra, include_all=False)
    return answer, more


def search_instances(instances: QuerySet, query: QidoQuery, instance_url) -> tuple[list[dict], bool]:
    queryset = apply_filters(instances.select_related("series__study__patient"), query, "instance")
    if not query.include_all:
        queryset = queryset.defer("metadata")
    queryset = queryset.order_by("series__study_id", "series_id", "instance_number", "pk")
    rows, more = page(queryset, query)
    answer = [instance_attributes(item, instance_url(item)) for item in rows]
    if query.include_all:
        for item, dataset in zip(rows, answer, strict=True):
            add_from_metadata(dataset, item.metadata, [], include_all=True)
    elif query.include_tags and rows:
        metadata = dict(metadata_values(Instance.objects.filter(pk__in=[item.pk for item in rows]), query.include_tags))
        for item, dataset in zip(rows, answer, strict=True):
            add_from_metadata(dataset, metadata.get(item.pk), query.include_tags, include_all=False)
    return answer, more


FUZZY_WARNING = (
    '299 teleconsult "The fuzzymatching parameter is not supported. Only literal matching has been performed."'
)


def warning_header(query: QidoQuery, more: bool) -> str | None:
    """The Warning header of an answer: fuzzy matching not done (PS3.18 8.3.4.1), keys not matched
    on, and an answer cut short."""
    warnings = [FUZZY_WARNING] if query.fuzzy else []
    if query.unsupported:
        warnings.append(f'299 teleconsult "Matching is not supported on: {", ".join(query.unsupported)}"')
    if more:
        warnings.append(
            f'299 teleconsult "There are more than {QIDO_MAX_RESULTS} results; ask for the rest with limit and offset"'
        )
    return ", ".join(warnings) or None
