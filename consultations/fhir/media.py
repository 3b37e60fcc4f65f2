"""What goes over the wire: FHIR JSON only.

Answers are ``application/fhir+json`` (``application/json`` when that is all the client takes).
A client that accepts neither (``Accept: application/fhir+xml``, ``_format=xml``) gets 406; a body
in another type than JSON gets 415. FHIR's ``_format`` parameter overrides ``Accept``, as the
specification says; parameters of a media type (``fhirVersion=4.0``, ``charset``) are ignored.
"""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

FHIR_JSON = "application/fhir+json"
# Media types (and _format values) that mean FHIR JSON, and those that take any JSON answer.
JSON_NAMES = frozenset({FHIR_JSON, "application/json", "application/json+fhir", "json", "text/json"})
WILDCARDS = frozenset({"*/*", "application/*"})


class FhirJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"
    charset = "utf-8"


class PlainJSONRenderer(JSONRenderer):
    media_type = "application/json"
    format = "json"
    charset = "utf-8"


class FhirJSONParser(JSONParser):
    media_type = FHIR_JSON


PARSERS = [FhirJSONParser, JSONParser]
RENDERERS = [FhirJSONRenderer, PlainJSONRenderer]


def _media_types(header: str) -> list[str]:
    """The media types of an Accept header or ``_format`` value, without parameters, in order
    (a type with ``q=0`` is one the client refuses)."""
    found = []
    for part in header.split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if name:
            found.append(name.lower())
    return found


class FhirContentNegotiation(BaseContentNegotiation):
    """FHIR JSON or nothing: picks the renderer, or refuses with 406 naming what is served."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip().lower() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        by_type = {renderer.media_type: renderer for renderer in renderers}
        wanted = request.query_params.get("_format") or request.META.get("HTTP_ACCEPT") or "*/*"
        for name in _media_types(wanted):
            if name in JSON_NAMES or name in WILDCARDS:
                chosen = by_type.get(name) or by_type[FHIR_JSON]
                return chosen, chosen.media_type
        raise NotAcceptable(f"Only FHIR JSON ({FHIR_JSON}) is served; {wanted!r} was asked for.")
