"""Template tags for pages outside this app that show studies (the home page's recent studies) and
for study rows (the buttons other apps offer for a study)."""

from __future__ import annotations

from django import template

from studies import panels
from studies.browse import recent_studies

register = template.Library()


@register.simple_tag
def recent_studies_for(user, limit: int = 5) -> list:
    """``{% recent_studies_for user as recent %}``: the user's latest visible studies."""
    if user is None or not user.is_authenticated:
        return []
    return recent_studies(user, limit)


@register.simple_tag(takes_context=True)
def study_actions_for(context, study) -> list:
    """``{% study_actions_for study as actions %}``: the buttons other apps offer for ``study``
    (studies.panels) to the signed-in user."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return []
    return panels.study_actions(request, study)


@register.filter
def person_name(value: str) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix) as plain words, like Patient.display_name.

    Of the alphabetic, ideographic and phonetic groups (separated by "="), the first present one is shown.
    """
    group = next((g for g in (value or "").split("=") if g.strip("^ ")), "")
    return " ".join(part.strip() for part in group.split("^") if part.strip())
