"""``{% priors_panel kind pk %}`` and ``{% results_sent kind pk %}``: the priors search and the
"results sent back" line, for a target (``patient``, ``consult``) on any page that shows one.

Each shows nothing to a user who may not pull priors for the target (``studies.priors.target_for``);
the priors panel also shows nothing when the target's practice has no enabled DICOM node.
"""

from __future__ import annotations

from django import template
from django.http import Http404

from studies import priors, sending

register = template.Library()


def _target(context, kind: str, pk):
    request = context.get("request")
    if request is None:
        return None
    try:
        return priors.target_for(request.user, kind, pk)
    except Http404:
        return None


@register.inclusion_tag("studies/_priors_panel.html", takes_context=True)
def priors_panel(context, kind: str, pk) -> dict:
    target = _target(context, kind, pk)
    nodes = list(priors.nodes_for_target(target)) if target is not None else []
    if not nodes:
        return {"target": None}
    return {
        "target": target,
        "nodes": nodes,
        "retrievals": [priors.retrieval_as_dict(row) for row in priors.retrievals_for(target)],
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("studies/_results_sent.html", takes_context=True)
def results_sent(context, kind: str, pk) -> dict:
    target = _target(context, kind, pk)
    sends = list(sending.sends_for(target.key)) if target is not None else []
    request = context.get("request")
    return {
        "sends": sends,
        "csrf_token": context.get("csrf_token"),
        "next": request.get_full_path() if request else "/",
    }
