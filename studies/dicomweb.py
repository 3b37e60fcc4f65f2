"""DICOMweb (PS3.18) building blocks: DICOM JSON, QIDO matching, media types, multipart, frames, STOW.

The views in ``dicomweb_views`` check access and shape answers; everything they need to read a
query, build a dataset or encode/decode a multipart body lives here so it can be tested alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.db.models import F, Func, JSONField, OuterRef, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array

from .models import Instance, Series, Study
from .paging import page_by_keys
from .rendering import NotAnImage, RenderError, load_frame


class DicomwebError(Exception):
    """A request the service answers with ``status`` and a human-readable ``message``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


DICOM_JSON = "application/dicom+json"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# Stored encodings whose pixel bytes are already the native little-endian layout.
NATIVE_LITTLE_ENDIAN = {IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN}
# Stored encodings without compressed frames: their frames always travel as native little endian.
NOT_ENCAPSULATED = NATIVE_LITTLE_ENDIAN | {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
# Media type of a frame kept in its stored (compressed) encoding, as PS3.18 Table 8.7.3-2 names it.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}
PIXEL_DATA = "7FE00010"
# Results per QIDO answer when the client gives no smaller limit; more are announced in a Warning.
QIDO_MAX_RESULTS = 5000


# --- DICOM JSON (PS3.18 F.2) -------------------------------------------------------------------


def attr(vr: str, *values: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; empty or ``None`` values give an attribute without ``Value``."""
    if len(values) == 1:  # the common case, kept cheap: QIDO builds thousands of these per answer
        single = values[0]
        if single is None or single == "":
            return {"vr": vr}
        return {"vr": vr, "Value": [{"Alphabetic": single} if vr == "PN" else single]}
    kept = [v for v in values if v is not None and v != ""]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [{"Alphabetic": str(v)} for v in kept]
    return {"vr": vr, "Value": kept}


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def da(value: dt.date | None) -> str | None:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}" if value else None


def tm(value: dt.time | None) -> str | None:
    if value is None:
        return None
    text = f"{value.hour:02d}{value.minute:02d}{value.second:02d}"
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


# Shared by every answer: encoded as JSON, never changed.
CHARACTER_SET = {"vr": "CS", "Value": ["ISO_IR 192"]}


# Study columns a QIDO study answer reads, fetched as plain rows (no model instances).
STUDY_FIELDS = (
    "pk",
    "study_instance_uid",
    "study_date",
    "study_time",
    "accession_number",
    "modalities",
    "referring_physician",
    "description",
    "study_id",
    "num_series",
    "num_instances",
    "patient__name",
    "patient__patient_id",
    "patient__issuer",
    "patient__birth_date",
    "patient__sex",
)


def study_row(study: Study) -> dict[str, Any]:
    """A Study (with its patient loaded) as the row ``study_attributes`` reads."""
    row = {name: getattr(study, name) for name in STUDY_FIELDS if "__" not in name}
    row.update({f"patient__{name}": getattr(study.patient, name) for name in ("name", "patient_id", "issuer")})
    row.update({"patient__birth_date": study.patient.birth_date, "patient__sex": study.patient.sex})
    return row


def study_attributes(row: dict[str, Any], study_url: str | None) -> dict[str, Any]:
    dataset = {
        "00080005": CHARACTER_SET,
        "00080020": attr("DA", da(row["study_date"])),
        "00080030": attr("TM", tm(row["study_time"])),
        "00080050": attr("SH", row["accession_number"]),
        "00080061": attr("CS", *[m for m in row["modalities"].split("\\") if m]),
        "00080090": attr("PN", row["referring_physician"]),
        "00081030": attr("LO", row["description"]),
        "00100010": attr("PN", row["patient__name"]),
        "00100020": attr("LO", row["patient__patient_id"]),
        "00100021": attr("LO", row["patient__issuer"]),
        "00100030": attr("DA", da(row["patient__birth_date"])),
        "00100040": attr("CS", row["patient__sex"]),
        "0020000D": attr("UI", row["study_instance_uid"]),
        "00200010": attr("SH", row["study_id"]),
        "00201206": attr("IS", row["num_series"]),
        "00201208": attr("IS", row["num_instances"]),
    }
    if study_url is not None:
        dataset["00081190"] = attr("UR", study_url)
    return dataset


def series_attributes(series: Series, series_url: str) -> dict[str, Any]:
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080060": attr("CS", series.modality),
        "0008103E": attr("LO", series.description),
        "00081190": attr("UR", series_url),
        "00180015": attr("CS", series.body_part),
        "0020000D": attr("UI", series.study.study_instance_uid),
        "0020000E": attr("UI", series.series_instance_uid),
        "00200011": attr("IS", series.series_number),
        "00201209": attr("IS", series.num_instances),
    }


def instance_attributes(instance: Instance, instance_url: str) -> dict[str, Any]:
    series = instance.series
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080016": attr("UI", instance.sop_class_uid),
        "00080018": attr("UI", instance.sop_instance_uid),
        "00080060": attr("CS", series.modality),
        "00081190": attr("UR", instance_url),
        "00083002": attr("UI", instance.transfer_syntax_uid),
        "0020000D": attr("UI", series.study.study_instance_uid),
        "0020000E": attr("UI", series.series_instance_uid),
        "00200013": attr("IS", instance.instance_number),
        "00280008": attr("IS", instance.number_of_frames),
        "00280010": attr("US", instance.rows),
        "00280011": attr("US", instance.columns),
        "00280100": attr("US", instance.bits_allocated),
    }


def pixel_data_vr(transfer_syntax: str, bits_allocated: int | None) -> str:
    compressed = transfer_syntax not in NATIVE_LITTLE_ENDIAN
    return "OB" if compressed or (bits_allocated or 16) <= 8 else "OW"


METADATA_FIELDS = (
    "sop_instance_uid",
    "series__series_instance_uid",
    "has_pixel_data",
    "number_of_frames",
    "transfer_syntax_uid",
    "bits_allocated",
    "metadata_text",
)
# Pixel data kept in the stored header as its VR alone (ingest leaves bulk data out).
PIXEL_ELEMENT_RE = re.compile(r'"(7FE000(?:08|09|10))":\s*\{"vr":\s*"(\w\w)"\}')
# Other bulk data left out the same way; the bulkdata resource serves their values.
BULK_ELEMENT_RE = re.compile(r'"([0-9A-F]{8})":\s*\{"vr":\s*"(OB|OD|OF|OL|OV|OW|UN)"\}')
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}


def metadata_rows(instances: QuerySet) -> QuerySet:
    """Rows for ``instance_metadata_json``: the stored header as JSON text, never decoded."""
    return instances.annotate(metadata_text=Cast("metadata", TextField())).values_list(*METADATA_FIELDS)


def instance_metadata_json(
    text: str | None,
    instance_url: str,
    *,
    has_pixel_data: bool,
    number_of_frames: int | None,
    transfer_syntax: str,
    bits_allocated: int | None,
) -> str:
    """The stored header as DICOM JSON text, with the pixel data as a BulkDataURI to its frames.

    The stored text passes through as it is: decoding and re-encoding every header would be most
    of the cost of a large series' metadata, which viewers ask for before showing anything.
    """
    text = (text or "{}").strip()
    text = BULK_ELEMENT_RE.sub(
        lambda m: (
            m.group(0)
            if m.group(1).startswith("7FE000")
            else f'"{m.group(1)}": {{"vr": "{m.group(2)}", "BulkDataURI": "{instance_url}/bulkdata/{m.group(1)}"}}'
        ),
        text,
    )
    if not has_pixel_data:
        return text
    frames = ",".join(str(n) for n in range(1, (number_of_frames or 1) + 1))
    uri = json.dumps(f"{instance_url}/frames/{frames}")
    text, count = PIXEL_ELEMENT_RE.subn(
        lambda m: f'"{m.group(1)}": {{"vr": "{m.group(2)}", "BulkDataURI": {uri}}}', text, count=1
    )
    if count or f'"{PIXEL_DATA}"' in text:
        return text
    element = f'"{PIXEL_DATA}": {{"vr": "{pixel_data_vr(transfer_syntax, bits_allocated)}", "BulkDataURI": {uri}}}'
    return f"{{{element}}}" if text == "{}" else f"{text[:-1]}, {element}}}"


# --- QIDO-RS matching (PS3.18 8.3.4, PS3.4 C.2.2.2) ---------------------------------------------

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
DATE_RE = re.compile(r"^\d{8}$")
TIME_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


@dataclass(frozen=True)
class Matcher:
    """How one query key filters: the model field path (from the level's model) and the kind."""

    level: str  # "study", "series" or "instance"
    path: str
    kind: str  # uid, text, itext, date, time, int, modalities


# Paths are relative to the model of their level; PREFIXES reaches them from a lower level.
MATCHERS: dict[str, Matcher] = {
    "PatientID": Matcher("study", "patient__patient_id", "text"),
    "IssuerOfPatientID": Matcher("study", "patient__issuer", "text"),
    "PatientName": Matcher("study", "patient__name", "itext"),
    "PatientBirthDate": Matcher("study", "patient__birth_date", "date"),
    "PatientSex": Matcher("study", "patient__sex", "text"),
    "StudyDate": Matcher("study", "study_date", "date"),
    "StudyTime": Matcher("study", "study_time", "time"),
    "AccessionNumber": Matcher("study", "accession_number", "text"),
    "ModalitiesInStudy": Matcher("study", "pk", "modalities"),
    "ReferringPhysicianName": Matcher("study", "referring_physician", "itext"),
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
    filters: dict[str, str] = field(default_factory=dict)  # keyword -> raw value
    limit: int | None = None
    offset: int = 0
    include_all: bool = False
    include_tags: list[str] = field(default_factory=list)  # 8-hex keys
    unsupported: list[str] = field(default_factory=list)


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


def parse_qido(params, level: str) -> QidoQuery:
    """Read and validate QIDO query parameters for a search at ``level``; raises DicomwebError."""
    query = QidoQuery()
    allowed = set(LEVELS[: LEVELS.index(level) + 1])
    for key in params:
        values = params.getlist(key)
        if key == "limit":
            query.limit = parse_int("limit", values[-1], minimum=1)
        elif key == "offset":
            query.offset = parse_int("offset", values[-1], minimum=0)
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
            continue
        else:
            keyword = keyword_of(key)
            if keyword is None:
                raise DicomwebError(f"{key!r} is not a query parameter or DICOM attribute.")
            matcher = MATCHERS.get(keyword)
            if matcher is None or matcher.level not in allowed:
                query.unsupported.append(keyword)
                continue
            value = values[-1]
            validate_value(keyword, matcher, value)
            query.filters[keyword] = value
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


def filter_q(keyword: str, value: str, level: str) -> Q:
    matcher = MATCHERS[keyword]
    path = PREFIXES[(level, matcher.level)] + matcher.path
    if value in ("", "*"):
        return Q()
    if matcher.kind == "uid":
        return Q(**{f"{path}__in": split_list(value)})
    if matcher.kind in ("text", "itext"):
        return wildcard_q(path, value, insensitive=matcher.kind == "itext")
    if matcher.kind in ("date", "time"):
        return date_or_time_q(keyword, matcher.kind, path, value)
    if matcher.kind == "int":
        return Q(**{path: int(value)})
    # ModalitiesInStudy: a study matches when one of its series has one of the modalities.
    modalities = split_list(value)
    return Q(**{f"{path}__in": Series.objects.filter(modality__in=modalities).values("study_id")})


def apply_filters(queryset: QuerySet, query: QidoQuery, level: str) -> QuerySet:
    for keyword, value in query.filters.items():
        queryset = queryset.filter(filter_q(keyword, value, level))
    return queryset


def page(queryset: QuerySet, query: QidoQuery) -> tuple[list, bool]:
    """The requested slice, and whether the server cut the answer short at its own maximum."""
    limit = min(query.limit or QIDO_MAX_RESULTS, QIDO_MAX_RESULTS)
    rows = page_by_keys(queryset, query.offset, query.offset + limit + 1)
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


def search_studies(studies: QuerySet, query: QidoQuery, study_url) -> tuple[list[dict], bool]:
    queryset = (
        apply_filters(studies, query, "study").order_by("-study_date", "-study_time", "-pk").values(*STUDY_FIELDS)
    )
    rows, more = page(queryset, query)
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


# --- Media types and content negotiation ------------------------------------------------------


def split_outside_quotes(text: str, separator: str) -> list[str]:
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c="d"`` as the lower-cased type and its parameters (names lower-cased)."""
    pieces = split_outside_quotes(value, ";")
    if not pieces:
        return "", {}
    params = {}
    for piece in pieces[1:]:
        name, _, param = piece.partition("=")
        params[name.strip().lower()] = param.strip().strip('"')
    return pieces[0].lower(), params


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]
    q: float

    @property
    def part_type(self) -> str:
        """The media type a multipart range asks for in its ``type`` parameter (else the type itself)."""
        if self.type.startswith("multipart/"):
            return self.params.get("type", "*/*").lower()
        return self.type

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def parse_accept(header: str | None) -> list[MediaRange]:
    """The Accept header's media ranges, best first; ``q=0`` ranges are dropped."""
    ranges = []
    for item in split_outside_quotes(header or "", ","):
        media_type, params = parse_media_type(item)
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if media_type and q > 0:
            ranges.append(MediaRange(media_type, params, q))
    return sorted(ranges, key=lambda r: -r.q)


def type_matches(pattern: str, media_type: str) -> bool:
    if pattern in ("*", "*/*"):
        return True
    main, _, sub = pattern.partition("/")
    want_main, _, want_sub = media_type.partition("/")
    return main == want_main and sub in ("*", want_sub)


def same_encoding(requested: str | None, stored: str) -> bool:
    """Whether a requested transfer syntax is satisfied by the stored one without transcoding."""
    if requested in (None, "", "*") or requested == stored:
        return True
    return requested in NATIVE_LITTLE_ENDIAN and stored in NATIVE_LITTLE_ENDIAN


def accepts_dicom(ranges: list[MediaRange], stored_syntaxes: Iterable[str]) -> bool:
    """Whether instances in their stored encodings suit an Accept header (absent accepts anything)."""
    if not ranges:
        return True
    stored = set(stored_syntaxes)
    for media_range in ranges:
        if media_range.type not in ("*/*", "multipart/*", "multipart/related", "application/dicom"):
            continue
        if not type_matches(media_range.part_type, "application/dicom"):
            continue
        if all(same_encoding(media_range.transfer_syntax, ts) for ts in stored):
            return True
    return False


def accepts_any(ranges: list[MediaRange], *media_types: str) -> str | None:
    """The first of ``media_types`` the Accept header allows, or ``None``; no header allows the first."""
    if not ranges:
        return media_types[0]
    for media_range in ranges:
        for media_type in media_types:
            if type_matches(media_range.type, media_type):
                return media_type
    return None


@dataclass(frozen=True)
class FrameEncoding:
    """How frames travel: their part media type, and whether they keep the stored encoding."""

    media_type: str
    transfer_syntax: str
    keep_stored: bool

    @property
    def part_content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def frame_encoding(ranges: list[MediaRange], stored: str) -> FrameEncoding | None:
    """Pick native bytes or the stored encoding from the Accept header (PS3.18 8.7.3.5)."""
    native = FrameEncoding("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN, keep_stored=False)
    if not ranges:
        return native
    compressed = stored not in NOT_ENCAPSULATED
    for media_range in ranges:
        generic = media_range.type in ("*/*", "multipart/*", "multipart/related", "application/octet-stream")
        if not generic and not media_range.type.startswith(("image/", "video/")):
            continue
        part_type, requested = media_range.part_type, media_range.transfer_syntax
        if type_matches(part_type, "application/octet-stream"):
            if not compressed and (stored not in NATIVE_LITTLE_ENDIAN or same_encoding(requested, stored)):
                return native
            if compressed and requested in ("*", stored):
                return FrameEncoding("application/octet-stream", stored, keep_stored=True)
            if compressed and requested in (None, EXPLICIT_VR_LITTLE_ENDIAN):
                return native
        stored_type = FRAME_MEDIA_TYPES.get(stored)
        if (
            compressed
            and stored_type
            and part_type != "*/*"
            and type_matches(part_type, stored_type)
            and requested in (None, "*", stored)
        ):
            return FrameEncoding(stored_type, stored, keep_stored=True)
    return None


# --- Multipart encoding and streaming decoding ----------------------------------------------


def new_boundary() -> str:
    return uuid.uuid4().hex


def multipart_content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return f"{value}; transfer-syntax={transfer_syntax}" if transfer_syntax else value


def multipart_stream(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """Encode parts lazily: each part is its Content-Type and an iterable of byte chunks."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")


def file_chunks(opener, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Chunks of a stored file, opened only when the stream reaches it."""
    with opener() as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


@dataclass
class Part:
    path: str
    headers: dict[str, str]
    size: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _Input:
    """Reads the request body in chunks, counting bytes against the request size limit."""

    def __init__(self, stream: BinaryIO, max_size: int, chunk_size: int) -> None:
        self.stream = stream
        self.max_size = max_size
        self.chunk_size = chunk_size
        self.buf = bytearray()
        self.total = 0

    def fill(self) -> bool:
        chunk = self.stream.read(self.chunk_size)
        if not chunk:
            return False
        self.total += len(chunk)
        if self.total > self.max_size:
            raise DicomwebError(f"The request is larger than the limit of {self.max_size} bytes.", status=413)
        self.buf += chunk
        return True

    def need(self, size: int) -> bool:
        while len(self.buf) < size:
            if not self.fill():
                return False
        return True


MAX_PREAMBLE = 64 * 1024
MAX_PART_HEADERS = 16 * 1024
MAX_PARTS = 20000  # the same order as the zip entry limit: each part becomes a temporary file


def malformed(message: str) -> DicomwebError:
    return DicomwebError(f"Malformed multipart body: {message}", status=400)


def _after_boundary(body: _Input, pos: int) -> tuple[bool, int]:
    """After a boundary: ``--`` closes the body, else optional blanks and CRLF start a part."""
    if not body.need(pos + 2):
        raise malformed("it ends right after a boundary.")
    if body.buf[pos : pos + 2] == b"--":
        return True, pos + 2
    while body.need(pos + 1) and body.buf[pos] in b" \t":
        pos += 1
    if not body.need(pos + 2) or body.buf[pos : pos + 2] != b"\r\n":
        raise malformed("a boundary is not followed by a line break.")
    return False, pos + 2


def _part_headers(body: _Input) -> dict[str, str]:
    if not body.need(2):
        raise malformed("it ends inside the headers of a part.")
    if body.buf[:2] == b"\r\n":
        del body.buf[:2]
        return {}
    while (end := body.buf.find(b"\r\n\r\n")) < 0:
        if len(body.buf) > MAX_PART_HEADERS or not body.fill():
            raise malformed("the headers of a part are too long or never end.")
    if end > MAX_PART_HEADERS:
        raise malformed("the headers of a part are too long.")
    headers = {}
    for line in bytes(body.buf[:end]).decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise malformed(f"a part header line has no colon: {line[:80]!r}.")
        headers[name.strip().lower()] = value.strip()
    del body.buf[: end + 4]
    return headers


def read_multipart(
    stream: BinaryIO, boundary: str, directory: str, *, max_size: int, chunk_size: int = 256 * 1024
) -> list[Part]:
    """Stream a multipart body into one temporary file per part under ``directory``.

    Only a chunk and a boundary's length stay in memory, whatever the size of the parts.
    """
    if not boundary or len(boundary) > 70:
        raise malformed("the boundary parameter is missing or longer than 70 characters.")
    dash = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + dash
    body = _Input(stream, max_size, chunk_size)
    while True:
        if body.buf.startswith(dash):
            pos = len(dash)
            break
        index = body.buf.find(delimiter)
        if index >= 0:
            pos = index + len(delimiter)
            break
        if len(body.buf) > MAX_PREAMBLE or not body.fill():
            raise malformed("the body does not contain the boundary given in Content-Type.")
    closed, pos = _after_boundary(body, pos)
    del body.buf[:pos]
    if closed:
        raise DicomwebError("The multipart body has no parts.", status=400)
    parts: list[Part] = []
    while True:
        headers = _part_headers(body)
        handle, path = tempfile.mkstemp(dir=directory, suffix=".dcm")
        size = 0
        with os.fdopen(handle, "wb") as out:
            while True:
                index = body.buf.find(delimiter)
                if index >= 0:
                    out.write(body.buf[:index])
                    size += index
                    closed, pos = _after_boundary(body, index + len(delimiter))
                    del body.buf[:pos]
                    break
                keep = len(delimiter) - 1
                if len(body.buf) > keep:
                    flush = len(body.buf) - keep
                    out.write(body.buf[:flush])
                    size += flush
                    del body.buf[:flush]
                if not body.fill():
                    raise malformed("it ends before the closing boundary.")
        parts.append(Part(path=path, headers=headers, size=size))
        if closed:
            return parts
        if len(parts) >= MAX_PARTS:
            raise DicomwebError(f"The request has more than {MAX_PARTS} parts; send them in several requests.", 413)


def add_missing_preamble(path: str) -> bool:
    """Give a part that starts with its file meta group the PS3.10 preamble and "DICM" marker.

    dicomweb-client writes data sets built in memory without a preamble; the bytes are otherwise
    a complete file, so the part is stored rather than refused as "not DICOM".
    """
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM" or not head.startswith(b"\x02\x00") or not head[4:6].isalpha():
        return False
    fixed = f"{path}.p10"
    with open(path, "rb") as source, open(fixed, "wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(fixed, path)
    return True


# --- Frames ------------------------------------------------------------------------------------


class FrameReader:
    """Reads single frames of a stored instance without loading its whole pixel data."""

    def __init__(self, handle: BinaryIO, transfer_syntax: str) -> None:
        self.handle = handle
        self.dataset = dcmread(handle, defer_size=1024)
        self.transfer_syntax = str(self.dataset.file_meta.get("TransferSyntaxUID", transfer_syntax))
        element = self.dataset.get_item(0x7FE00010, keep_deferred=True)
        if element is None:
            raise DicomwebError("The instance has no pixel data.", status=404)
        self.value_tell = getattr(element, "value_tell", None)
        try:
            self.number_of_frames = max(int(str(self.dataset.get("NumberOfFrames") or 1).strip() or 1), 1)
            self.bits_allocated = int(self.dataset.BitsAllocated)
            self.frame_length = (
                int(self.dataset.Rows)
                * int(self.dataset.Columns)
                * int(self.dataset.get("SamplesPerPixel") or 1)
                * self.bits_allocated
                // 8
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise DicomwebError(f"The stored image header cannot describe its frames: {exc}", status=422) from None

    def stored(self, number: int) -> bytes:
        """Frame ``number`` (1-based) exactly as stored: native bytes or one compressed frame."""
        if self.transfer_syntax in NATIVE_LITTLE_ENDIAN and self.value_tell is not None:
            if self.bits_allocated == 1:
                return self.decoded(number)
            self.handle.seek(self.value_tell + (number - 1) * self.frame_length)
            data = self.handle.read(self.frame_length)
            if len(data) < self.frame_length:
                raise DicomwebError(f"Frame {number} is cut short in the stored file.", status=422)
            return data
        if self.value_tell is None:
            return self.decoded(number)
        self.handle.seek(self.value_tell)
        try:
            return get_frame(self.handle, number - 1, number_of_frames=self.number_of_frames)
        except (ValueError, KeyError, EOFError) as exc:
            raise DicomwebError(f"Frame {number} cannot be read from the stored file: {exc}", status=422) from None

    def decoded(self, number: int) -> bytes:
        """Frame ``number`` as native little-endian bytes, decompressing when needed."""
        from pydicom.pixels import pack_bits

        self.handle.seek(0)
        try:
            array = pixel_array(self.handle, index=number - 1)
        except (ValueError, RuntimeError, NotImplementedError, TypeError, AttributeError, KeyError, EOFError):
            # Deflated and big-endian files, and streams with defects the renderer knows how to repair.
            try:
                array, _ds = load_frame(self.handle, frame=number)
            except (NotAnImage, RenderError) as exc:
                raise DicomwebError(f"Frame {number} cannot be decoded: {exc}", status=422) from None
        if self.bits_allocated == 1:
            return pack_bits(array)
        return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()

    def frame(self, number: int, *, keep_stored: bool) -> bytes:
        if keep_stored or self.transfer_syntax in NATIVE_LITTLE_ENDIAN:
            return self.stored(number)
        return self.decoded(number)


def bulk_value(handle: BinaryIO, tag_text: str) -> bytes:
    """The value of a bulk data element of a stored instance: at the top level, else the first one
    inside a sequence (headers keep nested bulk data out under the same tag)."""
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag_text):
        raise DicomwebError(f"bulkdata: {tag_text!r} is not a tag (eight hexadecimal digits).")
    tag = int(tag_text, 16)
    if tag in PIXEL_TAGS:
        raise DicomwebError("bulkdata: pixel data is served per frame, under .../frames/{n}.", status=404)
    try:
        dataset = dcmread(handle, defer_size=1024)
        element = dataset.get(tag)
        if element is None:
            element = next((e for e in dataset.iterall() if int(e.tag) == tag), None)
        value = None if element is None else element.value
    except (ValueError, TypeError, KeyError, EOFError, OSError) as exc:
        raise DicomwebError(f"bulkdata: the stored file cannot be read: {exc}", status=422) from None
    if value is None or not isinstance(value, bytes | bytearray):
        raise DicomwebError(f"bulkdata: the instance has no bulk data element {tag_text.upper()}.", status=404)
    return bytes(value)


def parse_frame_list(value: str, number_of_frames: int) -> list[int]:
    """``1,2,3`` as frame numbers; not numbers or < 1 is a 400, past the last frame a 404."""
    numbers = []
    for item in value.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise DicomwebError(f"frame: {item!r} is not a frame number (frames start at 1).")
        numbers.append(int(item))
    past = [n for n in numbers if n > number_of_frames]
    if past:
        raise DicomwebError(
            f"frame: {past[0]} is past the last frame ({number_of_frames}) of the instance.", status=404
        )
    return numbers


# --- Rendered parameters -----------------------------------------------------------------------

WINDOW_FUNCTIONS = {"linear", "linear_exact", "linear-exact", "sigmoid"}
RENDERED_TYPES = ("image/jpeg", "image/png")


@dataclass(frozen=True)
class RenderParams:
    media_type: str
    window: tuple[float, float, str] | None  # center, width, VOI LUT function
    viewport: tuple[int, int] | None
    quality: int


def parse_render_params(params, accept_header: str | None) -> RenderParams:
    """Validate ``accept=``, ``window=``, ``viewport=`` and ``quality=``; errors name the parameter."""
    requested = params.get("accept")
    if requested:
        media_type = accepts_any(parse_accept(requested), *RENDERED_TYPES)
        if media_type is None:
            raise DicomwebError(f"accept: {requested!r} is not available; use image/jpeg or image/png.", status=406)
    else:
        media_type = accepts_any(parse_accept(accept_header), *RENDERED_TYPES)
        if media_type is None:
            raise DicomwebError("Rendered images are available as image/jpeg or image/png.", status=406)
    window = None
    if params.get("window") is not None:
        pieces = params["window"].split(",")
        if len(pieces) not in (2, 3):
            raise DicomwebError("window: expected center,width[,function].")
        try:
            center, width = float(pieces[0]), float(pieces[1])
        except ValueError:
            raise DicomwebError(f"window: {params['window']!r} is not center,width as numbers.") from None
        if width <= 0:
            raise DicomwebError("window: the width must be positive.")
        function = pieces[2].strip().lower() if len(pieces) == 3 else "linear"
        if function not in WINDOW_FUNCTIONS:
            raise DicomwebError("window: the function must be linear, linear-exact or sigmoid.")
        window = (center, width, function.replace("-", "_").upper())
    viewport = None
    if params.get("viewport") is not None:
        pieces = params["viewport"].split(",")
        if len(pieces) != 2 or not all(p.strip().isdigit() for p in pieces):
            raise DicomwebError("viewport: expected width,height in pixels.")
        viewport = (int(pieces[0]), int(pieces[1]))
        if min(viewport) < 1 or max(viewport) > 8192:
            raise DicomwebError("viewport: width and height must be between 1 and 8192.")
    quality = 90
    if params.get("quality") is not None:
        quality = parse_int("quality", params["quality"], minimum=1)
        if quality > 100:
            raise DicomwebError("quality: must be between 1 and 100.")
    return RenderParams(media_type=media_type, window=window, viewport=viewport, quality=quality)


# --- STOW-RS (PS3.18 10.5) ---------------------------------------------------------------------

# FailureReason for each IngestResult.code; anything else is a processing failure.
FAILURE_REASONS = {
    "not_dicom": 0xC000,
    "bad_file_meta": 0xC000,
    "truncated": 0xC000,
    "corrupt": 0xC000,
    "too_deep": 0xC000,
    "missing_uid": 0xC000,
    "invalid_uid": 0xC000,
    "empty": 0xC000,
    "unsupported_media_type": 0xC000,
    "unsupported": 0xC122,
    "unsupported_transfer_syntax": 0xC122,
    "dicomdir": 0x0122,
    "too_large": 0xA700,
    "dimensions_mismatch": 0xA900,
    "wrong_study": 0xA900,
    "conflict": 0x0110,
    "forbidden_study": 0x0110,
    "unreadable": 0x0110,
}
PROCESSING_FAILURE = 0x0110
COERCION_WARNING = 0xB000
STORED = ("stored", "already_stored")


@dataclass
class RefusedPart:
    """A part refused before ingest (its media type), shaped like an IngestResult."""

    filename: str
    reason: str
    code: str = "unsupported_media_type"
    status: str = "refused"
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    coerced: bool = False


def failure_reason(code: str | None) -> int:
    return FAILURE_REASONS.get(code or "", PROCESSING_FAILURE)


def stow_boundary(content_type: str, content_length: str | None, limit: int) -> str:
    """The multipart boundary of a STOW-RS request with these headers; DicomwebError when STOW-RS
    refuses the request without reading its body (another media type, no boundary, a declared
    length over ``limit``)."""
    media_type, params = parse_media_type(content_type)
    if media_type != "multipart/related":
        raise DicomwebError(
            f'STOW-RS takes multipart/related; type="application/dicom", not {media_type or "no media type"}.',
            status=415,
        )
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise DicomwebError(f'Only type="application/dicom" parts are accepted, not {part_type}.', status=415)
    if not params.get("boundary"):
        raise DicomwebError("Malformed multipart body: Content-Type has no boundary parameter.", status=400)
    try:
        declared = int(content_length or 0)
    except ValueError:
        raise DicomwebError("Content-Length is not a number.") from None
    if declared > limit:
        raise DicomwebError(f"The request is larger than the limit of {limit} bytes.", status=413)
    return params["boundary"]


def stow_response(results: list, instance_url, study_url) -> tuple[int, dict[str, Any]]:
    """The STOW-RS answer: HTTP status and the response dataset as DICOM JSON."""
    referenced, failed, studies, warned = [], [], set(), False
    for result in results:
        if result.status in STORED:
            item = {
                "00081150": attr("UI", result.sop_class_uid),
                "00081155": attr("UI", result.sop_instance_uid),
                "00081190": attr(
                    "UR",
                    instance_url(result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid),
                ),
            }
            if getattr(result, "coerced", False):
                warned = True
                item["00081196"] = attr("US", COERCION_WARNING)
                if result.reason:
                    item["00000902"] = attr("LO", result.reason[:64])
            referenced.append(item)
            studies.add(result.study_instance_uid)
        else:
            failed.append(
                {
                    "00081150": attr("UI", result.sop_class_uid),
                    "00081155": attr("UI", result.sop_instance_uid),
                    "00081197": attr("US", failure_reason(result.code)),
                    "00000902": attr("LO", f"{result.filename}: {result.reason}"[:64]),
                    # ErrorComment is limited to 64 characters; TextValue carries the whole reason.
                    "0040A160": attr("UT", f"{result.filename}: {result.reason}"),
                }
            )
    dataset: dict[str, Any] = {}
    if len(studies) == 1:
        dataset["00081190"] = attr("UR", study_url(next(iter(studies))))
    if referenced:
        dataset["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        dataset["00081198"] = {"vr": "SQ", "Value": failed}
    if not referenced:
        return 409, dataset
    return (202 if failed or warned else 200), dataset
