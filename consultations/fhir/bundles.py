"""Search answers: a ``searchset`` Bundle of one page, with ``self`` and ``next``/``previous`` links.

Pages are windows of the search's fixed order (``_count`` at a time, ``_offset`` from the start):
a client follows ``next`` as it is and needs to know nothing of how it is made. ``total`` is given
where counting is cheap (not for studies, whose search can span a practice's whole archive).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle

from .links import Links


def page_url(request, offset: int) -> str:
    """This search's URL at ``offset``: the client's own parameters, ``_offset`` replaced."""
    pairs = [(name, value) for name, values in request.query_params.lists() if name != "_offset" for value in values]
    if offset:
        pairs.append(("_offset", str(offset)))
    query = urlencode(pairs)
    return request.build_absolute_uri(request.path) + (f"?{query}" if query else "")


def searchset(
    request,
    links: Links,
    matches: list,
    included: list,
    *,
    offset: int,
    count: int,
    has_next: bool,
    total: int | None,
    warnings: list[dict] | None = None,
) -> dict:
    """``matches`` and ``included``: (resource type, FHIR resource) pairs of this page."""
    link = [{"relation": "self", "url": page_url(request, offset)}]
    if has_next:
        link.append({"relation": "next", "url": page_url(request, offset + count)})
    if offset:
        link.append({"relation": "previous", "url": page_url(request, max(offset - count, 0))})
    entries = [
        {"fullUrl": links.resource(kind, resource.id), "resource": resource, "search": {"mode": mode}}
        for mode, pairs in (("match", matches), ("include", included))
        for kind, resource in pairs
    ]
    if warnings:
        entries.append(
            {"resource": {"resourceType": "OperationOutcome", "issue": warnings}, "search": {"mode": "outcome"}}
        )
    body = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": link, "entry": entries or None}
    return Bundle.model_validate({k: v for k, v in body.items() if v is not None}).model_dump(
        mode="json", exclude_none=True
    )
