"""Navigation entries this app adds for a user (see teleconsult.context_processors)."""

from __future__ import annotations

from django.urls import reverse

from . import dashboard
from .models import OPEN_STATES, ConsultRequest, State
from .notifications import unread_count
from .permissions import requested_or_joined


def nav_items(user) -> list[dict]:
    """Worklist (offered + mine open) for specialists, My consults for physicians and patients,
    Notifications (unread) for everyone."""
    items: list[dict] = []
    if user.is_specialist:
        count = ConsultRequest.objects.worklist_for(user).filter(state__in=OPEN_STATES).count()
        items.append({"label": "Worklist", "url": reverse("consultations:worklist"), "key": "worklist", "count": count})
    elif user.is_physician:
        # Those the physician still sees (a requester who left the practice left its consults).
        count = requested_or_joined(user).filter(state__in=(*OPEN_STATES, State.REPORTED)).count()
        items.append({"label": "My consults", "url": reverse("consultations:mine"), "key": "consults", "count": count})
    elif user.is_patient:
        items.append({"label": "My consults", "url": reverse("consultations:mine"), "key": "consults"})
    if user.is_admin or dashboard.administered_practices(user):
        items.append({"label": "Dashboard", "url": reverse("consultations:dashboard"), "key": "dashboard"})
        items.append({"label": "Webhooks", "url": reverse("consultations:webhooks"), "key": "webhooks"})
    items.append(
        {
            "label": "Notifications",
            "url": reverse("consultations:notifications"),
            "key": "notifications",
            "count": unread_count(user),
        }
    )
    return items
