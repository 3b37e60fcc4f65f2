"""Priors from DICOM nodes, for a target (a patient record, a consult): search, retrieve, and the
progress the page polls; and "Send again" for a result sent back to a node.

JSON in and out for static/js/priors.js. The target's own check comes first (``priors.target_for``:
404 for anyone who may not pull priors for it); refusals are ``{"detail", "code"}`` with their status.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from teleconsult.errors import PortalError

from .. import priors, sending
from ..models import ResultSend


def _refused(exc: PortalError) -> JsonResponse:
    return JsonResponse({"detail": exc.message, "code": exc.code}, status=exc.status)


def _body(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise priors.PriorsError("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise priors.PriorsError("The request body must be a JSON object.")
        return data
    data = {key: request.POST.get(key) for key in request.POST}
    data["study_uids"] = request.POST.getlist("study_uids")
    return data


@login_required
@require_POST
def search(request: HttpRequest, kind: str, pk: int) -> JsonResponse:
    target = priors.target_for(request.user, kind, pk)
    try:
        data = _body(request)
        node = priors.node_for_target(target, data.get("node"))
        query = priors.clean_query(data)
        found = priors.search(node, query, user=request.user)
    except PortalError as exc:
        return _refused(exc)
    return JsonResponse({"node": node.ae_title, "query": query.describe(), "studies": [f.as_dict() for f in found]})


@login_required
@require_POST
def retrieve(request: HttpRequest, kind: str, pk: int) -> JsonResponse:
    target = priors.target_for(request.user, kind, pk)
    try:
        data = _body(request)
        node = priors.node_for_target(target, data.get("node"))
        descriptions = data.get("descriptions") if isinstance(data.get("descriptions"), dict) else {}
        rows = priors.start_retrievals(target, node, data.get("study_uids"), by=request.user, descriptions=descriptions)
    except PortalError as exc:
        return _refused(exc)
    return JsonResponse({"retrievals": [priors.retrieval_as_dict(row) for row in rows]}, status=202)


@login_required
@require_safe
def retrievals(request: HttpRequest, kind: str, pk: int) -> JsonResponse:
    target = priors.target_for(request.user, kind, pk)
    rows = priors.retrievals_for(target)
    return JsonResponse({"retrievals": [priors.retrieval_as_dict(row) for row in rows]})


@login_required
@require_POST
def send_again(request: HttpRequest, pk: int) -> HttpResponse:
    send = ResultSend.objects.filter(pk=pk).first()
    if send is None or ":" not in send.source:
        raise Http404("No such page.")
    kind, _, target_pk = send.source.partition(":")
    priors.target_for(request.user, kind, target_pk)  # who may pull priors for it may send its results
    sending.send_again(send)
    messages.success(request, f"{send.label}: sending again to {send.node.ae_title}.")
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "/"
    return redirect(back)
