"""The portal as a DIMSE service user: C-FIND, C-MOVE and C-GET against a registered node (priors),
and C-STORE to it (results sent back). Built on pynetdicom.

Each call opens its own association as ``TELECONSULT_AE_TITLE``, calls the node by its AE title at
its host and port, and releases it when done. What goes wrong is a ``DimseError`` naming the
problem (the node cannot be reached, it rejected the association or the SOP class, a C-FIND or
C-MOVE failed with a status), which every interface answers like any other ``PortalError``.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from teleconsult.errors import PortalError

from .contexts import readable_transfer_syntaxes

logger = logging.getLogger("studies.dimse")

# Seconds to wait for the connection, the association's answer, and each DIMSE answer. A C-MOVE
# answers once per sub-operation, so this bounds the wait for one instance, not the whole study.
CONNECT_TIMEOUT = 10
ASSOCIATION_TIMEOUT = 30
DIMSE_TIMEOUT = 120
# A C-FIND answer is cut off here: a search that matches more should be narrowed.
MAX_MATCHES = 200
# Pending statuses of C-FIND, C-MOVE and C-GET (PS3.4 C.4).
PENDING = (0xFF00, 0xFF01)
WARNING = 0xB000
# Presentation contexts of one association are at most 128: C-GET's own and this many storage ones.
GET_STORAGE_CONTEXTS = 120

# The keys a study-level C-FIND asks for, answered as the search's rows.
RETURN_KEYS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)


class DimseError(PortalError):
    """A DIMSE operation with a node that did not work; the message says which and why."""

    status = 502
    code = "dimse_failed"


class NodeUnreachableError(DimseError):
    code = "node_unreachable"


class AssociationRejectedError(DimseError):
    code = "association_rejected"


class OperationFailedError(DimseError):
    code = "operation_failed"


@dataclass(frozen=True)
class Progress:
    """Sub-operation counts from a C-MOVE or C-GET answer (None: the node did not say)."""

    remaining: int | None
    completed: int | None
    failed: int | None
    warning: int | None

    @classmethod
    def of(cls, status: Dataset) -> Progress:
        def count(keyword):
            value = status.get(keyword)
            return int(value) if value is not None and value != "" else None

        return cls(
            count("NumberOfRemainingSuboperations"),
            count("NumberOfCompletedSuboperations"),
            count("NumberOfFailedSuboperations"),
            count("NumberOfWarningSuboperations"),
        )


def _application_entity() -> AE:
    ae = AE(ae_title=settings.TELECONSULT_AE_TITLE)
    ae.acse_timeout = ASSOCIATION_TIMEOUT
    ae.dimse_timeout = DIMSE_TIMEOUT
    ae.network_timeout = DIMSE_TIMEOUT
    ae.connection_timeout = CONNECT_TIMEOUT
    return ae


def _check_reachable(node) -> None:
    """A TCP connection first, so that "cannot reach" and "refused us" are told apart clearly."""
    try:
        with socket.create_connection((node.host, node.port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NodeUnreachableError(
            f"The DICOM node {node.ae_title} at {node.host}:{node.port} cannot be reached ({reason}). "
            "Check that it is running and that the firewall lets the portal in.",
            node=node.pk,
        ) from None


@contextmanager
def association(node, contexts, *, roles=(), handlers=()) -> Iterator:
    """An established association with ``node`` for ``contexts`` ((abstract syntax, transfer
    syntaxes) pairs); released (or aborted on an error) when the block ends."""
    _check_reachable(node)
    ae = _application_entity()
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=list(roles), evt_handlers=list(handlers))
    if not assoc.is_established:
        if assoc.is_rejected:
            raise AssociationRejectedError(
                f"The DICOM node {node.ae_title} at {node.host}:{node.port} rejected the portal's association "
                f"(calling AE {settings.TELECONSULT_AE_TITLE}). The node must know the portal as a peer: "
                "ask its administrator to add this AE title and address.",
                node=node.pk,
            )
        raise NodeUnreachableError(
            f"The DICOM node {node.ae_title} at {node.host}:{node.port} did not answer the association request "
            "in time or closed the connection.",
            node=node.pk,
        )
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        assoc.release()


def _accepted(assoc, abstract: str, what: str, node) -> None:
    if not any(cx.abstract_syntax == abstract for cx in assoc.accepted_contexts):
        raise AssociationRejectedError(
            f"The DICOM node {node.ae_title} does not offer {what} to the portal (the presentation context was "
            "rejected).",
            node=node.pk,
        )


# What a failure status of the query/retrieve services means, where the node's fix is clear (PS3.4 C.4).
STATUS_MEANINGS = {
    0xA700: "the node is out of resources",
    0xA701: "the node is out of resources to count the matches",
    0xA702: "the node is out of resources for the sub-operations",
    0xA801: "the node does not know the portal's AE title as a move destination: add {ae} (the portal's "
    "address and DICOM port) to the node's modalities",
    0xA900: "the node says the query does not match the SOP class",
    0xC000: "the node could not process the request",
}


def _failed(node, operation: str, status: Dataset | None) -> OperationFailedError:
    if status is None or "Status" not in status:
        return OperationFailedError(
            f"{operation} to {node.ae_title} got no answer (the association was aborted or timed out).", node=node.pk
        )
    comment = str(status.get("ErrorComment", "") or "").strip()
    meaning = STATUS_MEANINGS.get(int(status.Status), "").format(ae=settings.TELECONSULT_AE_TITLE)
    why = "; ".join(part for part in (meaning, comment) if part)
    return OperationFailedError(
        f"{operation} to {node.ae_title} failed with status 0x{status.Status:04X}" + (f": {why}." if why else "."),
        node=node.pk,
        dimse_status=int(status.Status),
    )


def find_studies(node, query: Dataset) -> list[Dataset]:
    """A study-level C-FIND (Study Root) with ``query``'s keys; the matches (at most MAX_MATCHES)."""
    query.QueryRetrieveLevel = "STUDY"
    for keyword in RETURN_KEYS:
        if keyword not in query:
            setattr(query, keyword, "")
    model = StudyRootQueryRetrieveInformationModelFind
    matches = []
    with association(node, [(model, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]) as assoc:
        _accepted(assoc, model, "study searches (Study Root C-FIND)", node)
        responses = assoc.send_c_find(query, model)
        for status, identifier in responses:
            if status is None or "Status" not in status:
                raise _failed(node, "C-FIND", status)
            if status.Status in PENDING:
                if identifier is not None and len(matches) < MAX_MATCHES:
                    matches.append(identifier)
                continue
            if status.Status != 0x0000:
                raise _failed(node, "C-FIND", status)
    return matches


def move_study(node, study_uid: str, *, on_progress: Callable[[Progress], None]) -> Progress:
    """C-MOVE the study to the portal's own receiver (``TELECONSULT_AE_TITLE``); the final counts.

    The node opens an association to the receiver for the sub-operations: it must know the portal's
    AE title, host and port, and the receiver accepts it as the registered node it is."""
    model = StudyRootQueryRetrieveInformationModelMove
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    last = Progress(None, None, None, None)
    with association(node, [(model, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]) as assoc:
        _accepted(assoc, model, "retrieval to the portal (Study Root C-MOVE)", node)
        for status, _identifier in assoc.send_c_move(identifier, settings.TELECONSULT_AE_TITLE, model):
            if status is None or "Status" not in status:
                raise _failed(node, "C-MOVE", status)
            last = Progress.of(status)
            if status.Status in PENDING:
                on_progress(last)
                continue
            if status.Status not in (0x0000, WARNING):
                if last.completed or last.warning:
                    return last  # some came; the caller records the failures
                raise _failed(node, "C-MOVE", status)
    return last


def get_study(
    node, study_uid: str, *, on_progress: Callable[[Progress], None], on_instance: Callable[[str], int]
) -> Progress:
    """C-GET the study on this association: each instance arrives as a C-STORE the portal answers
    with ``on_instance(path)`` (a status); the final counts."""
    model = StudyRootQueryRetrieveInformationModelGet
    syntaxes = readable_transfer_syntaxes()
    storage = [cx.abstract_syntax for cx in StoragePresentationContexts[:GET_STORAGE_CONTEXTS]]
    contexts = [(model, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])] + [(uid, syntaxes) for uid in storage]
    roles = [build_role(uid, scp_role=True) for uid in storage]

    def on_store(event):
        path = tempfile.mkstemp(suffix=".dcm")[1]
        try:
            with open(path, "wb") as fp:
                fp.write(event.encoded_dataset())  # the PS3.10 file as received
            return on_instance(path)
        finally:
            if os.path.exists(path):
                os.unlink(path)

    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    last = Progress(None, None, None, None)
    with association(node, contexts, roles=roles, handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        _accepted(assoc, model, "retrieval on the association (Study Root C-GET)", node)
        for status, _identifier in assoc.send_c_get(identifier, model):
            if status is None or "Status" not in status:
                raise _failed(node, "C-GET", status)
            last = Progress.of(status)
            if status.Status in PENDING:
                on_progress(last)
                continue
            if status.Status not in (0x0000, WARNING):
                if last.completed or last.warning:
                    return last
                raise _failed(node, "C-GET", status)
    return last


def store_files(node, paths: list[str]) -> None:
    """C-STORE each file (a PS3.10 file) to ``node``; DimseError at the first that is not stored."""
    from pydicom import dcmread

    datasets = [dcmread(path) for path in paths]
    contexts = {}
    for ds in datasets:
        syntax = ds.file_meta.TransferSyntaxUID
        contexts.setdefault(ds.SOPClassUID, {syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian}).add(syntax)
    with association(node, [(uid, sorted(syntaxes)) for uid, syntaxes in contexts.items()]) as assoc:
        for ds in datasets:
            _accepted(assoc, ds.SOPClassUID, f"storage of {ds.SOPClassUID.name}", node)
            status = assoc.send_c_store(ds)
            if status is None or "Status" not in status:
                raise _failed(node, "C-STORE", status)
            if status.Status not in (0x0000, WARNING) and not (0xB000 <= status.Status <= 0xBFFF):
                raise _failed(node, "C-STORE", status)
