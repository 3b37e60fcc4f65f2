"""Navigation entries this app adds for a user (see teleconsult.context_processors), and where a
user sees a study."""

from __future__ import annotations

from contextlib import suppress

from django.urls import NoReverseMatch, reverse

from . import panels
from .invitations import requests_for
from .models import Study
from .nodes import may_manage_nodes
from .permissions import can_upload


def study_page_url(user, study: Study) -> str:
    """The study's page for ``user``: a patient's own study page when an app offers one."""
    if user.is_patient:
        url = panels.link_url(panels.PATIENT_STUDY_PAGE, study)
        if url:
            return url
    return reverse("studies:detail", kwargs={"study_uid": study.study_instance_uid})


def patient_home_url() -> str:
    """A patient's home for their images: the portal's when an app offers one, else the study list."""
    return panels.link_url(panels.PATIENT_HOME) or reverse("studies:list")


def nav_items(user) -> list[dict]:
    if user.is_patient:
        waiting = requests_for(user).count()
        return [
            {"label": "My images", "url": patient_home_url(), "key": "studies"},
            {"label": "My records", "url": reverse("studies:link-requests"), "key": "records", "count": waiting},
        ]
    if not (user.is_physician or user.is_specialist or user.is_admin):
        return []
    items = [{"label": "Studies", "url": reverse("studies:list"), "key": "studies"}]
    # The upload page comes with the ingest code; until it exists there is nothing to link.
    # A clinician no practice has admitted yet has nowhere to file an upload: no entry until then.
    if can_upload(user):
        with suppress(NoReverseMatch):
            items.append({"label": "Upload", "url": reverse("studies:upload"), "key": "upload"})
    if user.is_admin:
        items.append({"label": "Access history", "url": reverse("studies:access-history"), "key": "access-history"})
    if may_manage_nodes(user):
        items.append({"label": "DICOM nodes", "url": reverse("studies:nodes"), "key": "dicom-nodes"})
    return items
