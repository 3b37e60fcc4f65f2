"""What every DICOMweb route shares: the method check, authentication (API token, session, or a
share link's access) and error answers (``dicomweb_route``), absolute URLs, stored files."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import Http404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import BearerlessTokenAuthentication
from teleconsult.errors import PortalError

from ... import audit
from ...models import Instance
from ..errors import DicomwebError, error_response, exception_response
from ..media_types import DICOM_JSON, accepts_any, parse_accept

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def json_response(request: HttpRequest, data, status: int = 200) -> HttpResponse:
    media_type = accepts_any(parse_accept(request.headers.get("Accept")), DICOM_JSON, "application/json")
    if media_type is None:
        raise DicomwebError("This resource is available as application/dicom+json.", status=406)
    return HttpResponse(json.dumps(data, separators=(",", ":")), status=status, content_type=media_type)


def authenticate(request: HttpRequest):
    """The user behind an API token or a session; session writes must carry the CSRF token."""
    share_access = getattr(request, "share_access", None)
    if share_access is not None:  # mounted under a share link (studies.sharing.dicomweb)
        return share_access
    try:
        authenticated = BearerlessTokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise DicomwebError(str(exc.detail), status=401) from None
    if authenticated is not None:
        return authenticated[0]
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        raise DicomwebError("Authentication credentials were not provided.", status=401)
    if request.method not in SAFE_METHODS:
        check = CSRFCheck(lambda _request: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise DicomwebError(f"CSRF failed: {reason}", status=403)
    return user


def dicomweb_route(methods: tuple[str, ...] = ("GET", "HEAD")) -> Callable:
    """Method check, authentication and the error shape shared by every DICOMweb route.

    CSRF middleware is bypassed because token clients have no cookie; ``authenticate`` applies
    the same check to session-authenticated writes.
    """

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            try:
                user = authenticate(request)
                response = view(request, user, *args, **kwargs)
                audit.record_dicomweb(request, user, response, kwargs)
                return response
            except (PortalError, Http404) as exc:
                return exception_response(exc)

        return wrapper

    return decorate


@csrf_exempt
def not_found(request: HttpRequest, **kwargs) -> HttpResponse:
    """Any path under /dicomweb/ that is no route: a 404 in the DICOMweb shape, never a page."""
    return error_response("Not found: there is no DICOMweb resource at this path.", 404)


class Urls:
    """Absolute DICOMweb URLs for RetrieveURL and BulkDataURI, from the request's own origin."""

    def __init__(self, request: HttpRequest) -> None:
        share_root = getattr(request, "share_dicomweb_root", None)
        self.root = request.build_absolute_uri(f"{share_root}/studies" if share_root else reverse("dicomweb:studies"))

    def study(self, study_uid: str) -> str:
        return f"{self.root}/{study_uid}"

    def series(self, study_uid: str, series_uid: str) -> str:
        return f"{self.root}/{study_uid}/series/{series_uid}"

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.root}/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def open_stored(instance: Instance):
    try:
        return instance.file.storage.open(instance.file.name, "rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None


def ordered(instances):
    return instances.order_by("series__series_number", "series_id", "instance_number", "pk")


def image_response(data: bytes, media_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=media_type)
    response["Cache-Control"] = "private, max-age=300"
    return response
