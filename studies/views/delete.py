"""Deleting a study from its page: a form under the study, with a box to tick (``studies.deletion``
decides who may and when it is refused; a refusal comes back to the study page as a message)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from teleconsult.errors import on_refusal

from .. import deletion


def deletion_panel(user, study) -> dict | None:
    """What the study page shows of deletion to ``user``: nothing when they may not delete the study,
    else why it cannot be deleted now, or the form's counts."""
    if not deletion.may_delete(user, study):
        return None
    return {
        "refusal": deletion.refusal(study),
        "grace_hours": settings.TELECONSULT_SWEEP_GRACE_HOURS,
    }


@login_required
@require_POST
def delete_study(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = deletion.study_to_delete(request.user, study_uid)
    on_refusal(request, reverse("studies:detail", args=[study.study_instance_uid]))
    if request.POST.get("confirm") != "yes":
        raise deletion.DeletionError(
            "Tick “I understand” to confirm the deletion; nothing was deleted.", status=400, code="not_confirmed"
        )
    deleted = deletion.delete(request, request.user, study_uid)
    messages.success(
        request,
        f"Study deleted: {deleted.series} series, {deleted.instances} instance{'s' if deleted.instances != 1 else ''}. "
        "Its images can be sent again.",
    )
    return redirect("studies:list")
