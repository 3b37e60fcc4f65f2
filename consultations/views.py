"""Pages: request a consult, the consult, the worklist, the report editor, notifications."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import permissions
from .models import ConsultRequest


@login_required
def consult_detail(request, pk: int):
    consult: ConsultRequest = permissions.get_consult_for_user(request.user, pk)
    return render(request, "consultations/detail.html", {"consult": consult})
