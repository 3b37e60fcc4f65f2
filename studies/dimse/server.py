"""The receiver: a pynetdicom application entity answering C-ECHO, C-STORE and C-FIND for known senders.

Each association runs in a thread of its own (pynetdicom's threaded server); every handler below
runs in that thread, so each one hands its database connection back when it is done (Django's
connections are per thread, and a thread of a finished association never comes back for it).

- Association requested: ``studies.nodes.sender_for`` decides. An unknown calling AE title, a
  known one from another address, a disabled node or an owner who has left the practice is
  rejected (A-ASSOCIATE-RJ, permanent, "calling AE title not recognised"), logged and counted in
  ``RejectedAssociation`` for the nodes page. A database that does not answer is a transient
  rejection: the sender tries again later.
- C-ECHO: success (the association was already checked).
- C-STORE: pynetdicom writes the data set to a temporary file as it arrives (memory stays at a
  PDU whatever the size of the instance), and ``studies.ingest.dimse.store_received`` ingests it
  as the node owner's upload to the node's practice; the status says what happened.
- C-FIND (Study Root, Patient Root; STUDY level): ``find.answer`` searches the node's practice's
  studies with the portal's QIDO-RS matching, one pending answer per match.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import tempfile
import threading
import weakref
from dataclasses import dataclass, field

from django.db import DatabaseError, close_old_connections, connections
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, _config, evt

from .. import nodes, priors, storage
from ..ingest import dimse as ingest_dimse
from . import find
from .contexts import add_supported_contexts

logger = logging.getLogger("studies.dimse")

# The largest PDU the receiver asks senders for: larger PDUs mean fewer round trips through
# pynetdicom's Python per instance, and a PDU is held in memory whole.
MAX_PDU_SIZE = 256 * 1024
# A-ASSOCIATE-RJ (result, source, diagnostic): permanent, by the service user, calling AE title
# not recognised; transient, by the service user, no reason given.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_TRY_LATER = (0x02, 0x01, 0x01)


@dataclass
class Sender:
    """The node an accepted association comes from, and what it has sent so far."""

    node_pk: int
    ae_title: str
    address: str
    owner: object
    practice: object
    counts: dict[str, int] = field(default_factory=dict)
    # Studies being pulled from this node (C-MOVE) when the association began: StudyInstanceUID ->
    # (uploader, practice) they are filed under instead of the node's owner and practice.
    retrievals: dict[str, tuple] = field(default_factory=dict)
    # Studies this association brought, remembered as coming from the node (results go back there).
    studies: set[str] = field(default_factory=set)


def ssl_context(cert: str, key: str, ca: str = "") -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) for ``cert``/``key``; with ``ca``, senders must show a
    client certificate issued by it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    if ca:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _done_with_database() -> None:
    """Hand this thread's connection back (to the pool, or closed)."""
    connections.close_all()


class Receiver:
    """The SCP: ``start()`` listens (and returns), ``stop()`` stops; ``serve()`` does both around a
    wait for SIGTERM or SIGINT."""

    def __init__(
        self,
        *,
        ae_title: str,
        bind: str,
        port: int,
        max_associations: int = 32,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ae_title = ae_title
        self.address = (bind, port)
        self.max_associations = max_associations
        self.tls = tls
        self._senders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._server = None
        self._received_dir: storage.RequestDir | None = None

    # -- running ----------------------------------------------------------------------------------

    def application_entity(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_associations = self.max_associations
        ae.maximum_pdu_size = MAX_PDU_SIZE
        add_supported_contexts(ae)
        return ae

    def handlers(self) -> list:
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_RELEASED, self.on_ended),
            (evt.EVT_ABORTED, self.on_ended),
            (evt.EVT_CONN_CLOSE, self.on_connection_closed),
        ]

    def start(self):
        """Listen; OSError when the address cannot be bound (the port is taken)."""
        # Received data sets are written to temporary files as they arrive, in a directory of this
        # process's own beside the staging directory: stored by a rename, and removed with anything
        # an aborted transfer left there when the process ends (or, if it is killed, by the next
        # start of a receiver or a daphne).
        _config.STORE_RECV_CHUNKED_DATASET = True
        try:
            storage.remove_abandoned_request_dirs()  # this receiver's earlier life's, if it was killed
        except OSError:
            logger.exception("DIMSE: request directories of ended processes could not be removed")
        self._received_dir = storage.request_dir()
        tempfile.tempdir = self._received_dir.__enter__()
        try:
            ae = self.application_entity()
            self._server = ae.start_server(
                self.address, block=False, evt_handlers=self.handlers(), ssl_context=self.tls
            )
        except BaseException:
            self._remove_received_dir()
            raise
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._remove_received_dir()

    def _remove_received_dir(self) -> None:
        if self._received_dir is not None:
            tempfile.tempdir = None
            self._received_dir.cleanup()
            self._received_dir = None

    def serve(self, ready=None) -> None:
        """Listen until SIGTERM or SIGINT; ``ready()`` is called once listening."""
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: stopping.set())
        self.start()
        try:
            if ready is not None:
                ready()
            stopping.wait()
        finally:
            self.stop()

    # -- handlers ---------------------------------------------------------------------------------

    def on_requested(self, event) -> None:
        assoc = event.assoc
        request = assoc.requestor.primitive
        calling, called = str(request.calling_ae_title), str(request.called_ae_title)
        address = str(assoc.requestor.address)
        close_old_connections()
        try:
            verdict = nodes.sender_for(calling, address)
            if verdict.reason:
                nodes.record_rejection(calling_ae=calling, called_ae=called, address=address, verdict=verdict)
            else:
                retrievals = priors.filing_for(verdict.node.pk)
        except DatabaseError:
            logger.exception("DIMSE: association from %r at %s refused for now: database unavailable", calling, address)
            self._reject(assoc, REJECT_TRY_LATER)
            return
        finally:
            _done_with_database()
        if verdict.reason:
            logger.warning(
                "DIMSE: association from %r at %s to %r rejected: %s", calling, address, called, verdict.reason
            )
            self._reject(assoc, REJECT_CALLING_AE)
            return
        node = verdict.node
        with self._lock:
            self._senders[assoc] = Sender(
                node.pk, node.ae_title, address, node.owner, node.practice, retrievals=retrievals
            )
        logger.info("DIMSE: association from %s at %s accepted (node %s)", calling.strip(), address, node.pk)

    @staticmethod
    def _reject(assoc, reason: tuple[int, int, int]) -> None:
        # What pynetdicom does itself when it rejects an association (acse._negotiate_as_acceptor).
        assoc.acse.send_reject(*reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def on_echo(self, event) -> int:
        return ingest_dimse.SUCCESS

    def on_store(self, event):
        with self._lock:
            sender = self._senders.get(event.assoc)
        request = event.request
        if sender is None:
            # Not reachable: associations are accepted only with a sender.
            return ingest_dimse.Answer(0xA9FF, "association not accepted").as_dataset()
        sop_instance = str(request.AffectedSOPInstanceUID or "")
        filename = f"{sender.ae_title}/{sop_instance or 'instance'}"
        close_old_connections()
        try:
            user, practice = self._filed_as(sender, event.dataset_path)
            answer = ingest_dimse.store_received(
                os.fspath(event.dataset_path), filename=filename, user=user, practice=practice
            )
            study_uid = answer.result.study_instance_uid if answer.result else ""
            if answer.status in (ingest_dimse.SUCCESS, ingest_dimse.COERCED) and study_uid not in sender.studies:
                priors.note_origin(sender.node_pk, study_uid)
                sender.studies.add(study_uid)
        except DatabaseError:
            logger.exception("DIMSE: %s from %s not stored: database unavailable", sop_instance, sender.ae_title)
            answer = ingest_dimse.Answer(ingest_dimse.UNAVAILABLE, "database unavailable: send it again later")
        finally:
            _done_with_database()
        outcome = answer.result.code or answer.result.status if answer.result else "unavailable"
        sender.counts[outcome] = sender.counts.get(outcome, 0) + 1
        if answer.status not in (ingest_dimse.SUCCESS, ingest_dimse.COERCED):
            logger.warning(
                "DIMSE: %s from %s refused (0x%04X): %s", sop_instance, sender.ae_title, answer.status, answer.comment
            )
        return answer.as_dataset()

    @staticmethod
    def _filed_as(sender: Sender, path) -> tuple:
        """Whose upload to which practice: a prior being pulled is filed for whoever asked for it,
        whatever the node's own owner and practice; anything else as the node's."""
        if sender.retrievals:
            try:
                header = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
            except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, AttributeError):
                return sender.owner, sender.practice  # ingest refuses it with the reason
            found = sender.retrievals.get(str(header.get("StudyInstanceUID", "") or ""))
            if found is not None:
                return found
        return sender.owner, sender.practice

    def on_find(self, event):
        with self._lock:
            sender = self._senders.get(event.assoc)
        if sender is None:  # not reachable: associations are accepted only with a sender
            return iter([(find.status_dataset(0xA900, "association not accepted"), None)])
        return find.answer(event, practice_id=sender.practice.pk, calling=sender.ae_title)

    def on_ended(self, event) -> None:
        _remove_partial_data_set(event.assoc)
        with self._lock:
            sender = self._senders.pop(event.assoc, None)
        if sender is not None:
            how = "released" if event.event is evt.EVT_RELEASED else "aborted"
            summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(sender.counts.items())) or "nothing"
            logger.info("DIMSE: association from %s at %s %s: %s", sender.ae_title, sender.address, how, summary)

    def on_connection_closed(self, event) -> None:
        _remove_partial_data_set(event.assoc)


def _remove_partial_data_set(assoc) -> None:
    """Remove the temporary file of a data set whose transfer was cut short by an abort or the
    connection's end (pynetdicom removes only those it handed to ``on_store``)."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is not None:
        logger.info("DIMSE: removing the data set cut short at %s", partial.name)
        try:
            partial.close()
            os.unlink(partial.name)
        except OSError:
            pass
