"""The DICOMweb read routes again, under a share link: /s/<token>/dicomweb/...

Each route is the /dicomweb/ view itself, run as the link's ``ShareAccess`` (see
``studies.permissions``), which sees exactly the link's study: another study's UID through the
link is a 404. Only reads: no STOW-RS, and an API token or a session of the browser plays no part.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import Http404
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from ..dicomweb import error_response
from ..dicomweb import urls as dicomweb_urls
from ..permissions import ShareAccess, get_share_for_request

READ_METHODS = ("GET", "HEAD")


def share_route(view: Callable) -> Callable:
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, token: str, **kwargs) -> HttpResponse:
        if request.method not in READ_METHODS:
            return HttpResponseNotAllowed(READ_METHODS)
        try:
            link = get_share_for_request(request, token)
        except Http404:
            return error_response("Not found.", 404)
        request.META.pop("HTTP_AUTHORIZATION", None)
        request.share_access = ShareAccess(link)
        request.share_dicomweb_root = f"/s/{token}/dicomweb"
        return view(request, **kwargs)

    return wrapper


app_name = "share-dicomweb"

urlpatterns = [
    path(str(pattern.pattern), share_route(pattern.callback), name=pattern.name)
    for pattern in dicomweb_urls.urlpatterns
]
