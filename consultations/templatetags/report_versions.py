"""Report versions on pages: each labelled with what superseded it or what it amends
(consultations.versions), the same on the consult page, the report editor, the portal and a share."""

from __future__ import annotations

from django import template

from .. import versions
from ..portal import signed_versions

register = template.Library()


@register.filter
def labelled(reports) -> list:
    """``{% for report in reports|labelled %}``: the versions (those the page's reader may read) in
    the order given, each with ``successor`` and ``predecessor``."""
    return versions.labelled(reports)


@register.simple_tag(takes_context=True)
def readable_versions(context, consult) -> list:
    """The signed versions of ``consult`` the page's reader may read now, newest first, labelled."""
    return list(reversed(versions.labelled(signed_versions(context["user"], consult))))
