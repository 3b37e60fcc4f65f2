"""The DICOM nodes page: administrators and practice admins list the nodes that may send their
practices studies over DIMSE, add, enable, disable and delete them (the checks of
``studies.nodes``, as ``add_dicom_node`` makes them), and see recent rejected associations.

Another practice's node is a 404, whatever the action. A refused change is flashed on the page.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.practices import managed_practices
from teleconsult.errors import on_refusal

from .. import nodes

RECENT_REJECTIONS = 50


class NodeForm(forms.Form):
    ae_title = forms.CharField(label="AE title", max_length=64, help_text="Up to 16 characters, e.g. CT_SCANNER_1")
    host = forms.CharField(label="Host", max_length=253, help_text="The IP address or host name it connects from")
    port = forms.CharField(label="Port", max_length=10, help_text="Its own DIMSE port, e.g. 104 or 11112")
    owner = forms.CharField(label="Owner's email", max_length=254, help_text="A member of the practice")
    practice = forms.TypedChoiceField(label="Practice", coerce=int)

    def __init__(self, *args, practices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["practice"].choices = [(practice.pk, practice.name) for practice in practices]


def _managed(user) -> list:
    if not nodes.may_manage_nodes(user):
        raise Http404("No such page.")
    return list(managed_practices(user).distinct().order_by("name", "pk"))


@login_required
@require_safe
def node_list(request: HttpRequest) -> HttpResponse:
    practices = _managed(request.user)
    context = {
        "nodes": list(nodes.nodes_for(request.user)),
        "rejections": list(nodes.rejections_for(request.user)[:RECENT_REJECTIONS]),
        "form": NodeForm(practices=practices),
        "ae_title": settings.TELECONSULT_AE_TITLE,
        "dimse_port": settings.TELECONSULT_DIMSE_PORT,
    }
    return render(request, "studies/nodes.html", context)


@login_required
@require_POST
def add_node(request: HttpRequest) -> HttpResponse:
    practices = _managed(request.user)
    on_refusal(request, reverse("studies:nodes"))
    form = NodeForm(request.POST, practices=practices)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(
                request, f"{form.fields[field].label if field in form.fields else field}: {' '.join(errors)}"
            )
        return redirect("studies:nodes")
    data = form.cleaned_data
    practice = next(practice for practice in practices if practice.pk == data["practice"])
    node = nodes.add_node(
        ae_title=data["ae_title"],
        host=data["host"],
        port=data["port"],
        owner=nodes.owner_in(data["owner"], practice),
        practice=practice,
        by=request.user,
    )
    messages.success(request, f"DICOM node {node.ae_title} at {node.host}:{node.port} added.")
    return redirect("studies:nodes")


@login_required
@require_POST
def change_node(request: HttpRequest, pk: int) -> HttpResponse:
    node = nodes.get_node_to_manage(request.user, pk)
    enabled = request.POST.get("enabled")
    if enabled not in ("0", "1"):
        messages.error(request, "Choose to enable or disable the node.")
        return redirect("studies:nodes")
    nodes.set_enabled(node, enabled == "1")
    messages.success(request, f"DICOM node {node.ae_title} {'enabled' if node.enabled else 'disabled'}.")
    return redirect("studies:nodes")


@login_required
@require_POST
def node_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Send signed results back to the node, and how priors are pulled from it."""
    node = nodes.get_node_to_manage(request.user, pk)
    on_refusal(request, reverse("studies:nodes"))
    nodes.set_calling(
        node, send_results=request.POST.get("send_results") == "1", retrieve_with=request.POST.get("retrieve_with", "")
    )
    sent = "sent back to it" if node.send_results else "not sent back"
    messages.success(
        request, f"DICOM node {node.ae_title}: signed results {sent}, priors pulled by C-{node.retrieve_with.upper()}."
    )
    return redirect("studies:nodes")


@login_required
@require_POST
def delete_node(request: HttpRequest, pk: int) -> HttpResponse:
    node = nodes.get_node_to_manage(request.user, pk)
    label = str(node)
    node.delete()
    messages.success(request, f"DICOM node {label} deleted: associations from it are now rejected.")
    return redirect("studies:nodes")
