"""What the study pages (``studies.views``) and the REST API (``studies.api``) do alike, so that
neither imports the other: who may upload, add a photo or take a de-identified copy (and the
sentence saying why not), how such a request is read, and the de-identified download itself.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse

from . import audit, deid, photos
from .models import AccessEvent, Study
from .permissions import get_study_for_user

# Uploads -----------------------------------------------------------------------------------------

PATIENT_UPLOAD_MESSAGE = (
    "Patients cannot upload images here: ask your physician to upload them, or share them with a physician who can."
)
NO_PRACTICE_MESSAGE = (
    "You are not a member of a practice yet: once a practice admin admits you (or you accept a practice's "
    "invitation), you can upload."
)


def upload_refusal(user) -> str:
    """Why ``user`` may not upload (``studies.permissions.can_upload`` said no)."""
    return PATIENT_UPLOAD_MESSAGE if user.is_patient else NO_PRACTICE_MESSAGE


# Photos and PDFs from a phone --------------------------------------------------------------------

# Multipart framing around one file: a request much larger than the file limit is refused unread.
MULTIPART_ALLOWANCE = 64 * 1024


def get_study_to_add_to(user, study_uid: str) -> Study:
    """The study, if ``user`` may see it and add a photo to it; 404 otherwise."""
    study = get_study_for_user(user, study_uid)
    if not photos.may_add(user, study):
        raise Http404("No such study.")
    return study


def photo_request_too_large(request) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > photos.max_size() + MULTIPART_ALLOWANCE


def photo_upload(files):
    """The file sent in the multipart field ``file`` (or ``document``), or None."""
    return files.get("file") or files.get("document")


# De-identified copies ----------------------------------------------------------------------------

DEID_REFUSAL = "De-identified copies are made by the clinicians caring for the study."
DEID_DOWNLOAD_OBJECT = "deidentified"


def may_deidentify(user) -> bool:
    return bool(user.is_physician or user.is_specialist or user.is_admin)


def deidentified_download(request: HttpRequest, study: Study) -> HttpResponse:
    """The de-identified zip of ``study`` (``?include_burned_in=1`` adds the flagged files), recorded
    as a download. The caller has checked ``may_deidentify``."""
    include_flagged = request.GET.get("include_burned_in", "").lower() in ("1", "true", "yes", "on")
    audit.record(
        request,
        AccessEvent.Action.DOWNLOAD,
        study,
        DEID_DOWNLOAD_OBJECT + ("+burned-in" if include_flagged else ""),
    )
    return deid.copy_response(study, include_flagged=include_flagged)
