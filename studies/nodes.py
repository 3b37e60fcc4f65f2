"""DICOM nodes: the remote application entities (PACS, modalities) allowed to send studies over
DIMSE, who manages them, and which association is whose.

A node is an AE title at a host, filed under a practice and an owner (a member of that practice,
whose uploads the node's studies count as). The receiver (``studies.dimse``) asks ``sender_for``
about each association and records a refusal with ``record_rejection``; ``manage.py
add_dicom_node`` and the nodes page add and change nodes through ``add_node`` and the model's
fields, with the same checks, so both answer the same refusals.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.practices import default_practice, managed_practices
from teleconsult.errors import PortalError

from .models import DicomNode, RejectedAssociation

# PS3.5 6.2: an AE title is at most 16 characters of the default repertoire, without backslash
# or control characters; leading and trailing spaces are not significant.
AE_TITLE_MAX = 16
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class NodeError(PortalError):
    """A DICOM node that cannot be added or changed as asked; the message names the problem."""

    code = "invalid_node"


def clean_ae_title(value: str) -> str:
    """The AE title, stripped; NodeError when it is empty, too long or holds a character an AE
    title may not (backslash, control characters, anything outside printable ASCII)."""
    title = (value or "").strip(" ")
    if not title:
        raise NodeError("An AE title is needed (1 to 16 characters, e.g. CT_SCANNER_1).")
    if len(title) > AE_TITLE_MAX:
        raise NodeError(f"AE title {title[:40]!r} is {len(title)} characters long; the limit is {AE_TITLE_MAX}.")
    if "\\" in title:
        raise NodeError("An AE title may not contain a backslash (\\).")
    bad = [char for char in title if not (" " <= char <= "~")]
    if bad:
        raise NodeError(
            f"AE title {title!r} contains {bad[0]!r}: only printable ASCII letters, digits, spaces and "
            "punctuation are allowed, no control characters."
        )
    return title


def clean_host(value: str) -> str:
    """An IP address (normalised) or a host name; NodeError otherwise."""
    host = (value or "").strip()
    if not host:
        raise NodeError("A host is needed: the IP address or host name the node connects from.")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.rstrip(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
        raise NodeError(f"Host {host[:60]!r} is neither an IP address nor a valid host name.")
    return name.lower()


def clean_port(value) -> int:
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise NodeError(f"Port must be a number from 1 to 65535, not {str(value)[:20]!r}.") from None
    if not 1 <= port <= 65535:
        raise NodeError(f"Port must be from 1 to 65535, not {port}.")
    return port


def _check_owner(owner, practice: Organization) -> None:
    if owner is None or not owner.is_active:
        raise NodeError("The owner must be an active account.")
    if not Membership.objects.filter(user=owner, practice=practice).exists():
        raise NodeError(
            f"{owner.email} is not a member of practice {practice.name!r}: the node's studies are filed "
            "under an account of that practice. Admit them first or choose a member."
        )
    if not (owner.is_physician or owner.is_specialist):
        raise NodeError(f"{owner.email} is not a physician or specialist, so cannot own uploaded studies.")


def add_node(*, ae_title: str, host: str, port, owner, practice: Organization | None = None, by=None) -> DicomNode:
    """Register a node after every check; ``practice`` defaults to the owner's default practice."""
    ae_title, host, port = clean_ae_title(ae_title), clean_host(host), clean_port(port)
    if practice is None:
        practice = default_practice(owner)
        if practice is None:
            raise NodeError(f"{owner.email} belongs to no practice: name the practice, or admit them to one first.")
    _check_owner(owner, practice)
    try:
        with transaction.atomic():
            return DicomNode.objects.create(
                ae_title=ae_title, host=host, port=port, practice=practice, owner=owner, created_by=by
            )
    except IntegrityError:
        raise NodeError(f"A node {ae_title} at {host} is already registered.") from None


def set_enabled(node: DicomNode, enabled: bool) -> None:
    node.enabled = enabled
    node.save(update_fields=["enabled"])


def set_calling(node: DicomNode, *, send_results: bool, retrieve_with: str) -> None:
    """How the portal calls the node: send signed results back to it, and pull priors by C-MOVE or
    C-GET. (A DICOMweb URL, which makes the portal fetch from an address, is set by an operator
    only: ``set_dicom_node``.)"""
    if retrieve_with not in DicomNode.Retrieve.values:
        raise NodeError(f"Pull priors with one of: {', '.join(DicomNode.Retrieve.values)}.")
    node.send_results, node.retrieve_with = send_results, retrieve_with
    node.save(update_fields=["send_results", "retrieve_with"])


def nodes_for(user):
    """The nodes ``user`` manages: every one for administrators, their practices' for practice admins."""
    if user.is_admin:
        return DicomNode.objects.select_related("practice", "owner")
    return DicomNode.objects.filter(practice__in=managed_practices(user)).select_related("practice", "owner")


def may_manage_nodes(user) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_admin or managed_practices(user).exists()))


def get_node_to_manage(user, pk) -> DicomNode:
    """The node ``pk`` when ``user`` manages it; Http404 otherwise (existence does not leak)."""
    try:
        return nodes_for(user).get(pk=int(pk))
    except (DicomNode.DoesNotExist, ValueError, TypeError):
        raise Http404("No such DICOM node.") from None


def rejections_for(user):
    """Rejected associations ``user`` may see: all for administrators; those naming one of their
    practices' nodes for practice admins (an unknown AE title belongs to no practice)."""
    rows = RejectedAssociation.objects.select_related("node", "practice")
    if user.is_admin:
        return rows
    return rows.filter(practice__in=managed_practices(user))


# -- the receiver's questions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether an association is accepted: the node when it is, else the reason it is not."""

    node: DicomNode | None
    reason: str = ""


def _addresses(host: str) -> set[str]:
    """Every address ``host`` stands for (itself when it is an address); empty when it does not resolve."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        return {str(ipaddress.ip_address(info[4][0].split("%")[0])) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError, ValueError):
        return set()


def _normalised(address: str) -> str:
    """An IPv4 address mapped into IPv6 (``::ffff:10.0.0.5``) as the IPv4 address it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def sender_for(calling_ae: str, address: str) -> Verdict:
    """The enabled node an association from ``calling_ae`` at ``address`` comes from, or the reason
    it is refused: an unknown AE title, a known one from another address, a disabled node, or an
    owner no longer able to file studies under the node's practice."""
    title = (calling_ae or "").strip(" ")
    address = _normalised(address)
    candidates = list(DicomNode.objects.filter(ae_title=title).select_related("owner", "practice"))
    if not candidates:
        return Verdict(None, RejectedAssociation.Reason.UNKNOWN_AE)
    matching = [node for node in candidates if address in _addresses(node.host)]
    if not matching:
        return Verdict(candidates[0] if len(candidates) == 1 else None, RejectedAssociation.Reason.WRONG_ADDRESS)
    node = next((node for node in matching if node.enabled), None)
    if node is None:
        return Verdict(matching[0], RejectedAssociation.Reason.DISABLED)
    owner = node.owner
    if not (owner.is_active and Membership.objects.filter(user=owner, practice=node.practice_id).exists()):
        return Verdict(node, RejectedAssociation.Reason.OWNER_UNAVAILABLE)
    return Verdict(node)


def record_rejection(*, calling_ae: str, called_ae: str, address: str, verdict: Verdict) -> None:
    """Count a refused association on its (AE title, address, reason) row, made on first sight."""
    node = verdict.node
    now = timezone.now()
    key = {"calling_ae": (calling_ae or "").strip(" ")[:64], "address": _normalised(address), "reason": verdict.reason}
    changes = {"count": F("count") + 1, "last_at": now, "called_ae": (called_ae or "").strip(" ")[:64]}
    if RejectedAssociation.objects.filter(**key).update(**changes, node=node, practice_id=node and node.practice_id):
        return
    try:
        with transaction.atomic():
            RejectedAssociation.objects.create(
                **key,
                called_ae=changes["called_ae"],
                node=node,
                practice_id=node and node.practice_id,
                first_at=now,
                last_at=now,
            )
    except IntegrityError:
        # Another association made the row first.
        RejectedAssociation.objects.filter(**key).update(**changes)


def practice_named(name: str) -> Organization:
    """The practice called ``name`` (or numbered ``name``); NodeError when none or several match."""
    query = Q(name__iexact=name.strip())
    if name.strip().isdigit():
        query |= Q(pk=int(name.strip()))
    found = list(Organization.objects.filter(query)[:2])
    if not found:
        raise NodeError(f"No practice named {name!r}.")
    if len(found) > 1:
        raise NodeError(f"Several practices are named {name!r}: give the practice's number instead.")
    return found[0]


def owner_in(email: str, practice: Organization):
    """The member of ``practice`` with ``email``. The refusal is the same whether the address has no
    account or belongs to someone outside the practice: a practice admin learns nothing of
    accounts beyond their practice."""
    found = Membership.objects.filter(practice=practice, user__email__iexact=(email or "").strip()).first()
    if found is None:
        raise NodeError(
            f"{(email or '').strip()[:254] or 'That address'} is not a member of practice {practice.name!r}: the "
            "node's studies are filed under an account of that practice."
        )
    return found.user
