"""Navigation entries this app adds for a user (see teleconsult.context_processors)."""

from __future__ import annotations

from contextlib import suppress

from django.urls import NoReverseMatch, reverse

from .permissions import can_upload


def nav_items(user) -> list[dict]:
    if user.is_patient:
        from .invitations import requests_for

        try:
            items = [{"label": "My images", "url": reverse("portal:home"), "key": "studies"}]
        except NoReverseMatch:
            items = [{"label": "My images", "url": reverse("studies:list"), "key": "studies"}]
        waiting = requests_for(user).count()
        items.append(
            {"label": "My records", "url": reverse("studies:link-requests"), "key": "records", "count": waiting}
        )
        return items
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
    return items
