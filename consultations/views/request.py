"""Request a consult on a study."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render

from studies.permissions import get_study_for_user

from .. import actions, forms
from ..errors import AttachmentRefusedError, ConsultError


@login_required
def consult_new(request, study_uid: str):
    """Request a consult on a study the physician may see."""
    study = get_study_for_user(request.user, study_uid)
    if not (request.user.is_physician or request.user.is_admin):
        raise PermissionDenied("Only physicians request consults.")
    form = forms.ConsultRequestForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                consult = actions.create_consult(
                    by=request.user,
                    study=study,
                    submit=False,
                    question=data["question"],
                    clinical_history=data["clinical_history"],
                    priority=data["priority"],
                    specialty=data["specialty"],
                    target_specialist=data["specialist"],
                    jurisdiction=data["jurisdiction"],
                    outside_report=data["outside_report"],
                )
                if data.get("attachment"):
                    actions.add_attachment(consult, by=request.user, upload=data["attachment"])
                actions.submit_consult(consult, by=request.user)
        except AttachmentRefusedError as exc:
            form.add_error("attachment", exc.message)
        except ConsultError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Consult requested. Matching specialists have been told.")
            return redirect("consultations:detail", pk=consult.pk)
    return render(request, "consultations/new.html", {"form": form, "study": study})
