"""What the study viewer needs to open: ``viewer_context(...)`` for ``templates/viewer/_viewer.html``.

The viewer page (``studies.views.viewer``), a share link's page and the consult page all embed the
same viewer with ``{% include "viewer/_viewer.html" %}`` and this context (the include also works
with just ``study`` and ``read_only``; the browser then asks QIDO-RS for the series list).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from django.utils.safestring import mark_safe

from .models import Study

# Characters that could end the <script type="application/json"> element or open markup.
_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def viewer_is_read_only(user) -> bool:
    """Patients and share-link visitors look at the images; clinicians may also measure and annotate."""
    if user is None or not user.is_authenticated:
        return True
    return not (user.is_physician or user.is_specialist or user.is_admin)


def series_list_json(study: Study) -> str:
    """The study's series in the DICOM JSON shape of a QIDO-RS answer, safe inside a script element."""
    rows = [
        {
            "0020000E": {"vr": "UI", "Value": [s.series_instance_uid]},
            "00080060": {"vr": "CS", "Value": [s.modality]} if s.modality else {"vr": "CS"},
            "0008103E": {"vr": "LO", "Value": [s.description]} if s.description else {"vr": "LO"},
            "00200011": {"vr": "IS", "Value": [s.series_number]} if s.series_number is not None else {"vr": "IS"},
            "00201209": {"vr": "IS", "Value": [s.num_instances]},
        }
        for s in study.series.all()
    ]
    return _dumps(rows)


# Series without pixels; the viewer leaves them out of its strip.
NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "DOC", "RWV", "REG", "SEG"})

# Header attributes the browser needs to fetch and window the first image before the series
# metadata arrives.
FIRST_IMAGE_TAGS = (
    "00080018",  # SOPInstanceUID
    "00080060",  # Modality
    "00200013",  # InstanceNumber
    "00280002",  # SamplesPerPixel
    "00280004",  # PhotometricInterpretation
    "00280008",  # NumberOfFrames
    "00280010",  # Rows
    "00280011",  # Columns
    "00280100",  # BitsAllocated
    "00280101",  # BitsStored
    "00280103",  # PixelRepresentation
)


def _dumps(value) -> str:
    return mark_safe(json.dumps(value).translate(_JSON_SCRIPT_ESCAPES))  # noqa: S308 (escaped for a script element)


def first_image(study: Study, series_uid: str = "") -> dict | None:
    """The series the viewer opens first and the header subset of its first image, or None."""
    series = study.series.exclude(modality__in=NON_IMAGE_MODALITIES)
    series = series.filter(series_instance_uid=series_uid) if series_uid else series.order_by("series_number", "pk")
    for candidate in series[:5]:
        instance = (
            candidate.instances.filter(has_pixel_data=True)
            .order_by("instance_number", "pk")
            .only("metadata", "sop_instance_uid")
            .first()
        )
        if instance is not None:
            header = {tag: instance.metadata[tag] for tag in FIRST_IMAGE_TAGS if tag in instance.metadata}
            return {
                "series_uid": candidate.series_instance_uid,
                "sop_instance_uid": instance.sop_instance_uid,
                "dataset": header,
            }
    return None


def preload_urls(study: Study, first: dict | None, dicomweb_root: str) -> list[str]:
    """What the browser fetches first: started by <link rel=preload> while the scripts load."""
    if first is None:
        return []
    series = f"{dicomweb_root}/studies/{quote(study.study_instance_uid)}/series/{quote(first['series_uid'])}"
    return [f"{series}/metadata", f"{series}/instances/{quote(first['sop_instance_uid'])}/frames/1"]


def viewer_context(
    user, study: Study, *, read_only: bool | None = None, series_uid: str = "", dicomweb_root: str = "/dicomweb"
) -> dict:
    """What templates/viewer/_viewer.html needs; ``read_only`` defaults to the user's role.

    ``dicomweb_root`` lets a page serve the images from elsewhere (e.g. a share link's own
    DICOMweb prefix); the browser appends /studies/... to it."""
    first = first_image(study, series_uid)
    return {
        "study": study,
        "dicomweb_root": dicomweb_root,
        "read_only": viewer_is_read_only(user) if read_only is None else read_only,
        "series_uid": series_uid,
        "series_json": series_list_json(study),
        "first_image_json": _dumps(first) if first else "",
        "preload_urls": preload_urls(study, first, dicomweb_root.rstrip("/")),
    }
