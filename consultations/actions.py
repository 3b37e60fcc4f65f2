"""Consult changes that touch several models and tell people about it.

Each function runs the model transition, routes offers or grants access where needed and writes
notifications in one transaction; pushes and emails go out after commit (see notifications).
Views, the API and tasks call these, never the notification code directly.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from accounts.models import User

from . import offers
from .models import (
    ConsultAttachment,
    ConsultEvent,
    ConsultRequest,
    IllegalTransitionError,
    NotAllowedError,
    Notification,
    State,
)
from .notifications import notify

Kind = Notification.Kind


def _referring_side(consult: ConsultRequest) -> list:
    return [consult.requester, *(p.user for p in consult.active_participants())]


def _patient_accounts(consult: ConsultRequest) -> list:
    account = consult.study.patient.account
    return [account] if account is not None else []


@transaction.atomic
def create_consult(*, by: User, study, submit: bool = True, **fields) -> ConsultRequest:
    """A new consult on a study the physician may see; submitted at once unless ``submit=False``."""
    if not by.is_physician and not by.is_admin:
        raise NotAllowedError("Only physicians request consults.")
    if not by.has_clinical_access:
        raise NotAllowedError("You are not a member of a practice yet: a practice admin must admit you first.")
    consult = ConsultRequest.objects.create(study=study, requester=by, **fields)
    consult._log(ConsultEvent.Kind.CREATED, by, "Consult requested.")
    if submit:
        submit_consult(consult, by=by)
    return consult


@transaction.atomic
def submit_consult(consult: ConsultRequest, *, by: User) -> None:
    consult.submit(by=by)
    new_offers = offers.route(consult)
    notify(
        [offer.specialist for offer in new_offers],
        kind=Kind.OFFER,
        consult=consult,
        title=f"New {consult.get_priority_display().lower()} consult offered to you",
        body="A physician asks for your opinion. Accept it from your worklist.",
    )


def accept_consult(consult: ConsultRequest, *, by: User) -> None:
    with transaction.atomic():
        consult.accept(by=by)
        notify(
            _referring_side(consult),
            kind=Kind.ACCEPTED,
            consult=consult,
            title=f"Consult #{consult.pk} accepted by {by.display_name}",
        )


@transaction.atomic
def decline_consult(consult: ConsultRequest, *, by: User, reason: str) -> str:
    outcome = consult.decline(by=by, reason=reason)
    if outcome == "pool":
        new_offers = offers.route(consult)
        notify(
            [o.specialist for o in new_offers],
            kind=Kind.OFFER,
            consult=consult,
            title=f"New {consult.get_priority_display().lower()} consult offered to you",
        )
    if outcome in ("pool", "requester"):
        notify(
            _referring_side(consult),
            kind=Kind.DECLINED,
            consult=consult,
            title=f"Consult #{consult.pk} declined by {by.display_name}",
            body=f"Reason: {reason.strip()}"
            + (" It was offered to the specialty pool." if outcome == "pool" else " Choose another specialist."),
        )
    return outcome


@transaction.atomic
def cancel_consult(consult: ConsultRequest, *, by: User, reason: str = "") -> None:
    told = [consult.assignee] if consult.assignee else offers.pool_users(consult)
    consult.cancel(by=by, reason=reason)
    notify(told, kind=Kind.CANCELLED, consult=consult, title=f"Consult #{consult.pk} was cancelled")


@transaction.atomic
def request_info(consult: ConsultRequest, *, by: User, question: str) -> None:
    consult.request_info(by=by, question=question)
    notify(
        _referring_side(consult),
        kind=Kind.INFO_REQUESTED,
        consult=consult,
        title=f"{by.display_name} needs more information on consult #{consult.pk}",
        body=question.strip(),
    )


@transaction.atomic
def answer_info(consult: ConsultRequest, *, by: User, answer: str) -> None:
    consult.answer_info(by=by, answer=answer)
    notify(
        [consult.assignee],
        kind=Kind.INFO_ANSWERED,
        consult=consult,
        title=f"{by.display_name} answered on consult #{consult.pk}",
        body=answer.strip(),
    )


@transaction.atomic
def close_consult(consult: ConsultRequest, *, by: User) -> None:
    consult.close(by=by)


@transaction.atomic
def add_participant(consult: ConsultRequest, *, by: User, user: User) -> None:
    consult.add_participant(by=by, user=user)
    notify(
        [user],
        kind=Kind.PARTICIPANT_ADDED,
        consult=consult,
        title=f"{by.display_name} added you to consult #{consult.pk}",
    )


@transaction.atomic
def remove_participant(consult: ConsultRequest, *, by: User, user: User) -> None:
    consult.remove_participant(by=by, user=user)


def report_signed(consult: ConsultRequest, report) -> None:
    """Tell the referring side and the patient that a report (or an addendum) is signed."""
    if report.is_addendum:
        kind, title = Kind.ADDENDUM, f"Addendum to the report on consult #{consult.pk}"
        body = f"Reason: {report.addendum_reason}"
    else:
        kind, title, body = Kind.REPORT_SIGNED, f"The report on consult #{consult.pk} is signed", ""
    notify([*_referring_side(consult), *_patient_accounts(consult)], kind=kind, consult=consult, title=title, body=body)
    transaction.on_commit(lambda: _queue_report_pdf(report.pk))


def _queue_report_pdf(report_pk: int) -> None:
    """The signed version also goes into the study as an Encapsulated PDF (consultations.dicom_export)."""
    from . import tasks

    tasks.store_report_pdf.delay(report_pk=report_pk)


# Attachments: recognised by their first bytes, never by name or declared type.
MAGIC = (
    (b"%PDF-", ConsultAttachment.Kind.PDF),
    (b"\x89PNG\r\n\x1a\n", ConsultAttachment.Kind.PNG),
    (b"\xff\xd8\xff", ConsultAttachment.Kind.JPEG),
)


class AttachmentRefusedError(IllegalTransitionError):
    status_code = 400
    code = "attachment_refused"


def sniff_attachment(data: bytes) -> str:
    for magic, kind in MAGIC:
        if data.startswith(magic):
            if kind != ConsultAttachment.Kind.PDF:
                _check_image(data)
            return kind
    raise AttachmentRefusedError("Only PDF, PNG or JPEG files can be attached; this file is none of them.")


def _check_image(data: bytes) -> None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise AttachmentRefusedError(f"The image is damaged or incomplete ({exc}).") from None


@transaction.atomic
def add_attachment(consult: ConsultRequest, *, by: User, upload) -> ConsultAttachment:
    """Attach a PDF or an image (checked by content, limited in size) to an open consult."""
    if not (consult.may_requester_act(by) or by.pk == consult.assignee_id):
        raise NotAllowedError("Only people working on this consult may attach files.")
    if consult.state in (State.CANCELLED, State.CLOSED):
        raise IllegalTransitionError(f"Cannot attach files to a consult that is {consult.get_state_display().lower()}.")
    limit = settings.TELECONSULT_ATTACHMENT_MAX_SIZE
    if upload.size > limit:
        raise AttachmentRefusedError(f"The file is {upload.size} bytes; attachments may be at most {limit} bytes.")
    data = upload.read()
    if not data:
        raise AttachmentRefusedError("The file is empty.")
    kind = sniff_attachment(data)
    name = (getattr(upload, "name", "") or f"attachment.{kind}").rsplit("/", 1)[-1][:200]
    attachment = ConsultAttachment(
        consult=consult,
        name=name,
        kind=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=by,
    )
    attachment.file.save(f"consult-{consult.pk}.{kind}", ContentFile(data), save=False)
    attachment.save()
    consult._log(ConsultEvent.Kind.ATTACHMENT_ADDED, by, f"Attached {name}.", attachment_id=attachment.pk)
    return attachment
