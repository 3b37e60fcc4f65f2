"""Annotations on a consult's images: validate, save, and tell the room after commit.

Who may read them: anyone who may see the consult and its study. Who may write: the consult's
care team (the room's members), each changing only what they drew.
"""

from __future__ import annotations

import math
import uuid

from django.db import transaction

from studies.models import Instance

from . import room
from .errors import FieldError
from .models import Annotation, ConsultRequest

MAX_VALUES_KEYS = 20
MAX_LABEL = 500
POINTS_PER_TOOL = {
    Annotation.Tool.LENGTH: 2,
    Annotation.Tool.ANGLE: 3,
    Annotation.Tool.ELLIPSE: 2,
    Annotation.Tool.ARROW: 2,
    Annotation.Tool.TEXT: 1,
    Annotation.Tool.KEY_IMAGE: 0,
}
# Points may sit a little outside the image (a handle dragged past the edge), never far away.
COORDINATE_LIMIT = 100_000


class AnnotationError(FieldError):
    """Refused input or action; ``field`` names what is wrong, ``status`` is the HTTP status
    (400 unless given)."""

    code = "annotation_refused"


def payload(annotation: Annotation) -> dict:
    return {
        "id": str(annotation.id),
        "sop_instance_uid": annotation.sop_instance_uid,
        "frame": annotation.frame,
        "tool": annotation.tool,
        "geometry": annotation.geometry,
        "values": annotation.values,
        "label": annotation.label,
        "author": room.author_payload(annotation.author),
        "version": annotation.version,
        "created_at": annotation.created_at.isoformat(),
        "updated_at": annotation.updated_at.isoformat(),
    }


def may_write(user, consult: ConsultRequest) -> bool:
    return room.may_join(user, consult)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clean_geometry(tool: str, geometry: object) -> dict:
    expected = POINTS_PER_TOOL[tool]
    if expected == 0:
        return {}
    if not isinstance(geometry, dict) or not isinstance(geometry.get("points"), list):
        raise AnnotationError('geometry must be {"points": [[x, y], ...]}.', field="geometry")
    points = geometry["points"]
    if len(points) != expected:
        raise AnnotationError(f"A {tool} annotation has {expected} point(s), not {len(points)}.", field="geometry")
    cleaned = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and all(_number(v) for v in point)):
            raise AnnotationError("Each point is [x, y] in image pixels.", field="geometry")
        if any(abs(v) > COORDINATE_LIMIT for v in point):
            raise AnnotationError("A point lies far outside the image.", field="geometry")
        cleaned.append([float(point[0]), float(point[1])])
    return {"points": cleaned}


def clean_values(values: object) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict) or len(values) > MAX_VALUES_KEYS:
        raise AnnotationError(f"values must be an object of at most {MAX_VALUES_KEYS} entries.", field="values")
    for key, value in values.items():
        if not isinstance(key, str) or len(key) > 32:
            raise AnnotationError("values keys are short names.", field="values")
        if value is not None and not _number(value) and not (isinstance(value, str) and len(value) <= 32):
            raise AnnotationError(f"values.{key} must be a number or a short unit text.", field="values")
    return values


def clean(consult: ConsultRequest, data: dict) -> dict:
    """The fields of an annotation, checked against the consult's study."""
    tool = data.get("tool")
    if tool not in POINTS_PER_TOOL:
        raise AnnotationError(f"tool must be one of {', '.join(POINTS_PER_TOOL)}.", field="tool")
    uid = data.get("sop_instance_uid")
    if not isinstance(uid, str) or not uid:
        raise AnnotationError("sop_instance_uid is required.", field="sop_instance_uid")
    instance = Instance.objects.filter(series__study_id=consult.study_id, sop_instance_uid=uid).first()
    if instance is None:
        raise AnnotationError("sop_instance_uid is not an image of this consult's study.", field="sop_instance_uid")
    frame = data.get("frame", 1)
    if not isinstance(frame, int) or isinstance(frame, bool) or not 1 <= frame <= max(1, instance.number_of_frames):
        raise AnnotationError(f"frame must be between 1 and {max(1, instance.number_of_frames)}.", field="frame")
    label = data.get("label") or ""
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise AnnotationError(f"label is text of at most {MAX_LABEL} characters.", field="label")
    return {
        "sop_instance_uid": uid,
        "frame": frame,
        "tool": tool,
        "geometry": clean_geometry(tool, data.get("geometry")),
        "values": clean_values(data.get("values")),
        "label": label,
    }


def parse_id(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise AnnotationError("id must be a UUID.", field="id") from None


def _announce(consult: ConsultRequest, kind: str, annotation: Annotation) -> None:
    room.broadcast_on_commit(consult.pk, {"type": "annotation.event", "kind": kind, "annotation": payload(annotation)})


@transaction.atomic
def do_create(consult: ConsultRequest, *, by, data: dict) -> tuple[Annotation, bool]:
    """Create (or, for an id already stored by the same author, return) an annotation.

    Returns ``(annotation, created)``: a create sent again after a lost answer is not an error.
    """
    if not may_write(by, consult):
        raise AnnotationError("Only the consult's care team annotates its images.", status=403)
    fields = clean(consult, data)
    annotation_id = parse_id(data["id"]) if data.get("id") else uuid.uuid4()
    existing = Annotation.objects.select_for_update().filter(pk=annotation_id).first()
    if existing is not None:
        if existing.consult_id != consult.pk or existing.author_id != by.pk:
            raise AnnotationError("That annotation id is taken.", field="id", status=409)
        return existing, False
    annotation = Annotation.objects.create(id=annotation_id, consult=consult, author=by, **fields)
    _announce(consult, "annotation.created", annotation)
    return annotation, True


def _own(consult: ConsultRequest, by, annotation_id) -> Annotation:
    annotation = (
        Annotation.objects.select_for_update()
        .select_related("author")
        .filter(pk=parse_id(annotation_id), consult=consult)
        .first()
    )
    if annotation is None:
        raise AnnotationError("No such annotation.", status=404)
    if annotation.author_id != by.pk:
        raise AnnotationError("Only its author changes an annotation.", status=403)
    return annotation


@transaction.atomic
def do_update(consult: ConsultRequest, *, by, annotation_id, data: dict) -> Annotation:
    if not may_write(by, consult):
        raise AnnotationError("Only the consult's care team annotates its images.", status=403)
    annotation = _own(consult, by, annotation_id)
    version = data.get("version")
    if version is not None and version != annotation.version:
        raise AnnotationError(
            f"The annotation changed since version {version} (now {annotation.version}); reload it first.",
            field="version",
            status=409,
        )
    merged = {**payload(annotation), **{k: v for k, v in data.items() if k != "id"}}
    for name, value in clean(consult, merged).items():
        setattr(annotation, name, value)
    annotation.version += 1
    annotation.save()
    _announce(consult, "annotation.updated", annotation)
    return annotation


@transaction.atomic
def do_delete(consult: ConsultRequest, *, by, annotation_id) -> None:
    if not may_write(by, consult):
        raise AnnotationError("Only the consult's care team annotates its images.", status=403)
    annotation = _own(consult, by, annotation_id)
    gone = payload(annotation)
    annotation.delete()
    room.broadcast_on_commit(consult.pk, {"type": "annotation.event", "kind": "annotation.deleted", "annotation": gone})
