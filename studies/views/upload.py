"""The browser upload page: files, folders and zip archives, each sent to the upload API with progress."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from accounts.practices import choosable_practices, default_practice

from ..permissions import can_upload
from ..web import upload_refusal


@require_safe
@login_required
@ensure_csrf_cookie
def upload_page(request: HttpRequest) -> HttpResponse:
    if not can_upload(request.user):
        return render(request, "studies/upload.html", {"refusal": upload_refusal(request.user)}, status=403)
    practices = list(choosable_practices(request.user))
    chosen = default_practice(request.user)
    return render(
        request,
        "studies/upload.html",
        {
            "api_url": reverse("api-uploads"),
            "studies_url": reverse("studies:list"),
            "max_file_size": settings.TELECONSULT_MAX_FILE_SIZE,
            "max_request_size": settings.TELECONSULT_MAX_REQUEST_SIZE,
            "practices": practices,
            "chosen_practice": chosen,
        },
    )
