"""DELETE on a study, a series or an instance (``studies.deletion``: who may, and when it is refused).

PS3.18 defines no deletion; this is the form archives offer (dcm4chee, Orthanc's own): ``DELETE``
on the resource's URL, ``204`` once it is gone. The same URLs answer GET (and the study's POST)
through their own views: :func:`with_delete` hands each method to its view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ... import deletion
from .common import dicomweb_route


@dicomweb_route(methods=("DELETE",))
def delete_study(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    deletion.delete(request, user, study_uid)
    return HttpResponse(status=204)


@dicomweb_route(methods=("DELETE",))
def delete_series(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    deletion.delete(request, user, study_uid, series_uid)
    return HttpResponse(status=204)


@dicomweb_route(methods=("DELETE",))
def delete_instance(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    deletion.delete(request, user, study_uid, series_uid, sop_uid)
    return HttpResponse(status=204)


def with_delete(view: Callable, delete_view: Callable) -> Callable:
    """``view`` for its methods, ``delete_view`` for DELETE; a 405 names DELETE among the methods allowed."""

    @csrf_exempt
    @wraps(view)
    def route(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "DELETE":
            return delete_view(request, *args, **kwargs)
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "DELETE" not in response.get("Allow", ""):
            response["Allow"] = ", ".join(filter(None, [response.get("Allow", ""), "DELETE"]))
        return response

    return route
