"""Results back: objects the portal files in a study (a signed report's PDF, a measurement SR) sent
with C-STORE to the node the study came from, when that node is set to "send results back".

Where a study came from is a ``NodeStudy`` row, written when the receiver files an instance a
node sent and when a prior is pulled from one. Each object is a ``ResultSend`` row and a Celery task
(``studies.tasks.send_result``), retried with exponential back-off and jitter; the row says
"Sending", "Failed, retrying" with the reason, "Failed" or "Sent to PACS", and ``send_again``
starts it over (the consult page's "Send again").
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from django.db import transaction
from django.utils import timezone

from teleconsult.errors import PortalError

from .dimse import client
from .models import DicomNode, Instance, NodeStudy, ResultSend

logger = logging.getLogger(__name__)


class SendFailedError(PortalError):
    """One try did not get the object to the node (the task tries again)."""

    status = 502
    code = "send_failed"


class NotFiledYetError(SendFailedError):
    code = "not_filed_yet"


def origin_node(study_uid: str) -> DicomNode | None:
    """The node ``study_uid`` last came from, when it is enabled and set to send results back."""
    row = (
        NodeStudy.objects.filter(study_instance_uid=study_uid, node__enabled=True, node__send_results=True)
        .select_related("node")
        .order_by("-last_at", "-pk")
        .first()
    )
    return row.node if row is not None else None


def queue_send(node: DicomNode, *, study_uid: str, sop_instance_uid: str, label: str, source: str) -> ResultSend:
    """Record the send (once per node and object) and queue it after commit."""
    send, created = ResultSend.objects.get_or_create(
        node=node,
        sop_instance_uid=sop_instance_uid,
        defaults={"study_instance_uid": study_uid, "label": label[:128], "source": source[:64]},
    )
    if created or send.status == ResultSend.Status.FAILED:
        _restart(send)
    return send


def send_again(send: ResultSend) -> ResultSend:
    """Start a send over (a failed one, or one that was sent and is wanted again)."""
    _restart(send)
    return send


def _restart(send: ResultSend) -> None:
    from . import tasks

    send.attempts = 0
    send.mark(ResultSend.Status.PENDING)
    transaction.on_commit(lambda: tasks.send_result.delay(send_pk=send.pk))


def sends_for(source: str):
    return ResultSend.objects.filter(source=source).select_related("node")


def attempt(send_pk: int, *, number: int, last: bool) -> str:
    """One try of a send; its status. SendFailedError (recorded on the row) when the task should try
    again; on the last try the row is marked failed and nothing is raised."""
    send = ResultSend.objects.select_related("node").filter(pk=send_pk).first()
    if send is None or send.status == ResultSend.Status.SENT:
        return send.status if send is not None else ""
    send.attempts = number
    try:
        _store(send)
    except PortalError as exc:
        status = ResultSend.Status.FAILED if last else ResultSend.Status.RETRYING
        reason = exc.message if number == 1 or last else f"{exc.message} (try {number})"
        send.mark(status, reason)
        logger.warning("Sending %s to %s, try %s: %s", send.sop_instance_uid, send.node, number, exc.message)
        if last:
            return send.status
        raise SendFailedError(exc.message) from None
    send.mark(ResultSend.Status.SENT)
    return send.status


def _store(send: ResultSend) -> None:
    node = send.node
    if not node.enabled:
        raise SendFailedError(f"The DICOM node {node.ae_title} is disabled.")
    if node.kind != DicomNode.Kind.DIMSE:
        raise SendFailedError(f"{node.ae_title} is a DICOMweb node; results are sent back over DIMSE only.")
    instance = Instance.objects.filter(sop_instance_uid=send.sop_instance_uid).first()
    if instance is None or not instance.file:
        raise NotFiledYetError(f"{send.label} is not filed in the study yet.")
    # A local copy: the file may be in any Django storage.
    with instance.file.open("rb") as source, tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as copy:
        shutil.copyfileobj(source, copy)
    try:
        client.store_files(node, [copy.name])
    finally:
        os.unlink(copy.name)
    logger.info("Sent %s to %s at %s", send.sop_instance_uid, node, timezone.now())
