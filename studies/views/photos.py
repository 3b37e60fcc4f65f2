"""Adding a photo or a PDF to a study from a phone: the mobile page (the API is
``studies.api.photos``).

The study is checked first (404 for anyone who may not see it or add to it), then the file is
handed to ``studies.photos``. Every refusal names the problem beside the form; none is a server
error.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .. import photos
from ..navigation import study_page_url
from ..web import get_study_to_add_to, photo_request_too_large, photo_upload


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def add_photo_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_to_add_to(request.user, study_uid)
    context = {
        "study": study,
        "patient": study.patient,
        "back_url": study_page_url(request.user, study),
        "max_size": photos.max_size(),
    }
    if request.method != "POST":
        return render(request, "studies/add_photo.html", context)
    if photo_request_too_large(request):
        context["error"] = f"The file is over the limit of {photos.max_size() // (1024 * 1024)} MB."
        return render(request, "studies/add_photo.html", context, status=413)
    upload = photo_upload(request.FILES)
    if upload is None:
        context["error"] = "Choose a photo or a PDF first."
        return render(request, "studies/add_photo.html", context, status=400)
    try:
        photos.add_to_study(study, upload, size=upload.size, filename=upload.name, user=request.user)
    except photos.PhotoRefusedError as exc:
        # Shown beside the file field, on the same page.
        context["error"] = exc.message
        return render(request, "studies/add_photo.html", context, status=exc.status)
    messages.success(request, "Added to the study. It appears with the other images in a moment.")
    return redirect(context["back_url"])
