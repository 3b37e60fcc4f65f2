"""Navigation entries for the signed-in user's role; later apps add their counts here."""

from __future__ import annotations

from django.urls import reverse


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = [{"label": "Home", "url": reverse("home")}]
    if user.is_admin:
        items.append({"label": "Admin", "url": reverse("admin:index")})
    items.append({"label": "Security", "url": reverse("mfa_index")})
    return {"nav_items": items}
