"""The de-identified copy of a study, for clinicians: a zip download (see studies.deid) from the
study page, ``/studies/<uid>/deidentified.zip`` (the API's is ``studies.api.deid``).

The copy is a download only: a share link shows the stored study itself, so a de-identified copy
is shared by sending the downloaded archive.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_safe

from ..permissions import get_study_for_user
from ..web import DEID_REFUSAL, deidentified_download, may_deidentify


@require_safe
@login_required
def deidentified_zip(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    if not may_deidentify(request.user):
        return HttpResponseForbidden(DEID_REFUSAL)
    return deidentified_download(request, study)
