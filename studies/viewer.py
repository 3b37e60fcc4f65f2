"""What the study viewer needs to open: ``viewer_context(...)`` for ``templates/viewer/_viewer.html``.

The viewer page (``studies.views.viewer``), a share link's page and the consult page all embed the
same viewer with ``{% include "viewer/_viewer.html" %}`` and this context (the include also works
with just ``study`` and ``read_only``; the browser then asks QIDO-RS for the series list).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from django.db.models import Count, Q
from django.utils.safestring import mark_safe

from . import identity
from .models import Study

# Characters that could end the <script type="application/json"> element or open markup.
_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def viewer_is_read_only(user) -> bool:
    """Patients and share-link visitors look at the images; clinicians may also measure and annotate."""
    if user is None or not user.is_authenticated:
        return True
    return not (user.is_physician or user.is_specialist or user.is_admin)


# Series without pixels; the viewer leaves them out of its strip.
NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "DOC", "RWV", "REG", "SEG"})


def image_series(study: Study) -> list:
    """The study's series that hold images, each with ``image_count``: its instances with pixel
    data. An RT plan, a structured report or a PDF is an instance, not an image, and is not counted."""
    series = study.series.exclude(modality__in=NON_IMAGE_MODALITIES).annotate(
        image_count=Count("instances", filter=Q(instances__has_pixel_data=True))
    )
    return [s for s in series if s.image_count]


def series_list_json(series: list) -> str:
    """Series (from ``image_series``) in the DICOM JSON shape of a QIDO-RS answer, safe inside a
    script element."""
    rows = [
        {
            "0020000E": {"vr": "UI", "Value": [s.series_instance_uid]},
            "00080060": {"vr": "CS", "Value": [s.modality]} if s.modality else {"vr": "CS"},
            "0008103E": {"vr": "LO", "Value": [s.description]} if s.description else {"vr": "LO"},
            "00200011": {"vr": "IS", "Value": [s.series_number]} if s.series_number is not None else {"vr": "IS"},
            "00201209": {"vr": "IS", "Value": [s.image_count]},
        }
        for s in series
    ]
    return _dumps(rows)


# What a series of objects without pixels holds, in words (singular, plural).
OBJECT_NAMES = {
    "RTPLAN": ("RT plan", "RT plans"),
    "RTSTRUCT": ("RT structure set", "RT structure sets"),
    "RTRECORD": ("RT treatment record", "RT treatment records"),
    "SR": ("structured report", "structured reports"),
    "DOC": ("document", "documents"),
    "KO": ("key image note", "key image notes"),
    "PR": ("presentation state", "presentation states"),
    "SEG": ("segmentation", "segmentations"),
    "REG": ("registration", "registrations"),
}


def no_images_sentence(study: Study) -> str:
    """What a study without images holds, in one sentence, shown instead of the viewer."""
    counts: dict[str, int] = {}
    for modality, number in study.series.values_list("modality").annotate(number=Count("instances")):
        if number:
            counts[modality or ""] = counts.get(modality or "", 0) + number
    parts = []
    for modality, number in sorted(counts.items()):
        one, many = OBJECT_NAMES.get(modality, (f"{modality} object".strip(), f"{modality} objects".strip()))
        parts.append(f"{number} {one if number == 1 else many}")
    if not parts:
        return "This study has no images to show yet."
    held = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"This study has no images to show: it holds {held}, which the viewer does not display."


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
    user,
    study: Study,
    *,
    read_only: bool | None = None,
    series_uid: str = "",
    dicomweb_root: str = "/dicomweb",
    drawing_note: str = "",
) -> dict:
    """What templates/viewer/_viewer.html needs; ``read_only`` defaults to the user's role.

    ``dicomweb_root`` lets a page serve the images from elsewhere (e.g. a share link's own
    DICOMweb prefix); the browser appends /studies/... to it. ``drawing_note`` says, in place of
    the drawing tools, why they are off. A study without images gets ``has_images`` False and
    ``no_images`` (a sentence), and the template shows the sentence instead of the viewer. A study
    whose images name more than one patient gets ``identity_warning``, a banner over the image
    (whose names only for clinicians: ``studies.identity.shows_names_to``)."""
    series = image_series(study)
    first = first_image(study, series_uid) if series else None
    return {
        "study": study,
        "dicomweb_root": dicomweb_root,
        "read_only": viewer_is_read_only(user) if read_only is None else read_only,
        "drawing_note": drawing_note,
        "series_uid": series_uid,
        "series_json": series_list_json(series),
        "has_images": bool(series),
        "no_images": "" if series else no_images_sentence(study),
        "first_image_json": _dumps(first) if first else "",
        "preload_urls": preload_urls(study, first, dicomweb_root.rstrip("/")),
        "identity_warning": identity.warning(study, names=identity.shows_names_to(user)),
    }
