"""A study as a zip of its DICOM files plus a short index.html, streamed as it is written.

Nothing is built in memory: zipfile writes to a sink that hands each written piece to the
response, with data descriptors since the sink cannot seek.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator

from django.utils import timezone
from django.utils.html import escape
from django.utils.text import slugify

from accounts.timeformat import format_instant
from teleconsult.responses import StreamingResponse

from .models import Instance, Study

CHUNK = 256 * 1024
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def series_folder(number, modality: str) -> str:
    """A zip folder name for a series: only letters, digits, '-' and '_' from the modality, which
    comes from the uploaded file and could otherwise carry '/' or '..' into the archive."""
    return f"series-{number}-{_UNSAFE_IN_NAME.sub('_', modality or '')[:16] or 'OT'}"


class _Sink:
    """A write-only file object whose written bytes are collected until taken."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data) -> int:
        self.pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.pieces)
        self.pieces.clear()
        return data


def study_instances(study: Study):
    """The study's instances in download order (series, then instance number), metadata left out."""
    return (
        Instance.objects.filter(series__study=study)
        .select_related("series")
        .defer("metadata")
        .order_by("series__series_number", "series_id", "instance_number", "pk")
    )


def _member_names(study: Study) -> list[tuple[Instance, str]]:
    names = []
    for instance in study_instances(study):
        series = instance.series
        series_number = series.series_number if series.series_number is not None else series.pk
        folder = series_folder(series_number, series.modality)
        number = instance.instance_number if instance.instance_number is not None else instance.pk
        names.append((instance, f"DICOM/{folder}/{number:05d}-{instance.pk}.dcm"))
    return names


def index_html(study: Study, members: list[tuple[Instance, str]]) -> str:
    patient = study.patient
    downloaded = format_instant(timezone.now())
    rows = "\n".join(
        f"<tr><td>{escape(i.series.modality)}</td><td>{escape(i.series.description)}</td>"
        f"<td>{escape(i.instance_number if i.instance_number is not None else '')}</td>"
        f'<td><a href="{escape(name)}">{escape(name)}</a></td></tr>'
        for i, name in members
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(study.description or "Study")}</title></head>
<body>
<h1>{escape(study.description or "Study")}</h1>
<p>Patient: {escape(patient.display_name)} &middot; Date: {escape(study.study_date or "unknown")}
&middot; Modalities: {escape(study.modalities.replace(chr(92), ", ") or "unknown")}</p>
<p>Study Instance UID: {escape(study.study_instance_uid)}</p>
<p>The files under DICOM/ open in any DICOM viewer. Downloaded {escape(downloaded)}.</p>
<table><thead><tr><th>Modality</th><th>Series</th><th>Image</th><th>File</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def zip_stream(study: Study) -> Iterator[bytes]:
    members = _member_names(study)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("index.html", index_html(study, members))
        yield sink.take()
        for instance, name in members:
            try:
                source = instance.file.storage.open(instance.file.name, "rb")
            except FileNotFoundError:
                continue  # a missing stored file is left out rather than breaking the download
            with source, archive.open(name, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def filename_for(study: Study) -> str:
    base = slugify(f"{study.description or 'study'} {study.study_date or ''}") or "study"
    return f"{base}.zip"


def study_zip_response(study: Study) -> StreamingResponse:
    response = StreamingResponse(zip_stream(study), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename_for(study)}"'
    response["Cache-Control"] = "private, no-store"
    return response
