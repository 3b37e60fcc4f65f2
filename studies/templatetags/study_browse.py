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


@register.filter
def person_name(value: str) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix) as plain words, like Patient.display_name.

    Of the alphabetic, ideographic and phonetic groups (separated by "="), the first present one is shown.
    """
    group = next((g for g in (value or "").split("=") if g.strip("^ ")), "")
    return " ".join(part.strip() for part in group.split("^") if part.strip())
