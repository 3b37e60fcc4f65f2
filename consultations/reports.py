"""Writing, signing and amending consult reports.

Signing asks again for the password or a TOTP code; the signed version stores signer, time and a
SHA-256 of its content and never changes. An addendum is a new draft version with a reason; the
versions before it stay visible.

The draft starts from the template that fits the study's modality and body part
(``templates_for``), never from another body part's; the consult's measurements and key images
become lines of the findings (``evidence_for``, ``insert_evidence``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.urls import reverse

from accounts.mfa import verify_code
from studies.lossy import instance_lossy
from studies.models import Instance, Study

from . import actions, identity, transitions
from .errors import IdentityConfirmationError, IllegalTransitionError, ReauthenticationError, ReportInputError
from .models import Annotation, ConsultRequest, Report, ReportTemplate

# -- templates by modality and body part -------------------------------------------------------

# Projection radiographs are filed as CR or DX (DR by some devices): one template serves them all.
MODALITY_FAMILIES = {"DX": "CR", "DR": "CR"}
TEMPLATE_TEXT_FIELDS = ("findings", "impression", "recommendations")


def _family(modality: str) -> str:
    code = (modality or "").strip().upper()
    return MODALITY_FAMILIES.get(code, code)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Z0-9]+", (text or "").upper()))


def _body_part_words(body_part: str) -> set[str]:
    """BodyPartExamined's words, and the value without separators ("ABDOMEN PELVIS" -> ABDOMENPELVIS)."""
    words = _words(body_part)
    joined = re.sub(r"[^A-Z0-9]", "", body_part.upper())
    return words | {joined} if joined else words


def examined(study: Study) -> list[tuple[str, set[str]]]:
    """What the study shows, series by series in order: the modality and the body-part words.

    A series' BodyPartExamined when it has one; else the words of its description and of the
    study's description (the fallback: many senders leave BodyPartExamined empty)."""
    shown = []
    for series in study.series.order_by("series_number", "created_at"):
        if series.body_part.strip():
            parts = _body_part_words(series.body_part)
        else:
            parts = _words(series.description) | _words(study.description)
        for modality in [series.modality] if series.modality else study.modality_list:
            shown.append((_family(modality), parts))
    if not shown:
        shown = [(_family(m), _words(study.description)) for m in study.modality_list]
    return shown


def _fit(template: ReportTemplate, shown: list[tuple[str, set[str]]]) -> tuple[int, int] | None:
    """(tier, series index) of a template that fits, None for one that does not. Tier 0: its
    modality and one of its body parts; 1: its modality (a template for any body part) or its
    body part (for any modality); 2: generic (neither). A template for other body parts never fits."""
    modality = _family(template.modality)
    parts = {p.upper() for p in template.body_parts or []}
    if not modality and not parts:
        return (2, 0)
    for index, (shown_modality, shown_parts) in enumerate(shown):
        if modality and shown_modality != modality:
            continue
        if parts and not parts & shown_parts:
            continue
        return (0 if modality and parts else 1, index)
    return None


def templates_for(consult: ConsultRequest) -> list[ReportTemplate]:
    """The templates that fit the consult's study, best first: written for a modality and body
    part the study shows (the consult's specialty first, then in series order); then those for
    a modality whatever the body part; then the generic ones. A chest CT is never offered
    "CT head": with no exact match the generic template comes first."""
    shown = examined(consult.study)
    ranked = []
    for template in ReportTemplate.objects.all():
        fit = _fit(template, shown)
        if fit is not None:
            ranked.append(((fit[0], template.specialty != consult.specialty, fit[1], template.name), template))
    return [template for _, template in sorted(ranked, key=lambda pair: pair[0])]


def _text(value: str) -> str:
    # Browsers post textareas with CRLF; forms strip the ends.
    return (value or "").replace("\r\n", "\n").strip()


def is_edited(report: Report) -> bool:
    """Whether the draft's text differs from the template it started from (someone wrote in it)."""
    start = report.template
    return any(
        _text(getattr(report, name)) != _text(getattr(start, name) if start else "") for name in TEMPLATE_TEXT_FIELDS
    )


def get_or_start_draft(consult: ConsultRequest, *, by, template: ReportTemplate | None = None) -> Report:
    """The assignee's working version: the unsigned newest one, or version 1 from a template."""
    transitions.require_actor(consult, "write-report", by)
    current = consult.current_report
    if current is not None and not current.is_signed:
        return current
    if current is not None:
        raise IllegalTransitionError("The report is signed; start an addendum to change it.")
    # No version yet, so the consult has not been reported: the state is accepted or earlier.
    transitions.require_state(consult, "write-report")
    if template is None:
        fitting = templates_for(consult)
        template = fitting[0] if fitting else None
    return Report.objects.create(
        consult=consult,
        version=1,
        author=by,
        template=template,
        findings=template.findings if template else "",
        impression=template.impression if template else "",
        recommendations=template.recommendations if template else "",
    )


def save_draft(consult: ConsultRequest, *, by, **fields) -> Report:
    with transaction.atomic():
        report = get_or_start_draft(consult, by=by)
        report.update_draft(by=by, **fields)
    return report


# Wrong passwords or codes when signing, per account, before signing waits out the window: a
# session taken over must not become a way to guess the account's password.
REAUTH_FAILURE_LIMIT = 5
REAUTH_FAILURE_WINDOW = 15 * 60


def _reauth_key(user) -> str:
    return f"sign-reauth-tries:{user.pk}"


def check_reauthentication(user, *, password: str = "", code: str = "") -> None:
    """The signer proves it is them again: the account password or a TOTP/recovery code.

    Each try is counted before it is checked, in one atomic step (the cache's incr), so simultaneous
    guesses never check more than ``REAUTH_FAILURE_LIMIT`` in a window; a right one gives its try
    back."""
    field = "code" if code else "password"
    if not password and not code:
        raise ReauthenticationError("Enter your password or an authenticator code to sign.", field=field)
    key = _reauth_key(user)
    cache.add(key, 0, timeout=REAUTH_FAILURE_WINDOW)
    try:
        tries = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=REAUTH_FAILURE_WINDOW)
        tries = 1
    if tries > REAUTH_FAILURE_LIMIT:
        raise ReauthenticationError(
            f"Too many wrong passwords or codes: signing is paused for up to {REAUTH_FAILURE_WINDOW // 60} minutes.",
            field=field,
            status=429,
            code="reauthentication_locked",
        )
    if (code and verify_code(user, code)) or (password and user.check_password(password)):
        cache.decr(key)
        return
    left = REAUTH_FAILURE_LIMIT - tries
    more = (
        f" {left} more wrong {'try pauses' if left == 1 else 'tries pause'} signing."
        if left
        else " Signing is now paused."
    )
    raise ReauthenticationError(f"The password or code is wrong.{more}", field=field)


def sign_report(
    consult: ConsultRequest, *, by, password: str = "", code: str = "", confirm_identity: bool = False
) -> Report:
    """Sign the draft. When the patient or study differs from what the consult was made about (or
    the images name someone else), only with ``confirm_identity``: the signer saw the differences."""
    report = consult.current_report
    if report is None or report.is_signed:
        raise IllegalTransitionError("There is no draft to sign.")
    transitions.require_actor(consult, "report", by)
    changed = identity.differences(consult)
    if changed and not confirm_identity:
        raise IdentityConfirmationError(
            "Check whose images these are before signing: " + "; ".join(str(d) for d in changed) + ".",
            differences=[{"field": d.label, "was": d.then, "now": d.now, "where": d.where} for d in changed],
        )
    check_reauthentication(by, password=password, code=code)
    report = actions.sign_report(consult, report, by=by)
    consult.refresh_from_db()
    return report


def start_addendum(consult: ConsultRequest, *, by, reason: str) -> Report:
    """A new draft version that starts from the signed text; the signed one stays as it was."""
    reason = (reason or "").strip()
    if not reason:
        raise IllegalTransitionError("Give the reason for the addendum.")
    consult.require("addendum", by)
    with transaction.atomic():
        current = Report.objects.select_for_update().filter(consult=consult).order_by("-version").first()
        if current is None or not current.is_signed:
            raise IllegalTransitionError("Finish and sign the open addendum first.")
        return Report.objects.create(
            consult=consult,
            version=current.version + 1,
            author=by,
            template=current.template,
            findings=current.findings,
            impression=current.impression,
            recommendations=current.recommendations,
            agreement=current.agreement,
            patient_summary=current.patient_summary,
            addendum_reason=reason,
        )


def apply_template(consult: ConsultRequest, *, by, template: ReportTemplate, replace_edited: bool = False) -> Report:
    """Start the draft over from a template: its findings, impression and recommendations replace
    the draft's. Once someone wrote in the draft this needs ``replace_edited`` (the page's "Replace
    my text" box): a switch never throws away typed text unasked."""
    with transaction.atomic():
        report = get_or_start_draft(consult, by=by, template=template)
        if report.is_addendum:
            raise ReportInputError("An addendum starts from the signed text, not from a template.", field="template")
        if report.template_id != template.pk and is_edited(report) and not replace_edited:
            raise ReportInputError(
                f"The draft was edited: tick “Replace my text” to start over from “{template.name}”.",
                field="replace",
            )
        report.template = template
        report.update_draft(by=by, **{name: getattr(template, name) for name in TEMPLATE_TEXT_FIELDS})
    return report


# -- measurements and key images into the findings ---------------------------------------------

# What a line of the findings names each kind of annotation; an arrow or a text only with a label.
EVIDENCE_TOOLS = (
    Annotation.Tool.KEY_IMAGE,
    Annotation.Tool.LENGTH,
    Annotation.Tool.ANGLE,
    Annotation.Tool.ELLIPSE,
    Annotation.Tool.ARROW,
    Annotation.Tool.TEXT,
)
THUMBNAIL_BOX = "192,192"


def _number(value, unit: str = "") -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    decimals = 0 if unit in ("px", "px²") else 1
    return f"{value:.{decimals}f}"


def _measure(value, unit: str) -> str:
    return f"{_number(value, unit)}{'' if unit == '°' or not unit else ' '}{unit}"


def _ellipse(values: dict) -> str:
    text = f"Ellipse ROI area {_measure(values.get('area'), values.get('area_unit') or '')}"
    if values.get("mean") is not None:
        unit = f" {values['unit']}" if values.get("unit") else ""
        text += f", mean {_number(values['mean'])}{unit}, SD {_number(values.get('sd'))}"
    return text


DESCRIBE = {
    Annotation.Tool.LENGTH: lambda v: f"Length {_measure(v.get('length'), v.get('unit') or 'mm')}",
    Annotation.Tool.ANGLE: lambda v: f"Angle {_measure(v.get('angle'), '°')}",
    Annotation.Tool.ELLIPSE: _ellipse,
    Annotation.Tool.KEY_IMAGE: lambda v: "Key image",
    Annotation.Tool.ARROW: lambda v: "Arrow",
    Annotation.Tool.TEXT: lambda v: "Note",
}


@dataclass(frozen=True)
class Evidence:
    """A measurement or key image of the consult, as the report editor and the PDF show it."""

    annotation: Annotation
    instance: Instance
    line: str

    @property
    def id(self) -> str:
        return str(self.annotation.id)

    @property
    def is_key_image(self) -> bool:
        return self.annotation.tool == Annotation.Tool.KEY_IMAGE

    @property
    def where(self) -> str:
        return where(self.instance, self.annotation.frame)

    @property
    def thumbnail_url(self) -> str:
        """The frame through DICOMweb: the stored thumbnail of a one-frame image, else the frame rendered small."""
        instance = self.instance
        args = [
            instance.series.study.study_instance_uid,
            instance.series.series_instance_uid,
            instance.sop_instance_uid,
        ]
        if instance.number_of_frames > 1:
            url = reverse("dicomweb:frame-rendered", args=[*args, str(self.annotation.frame)])
        else:
            url = reverse("dicomweb:instance-thumbnail", args=args)
        return f"{url}?viewport={THUMBNAIL_BOX}"


def where(instance: Instance, frame: int = 1) -> str:
    """ "series 2, image 14" (", frame 3" for a frame of a multi-frame image)."""
    series = instance.series.series_number
    image = instance.instance_number
    text = f"series {series if series is not None else '–'}, image {image if image is not None else '–'}"
    return f"{text}, frame {frame}" if instance.number_of_frames > 1 else text


def describe(annotation: Annotation, instance: Instance) -> str:
    """The findings line: "Length 13.2 mm (series 2, image 14)", with the label when there is one,
    and "on lossy JPEG 2000, 12:1 pixels" when the image passed through lossy compression."""
    what = DESCRIBE[annotation.tool](annotation.values or {})
    label = annotation.label.strip()
    if label:
        what = f"{what}: {label}"
    lossy = instance_lossy(instance)
    on_lossy = f"; on {lossy.words} pixels" if lossy else ""
    return f"{what} ({where(instance, annotation.frame)}{on_lossy})"


def evidence_for(consult: ConsultRequest, *, tools: Iterable[str] = EVIDENCE_TOOLS) -> list[Evidence]:
    """The consult's key images and measurements in the order they were made (an arrow or a text
    only with a label; annotations on images no longer stored are left out)."""
    annotations = [
        a
        for a in consult.annotations.filter(tool__in=list(tools)).select_related("author")
        if a.tool not in (Annotation.Tool.ARROW, Annotation.Tool.TEXT) or a.label.strip()
    ]
    instances = {
        i.sop_instance_uid: i
        for i in Instance.objects.filter(
            series__study_id=consult.study_id, sop_instance_uid__in={a.sop_instance_uid for a in annotations}
        ).select_related("series__study")
    }
    return [
        Evidence(annotation=a, instance=instances[a.sop_instance_uid], line=describe(a, instances[a.sop_instance_uid]))
        for a in annotations
        if a.sop_instance_uid in instances
    ]


def insert_evidence(consult: ConsultRequest, *, by, annotation_id: str) -> Report:
    """Add the line of one of the consult's measurements or key images to the end of the findings."""
    found = next((e for e in evidence_for(consult) if e.id == str(annotation_id)), None)
    if found is None:
        raise ReportInputError("insert: no such measurement or key image on this consult.", field="insert")
    with transaction.atomic():
        report = get_or_start_draft(consult, by=by)
        findings = report.findings.rstrip()
        report.update_draft(by=by, findings=f"{findings}\n{found.line}" if findings else found.line)
    return report
