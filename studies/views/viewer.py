"""The study viewer page: the images of one study, in the browser, for anyone who may see it.

Measurements and annotations are kept on a consult (its care team's shared record); this page
belongs to no consult, so it shows no drawing tools rather than let a clinician draw what would
not be kept, and says where to measure instead. The consult page embeds the same viewer with them.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import audit
from ..models import AccessEvent
from ..permissions import get_study_for_user
from ..viewer import viewer_context, viewer_is_read_only

DRAWING_NOTE = "Measurements are saved on a consult: open the viewer from a consult to measure and annotate."


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    audit.record(request, AccessEvent.Action.VIEWER_LOAD, study)
    # Patients and share-link visitors never draw, so only clinicians are told where to.
    note = "" if viewer_is_read_only(request.user) else DRAWING_NOTE
    context = viewer_context(
        request.user, study, read_only=True, drawing_note=note, series_uid=request.GET.get("series", "")[:64]
    )
    return render(request, "viewer/viewer.html", context)
