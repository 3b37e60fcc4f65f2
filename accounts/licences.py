"""Specialists' licences: what a licence must be, its changes, and the rule routing and claiming read.

A specialist enters each licence (jurisdiction, number, expiry date, a scanned document); an
administrator verifies or rejects it. With ``TELECONSULT_LICENCE_RULE`` on (the default unless
DEBUG), a consult is offered to, and may be claimed by, only a specialist holding a licence for the
consult's jurisdiction (or the whole of its country) that is verified and not expired that day;
with it off, the jurisdictions on the specialist's profile decide, as before licences existed.

Every change is recorded as a ``SpecialistEvent`` (who, when) by ``accounts.specialists.record``.
"""

from __future__ import annotations

import datetime as dt
import io

import pycountry
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from teleconsult.errors import PortalError

from .models import Licence, Role, SpecialistEvent, User, validate_free_text, validate_jurisdiction
from .specialists import record

Action = SpecialistEvent.Action

# First bytes -> kind: a document is recognised by its content, never by its name or declared type.
MAGIC = (
    (b"%PDF-", Licence.DocumentKind.PDF),
    (b"\x89PNG\r\n\x1a\n", Licence.DocumentKind.PNG),
    (b"\xff\xd8\xff", Licence.DocumentKind.JPEG),
)


class LicenceInputError(PortalError):
    """Bad input for one field of a licence; the body names the field (``{"expires_on": [...]}``),
    as DRF does for a serializer's field errors, and a page shows the message beside it."""

    code = "licence_invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, **{field: [message]})
        self.field = field


class LicenceRequiredError(PortalError):
    """A specialist without a verified, unexpired licence for the consult's jurisdiction."""

    status = 403
    code = "licence_required"


def today() -> dt.date:
    """The portal's calendar day (TIME_ZONE): the day a licence's expiry date is read against."""
    return timezone.localdate(timezone.now(), timezone.get_default_timezone())


# -- input --------------------------------------------------------------------------------------


def normalize_jurisdiction(value: object) -> str:
    """An ISO 3166 code from what a person typed: a code (``de``, ``US-CA``) or the name of a
    country or region (``Germany``, ``California``). Unknown or ambiguous text is refused."""
    text = str(value or "").strip()
    if not text:
        raise LicenceInputError(
            "jurisdiction", "Give the jurisdiction: an ISO 3166 code such as DE or US-CA, or its name."
        )
    code = text.upper()
    if pycountry.countries.get(alpha_2=code) is None and pycountry.subdivisions.get(code=code) is None:
        matches = {country.alpha_2 for country in _by_name(pycountry.countries, text)}
        matches |= {region.code for region in _by_name(pycountry.subdivisions, text)}
        code = matches.pop() if len(matches) == 1 else ""
    else:
        matches = set()
    if code:
        try:
            validate_jurisdiction(code)  # the form consults carry: two letters, or two letters and a region
        except ValidationError:
            pass
        else:
            return code
    if len(matches) > 1:
        raise LicenceInputError(
            "jurisdiction",
            f"{text[:60]!r} names several places ({', '.join(sorted(matches)[:6])}): give the ISO 3166 code.",
        )
    raise LicenceInputError(
        "jurisdiction",
        f"{text[:60]!r} is not a country or region we know: give an ISO 3166 code such as DE or US-CA, or its name.",
    )


def _by_name(database, text: str) -> list:
    wanted = text.casefold()
    return [
        entry
        for entry in database
        if wanted in {getattr(entry, attr, "").casefold() for attr in ("name", "official_name", "common_name")}
    ]


def check_number(value: object) -> str:
    number = " ".join(str(value or "").split())
    if not number:
        raise LicenceInputError("number", "Give the licence number.")
    if len(number) > 64:
        raise LicenceInputError("number", "A licence number is at most 64 characters.")
    return number


def check_expiry(value: object, *, on: dt.date | None = None) -> dt.date:
    """A date (or ISO text) not in the past: an expired licence is not entered, it is renewed."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value or "").strip())
        except ValueError:
            raise LicenceInputError("expires_on", "Give the expiry date as a date such as 2027-03-31.") from None
    if value < (on or today()):
        raise LicenceInputError(
            "expires_on", f"The expiry date {value.isoformat()} is in the past: enter a current licence."
        )
    return value


def check_document(upload) -> tuple[bytes, str]:
    """The document's bytes and kind (pdf, png, jpeg); too large, empty, of another type or a
    damaged image is refused."""
    if upload is None:
        raise LicenceInputError("document", "Attach a scan of the licence (PDF, PNG or JPEG).")
    limit = settings.TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise LicenceInputError("document", f"The document is {size} bytes; it may be at most {limit} bytes.")
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise LicenceInputError("document", f"The document is larger than {limit} bytes, the most accepted.")
    if not data:
        raise LicenceInputError("document", "The document is empty.")
    for magic, kind in MAGIC:
        if data.startswith(magic):
            if kind != Licence.DocumentKind.PDF:
                _check_image(data)
            return data, kind
    raise LicenceInputError("document", "The document must be a PDF, PNG or JPEG file; this file is none of them.")


def _check_image(data: bytes) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise LicenceInputError("document", f"The image is damaged or incomplete ({exc}).") from None


def _document_name(upload) -> str:
    name = str(getattr(upload, "name", "") or "licence").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:255] or "licence"


# -- who may see which licence ----------------------------------------------------------------


def visible_licences(user):
    """The licences ``user`` may see: their own; every one for administrators."""
    if not user.is_authenticated or not user.is_active:
        return Licence.objects.none()
    if user.is_admin:
        return Licence.objects.all()
    return Licence.objects.filter(specialist=user)


def get_licence_for_user(user, pk) -> Licence:
    """The licence when ``user`` is its specialist or an administrator; Http404 for everyone else."""
    try:
        return visible_licences(user).select_related("specialist", "reviewed_by").get(pk=int(pk))
    except (Licence.DoesNotExist, ValueError, TypeError):
        raise Http404("No such licence.") from None


def may_hold_licences(user) -> bool:
    return user.is_authenticated and user.is_active and user.is_specialist


# -- changes ----------------------------------------------------------------------------------


@transaction.atomic
def add_licence(specialist: User, *, jurisdiction, number, expires_on, document, by: User) -> Licence:
    """A specialist enters a licence; it waits for an administrator's verification."""
    if not specialist.is_specialist:
        raise PortalError("Only specialists hold licences here.", code="not_a_specialist", status=403)
    fields = {
        "jurisdiction": normalize_jurisdiction(jurisdiction),
        "number": check_number(number),
        "expires_on": check_expiry(expires_on),
    }
    data, kind = check_document(document)
    licence = Licence(specialist=specialist, document_kind=kind, **fields)
    _attach(licence, document, data)
    licence.save()
    record(specialist, Action.LICENCE_ADDED, by=by, licence=licence, detail=_summary(licence))
    return licence


@transaction.atomic
def change_licence(licence: Licence, *, by: User, **changes) -> Licence:
    """The specialist corrects or renews a licence (any of jurisdiction, number, expires_on,
    document). A change to a verified or rejected licence sends it back for verification, and a
    new expiry date earns a new reminder."""
    licence = Licence.objects.select_for_update().get(pk=licence.pk)
    if "jurisdiction" in changes:
        licence.jurisdiction = normalize_jurisdiction(changes["jurisdiction"])
    if "number" in changes:
        licence.number = check_number(changes["number"])
    if "expires_on" in changes:
        expires_on = check_expiry(changes["expires_on"])
        if expires_on != licence.expires_on:
            licence.reminded_at = None
        licence.expires_on = expires_on
    old_file = None
    if changes.get("document") is not None:
        data, licence.document_kind = check_document(changes["document"])
        old_file = licence.document.name
        _attach(licence, changes["document"], data)
    licence.status = Licence.Status.PENDING
    licence.reviewed_at, licence.reviewed_by, licence.rejection_reason = None, None, ""
    licence.updated_at = timezone.now()
    licence.save()
    if old_file:
        storage = licence.document.storage
        transaction.on_commit(lambda: storage.delete(old_file))
    record(licence.specialist, Action.LICENCE_CHANGED, by=by, licence=licence, detail=_summary(licence))
    return licence


def _attach(licence: Licence, upload, data: bytes) -> None:
    licence.document_name = _document_name(upload)
    licence.document_size = len(data)
    licence.document.save(licence.document_name, ContentFile(data), save=False)


def _summary(licence: Licence) -> str:
    return f"{licence.jurisdiction} {licence.number}, expires {licence.expires_on.isoformat()}"


@transaction.atomic
def verify_licence(licence: Licence, *, by: User) -> Licence:
    _require_admin(by)
    licence = Licence.objects.select_for_update().get(pk=licence.pk)
    licence.status = Licence.Status.VERIFIED
    licence.reviewed_at, licence.reviewed_by, licence.rejection_reason = timezone.now(), by, ""
    licence.save(update_fields=["status", "reviewed_at", "reviewed_by", "rejection_reason"])
    record(licence.specialist, Action.LICENCE_VERIFIED, by=by, licence=licence, detail=_summary(licence))
    return licence


@transaction.atomic
def reject_licence(licence: Licence, *, by: User, reason: object) -> Licence:
    _require_admin(by)
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise LicenceInputError("reason", "Say why the licence is rejected: the specialist reads it.")
    try:
        validate_free_text(reason)
    except ValidationError as exc:
        raise LicenceInputError("reason", exc.messages[0]) from None
    licence = Licence.objects.select_for_update().get(pk=licence.pk)
    licence.status = Licence.Status.REJECTED
    licence.reviewed_at, licence.reviewed_by, licence.rejection_reason = timezone.now(), by, reason[:500]
    licence.save(update_fields=["status", "reviewed_at", "reviewed_by", "rejection_reason"])
    record(licence.specialist, Action.LICENCE_REJECTED, by=by, licence=licence, detail=reason[:500])
    return licence


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Http404("No such licence.")


# -- the rule routing and claiming read ---------------------------------------------------------


def rule_applies() -> bool:
    return settings.TELECONSULT_LICENCE_RULE


def licensed_user_ids(jurisdiction: str, on: dt.date | None = None) -> set[int]:
    """Specialists holding a verified licence for ``jurisdiction`` (or its whole country) on ``on``."""
    licences = Licence.objects.valid_on(on or today()).covering(jurisdiction)
    return set(licences.values_list("specialist_id", flat=True))


def is_licensed(user: User, jurisdiction: str, on: dt.date | None = None) -> bool:
    """May ``user`` take a consult in ``jurisdiction``: by a verified, unexpired licence under the
    rule; by the profile's jurisdictions without it."""
    if rule_applies():
        return Licence.objects.valid_on(on or today()).covering(jurisdiction).filter(specialist=user).exists()
    profile = getattr(user, "specialist_profile", None)
    return profile is not None and profile.licensed_in(jurisdiction)


def require_licence(user: User, jurisdiction: str, on: dt.date | None = None) -> None:
    """Refuse (``LicenceRequiredError``) a specialist with no licence that counts for ``jurisdiction``."""
    if not rule_applies():
        return
    day = on or today()
    if is_licensed(user, jurisdiction, day):
        return
    held = list(Licence.objects.covering(jurisdiction).filter(specialist=user).order_by("-expires_on"))
    if not held:
        why = "you have entered no licence for it"
    elif any(licence.status == Licence.Status.VERIFIED for licence in held):
        last = next(licence for licence in held if licence.status == Licence.Status.VERIFIED)
        why = f"your verified licence expired on {last.expires_on.isoformat()}"
    elif any(licence.status == Licence.Status.PENDING for licence in held):
        why = "your licence is still awaiting an administrator's verification"
    else:
        why = "your licence was rejected"
    raise LicenceRequiredError(
        f"This consult is in {jurisdiction}, and {why}: a verified licence valid today is needed to take it.",
        jurisdiction=jurisdiction,
    )


# -- reminders ------------------------------------------------------------------------------


def due_reminders(on: dt.date | None = None):
    """Licences expiring within ``TELECONSULT_LICENCE_REMINDER_DAYS`` that have had no reminder."""
    day = on or today()
    last = day + dt.timedelta(days=settings.TELECONSULT_LICENCE_REMINDER_DAYS)
    return (
        Licence.objects.expiring_between(day, last)
        .filter(reminded_at__isnull=True, specialist__is_active=True)
        .select_related("specialist")
    )


def mark_reminded(licence_pk: int) -> Licence | None:
    """Claim one reminder (inside the caller's transaction): the licence, or None when another run
    already sent it. Keeps the reminder to once even when two beat runs overlap."""
    licence = (
        Licence.objects.select_for_update()
        .select_related("specialist")
        .filter(pk=licence_pk, reminded_at__isnull=True)
        .first()
    )
    if licence is None:
        return None
    licence.reminded_at = timezone.now()
    licence.save(update_fields=["reminded_at"])
    record(licence.specialist, Action.LICENCE_REMINDED, by=None, licence=licence, detail=_summary(licence))
    return licence


def administrators():
    """Who is told about licences: the portal's active administrators."""
    return User.objects.filter(Q(role=Role.ADMIN) | Q(is_superuser=True), is_active=True)
