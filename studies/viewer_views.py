"""The study viewer page: the images of one study, in the browser, for anyone who may see it.

Other pages embed the same viewer with ``{% include "viewer/_viewer.html" %}`` and the context
from ``viewer_context(...)`` (the include also works with just ``study`` and ``read_only``; the
browser then asks QIDO-RS for the series list).
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from .models import Study
from .permissions import get_study_for_user

# Characters that could end the <script type="application/json"> element or open markup.
_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def viewer_is_read_only(user) -> bool:
    """Patients look at their images; clinicians may also measure and annotate."""
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
    return mark_safe(json.dumps(rows).translate(_JSON_SCRIPT_ESCAPES))  # noqa: S308 (escaped above)


def viewer_context(user, study: Study, *, read_only: bool | None = None, series_uid: str = "") -> dict:
    """What templates/viewer/_viewer.html needs; ``read_only`` defaults to the user's role."""
    return {
        "study": study,
        "read_only": viewer_is_read_only(user) if read_only is None else read_only,
        "series_uid": series_uid,
        "series_json": series_list_json(study),
    }


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    context = viewer_context(request.user, study, series_uid=request.GET.get("series", "")[:64])
    return render(request, "viewer/viewer.html", context)
