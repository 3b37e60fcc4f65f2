"""Template tags for pages outside this app that show studies (the home page's recent studies)."""

from __future__ import annotations

from django import template

from studies.browse import recent_studies

register = template.Library()


@register.simple_tag
def recent_studies_for(user, limit: int = 5) -> list:
    """``{% recent_studies_for user as recent %}``: the user's latest visible studies."""
    if user is None or not user.is_authenticated:
        return []
    return recent_studies(user, limit)
