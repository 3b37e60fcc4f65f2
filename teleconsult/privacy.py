"""No answer of the portal is kept by a browser's or a proxy's cache, but its static files.

Almost every answer carries patient data or belongs to a signed-in person: pages, the REST API,
DICOMweb metadata, instances, frames and rendered images, thumbnails and stored files, report
PDFs, access-history CSV exports, and everything under a share link. Without ``no-store`` a
browser keeps them on disk (a shared or lost computer gives them away after sign-out) and
``Back`` shows them again. ``private, max-age`` is not enough: it only keeps shared caches out.

Every response gets ``Cache-Control: private, no-store`` (replacing what a view set, unless it
says ``no-store`` already, as ``never_cache`` does), not only those to signed-in people: deciding
"signed in" here would read the session, and the database, for every answer, and the few
anonymous pages (sign-in, sign-up) lose nothing by it. Static files
(``STATIC_URL``, fingerprinted and served by WhiteNoise before this middleware in production)
and ``/favicon.ico`` (a redirect to one) keep their own caching.

The viewer does not lean on the HTTP cache: frames it fetched stay in its own in-memory LRU
cache (``static/js/viewer/viewer.js`` ``FrameCache``), so scrolling back does not fetch again.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

NO_STORE = "private, no-store"
UNCACHED_EXEMPT_PATHS = frozenset({"/favicon.ico"})


def is_static(request: HttpRequest) -> bool:
    static_path = urlsplit(settings.STATIC_URL or "").path
    return bool(static_path and static_path != "/" and request.path.startswith(static_path)) or (
        request.path in UNCACHED_EXEMPT_PATHS
    )


class NoStoreMiddleware(MiddlewareMixin):
    """``Cache-Control: private, no-store`` on every answer but static files (sync and async)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if is_static(request):
            return response
        directives = {part.strip().lower() for part in response.get("Cache-Control", "").split(",")}
        if "no-store" not in directives:  # never_cache's answer already says so (and more): kept
            response["Cache-Control"] = NO_STORE
            del response["Expires"]
        return response
