"""The study as a zip of its DICOM files, for anyone who may see it (built by ``studies.downloads``;
a share link's download is ``studies.sharing.views``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from .. import audit
from ..downloads import study_zip_response
from ..models import AccessEvent
from ..permissions import get_study_for_user


@require_safe
@login_required
def download_study(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    audit.record(request, AccessEvent.Action.DOWNLOAD, study)
    return study_zip_response(study)
