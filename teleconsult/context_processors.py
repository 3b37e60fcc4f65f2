"""Navigation entries for the signed-in user's role, gathered from each app."""

from __future__ import annotations

from django.urls import reverse

from consultations.navigation import nav_items as consultation_items
from studies.navigation import nav_items as study_items


def navigation(request) -> dict:
    """``nav_items``: dicts with label, url and optionally key and count (badge)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = [{"label": "Home", "url": reverse("home")}]
    items += study_items(user)
    items += consultation_items(user)
    if not user.is_patient:
        items.append({"label": "Practices" if user.is_admin else "My practice", "url": reverse("accounts:practices")})
    if user.is_admin or user.is_specialist:
        items.append(
            {"label": "Specialists", "url": reverse("console:list"), "key": "specialists"}
            if user.is_admin
            else {"label": "Licences", "url": reverse("console:licences"), "key": "licences"}
        )
    if user.is_admin:
        items.append({"label": "Admin", "url": reverse("admin:index")})
    items.append({"label": "Security", "url": reverse("mfa_index")})
    return {"nav_items": items}
