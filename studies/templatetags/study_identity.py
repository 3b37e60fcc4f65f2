"""Whose images: the warning over a study whose images name more than one patient (studies.identity)."""

from __future__ import annotations

from django import template

from .. import identity

register = template.Library()


@register.simple_tag(takes_context=True)
def identity_warning(context, study) -> str:
    """The sentence for ``study`` ("" for one patient's), with the names for clinicians only."""
    user = context.get("user") or getattr(context.get("request"), "user", None)
    return identity.warning(study, names=identity.shows_names_to(user))
