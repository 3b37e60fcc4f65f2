"""A small DICOM archive on loopback for tests: a pynetdicom application entity in this process
that answers C-ECHO, study-level C-FIND, C-GET, C-MOVE (to destinations it is told of) and C-STORE
over a real association. The portal's client talks to it as to a hospital PACS; the integration
tests use Orthanc instead (tests/integration/test_priors_orthanc.py)."""

from __future__ import annotations

import fnmatch
import threading

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, StoragePresentationContexts, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.servers import free_port

STUDY_KEYS = ("StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "PatientName", "PatientID")


class Archive:
    """``Archive(ae_title).start()``; ``datasets`` it holds, ``received`` what was C-STOREd to it.

    ``find_status``: answer every C-FIND with this failure status instead; ``accept_from``: the
    calling AE titles accepted (others rejected); ``destinations``: move destination AE -> (host, port).
    """

    def __init__(self, ae_title: str = "HOSPITALPACS") -> None:
        self.ae_title = ae_title
        self.port = free_port()
        self.datasets: list[Dataset] = []
        self.received: list[Dataset] = []
        self.find_status: int | None = None
        self.accept_from: set[str] | None = None
        self.destinations: dict[str, tuple[str, int]] = {}
        self._server = None
        self._lock = threading.Lock()

    def start(self) -> Archive:
        ae = AE(ae_title=self.ae_title)
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        for model in (
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
            StudyRootQueryRetrieveInformationModelGet,
            Verification,
        ):
            ae.add_supported_context(model, syntaxes)
        for context in AllStoragePresentationContexts:
            # Storage SCP for C-STORE and C-MOVE; the SCU role on a C-GET requestor's association.
            ae.add_supported_context(context.abstract_syntax, syntaxes, scu_role=True, scp_role=True)
        # As a C-GET SCP it sends on the requestor's association; for C-MOVE it opens its own.
        for context in StoragePresentationContexts:
            ae.add_requested_context(context.abstract_syntax, syntaxes)
        handlers = [
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_C_GET, self._get),
            (evt.EVT_C_MOVE, self._move),
            (evt.EVT_C_STORE, self._store),
        ]
        if self.accept_from is not None:
            ae.require_calling_aet = sorted(self.accept_from)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- what it holds ------------------------------------------------------------------------

    def studies(self) -> dict[str, list[Dataset]]:
        found: dict[str, list[Dataset]] = {}
        for ds in self.datasets:
            found.setdefault(ds.StudyInstanceUID, []).append(ds)
        return found

    @staticmethod
    def _matches(query: Dataset, ds: Dataset) -> bool:
        for keyword in ("PatientID", "StudyInstanceUID", "AccessionNumber"):
            wanted = str(query.get(keyword, "") or "")
            if wanted and wanted != str(ds.get(keyword, "")):
                return False
        name = str(query.get("PatientName", "") or "")
        if name and not fnmatch.fnmatch(str(ds.PatientName).upper(), name.upper()):
            return False
        modality = str(query.get("ModalitiesInStudy", "") or "")
        if modality and modality != ds.Modality:
            return False
        dates = str(query.get("StudyDate", "") or "")
        if dates:
            start, _, end = dates.partition("-") if "-" in dates else (dates, "", dates)
            if (start and ds.StudyDate < start) or (end and ds.StudyDate > end):
                return False
        return True

    # -- handlers -----------------------------------------------------------------------------

    def _find(self, event):
        if self.find_status is not None:
            yield self.find_status, None
            return
        query = event.identifier
        for uid, instances in self.studies().items():
            first = instances[0]
            if not self._matches(query, first):
                continue
            answer = Dataset()
            answer.QueryRetrieveLevel = "STUDY"
            answer.StudyInstanceUID = uid
            for keyword in STUDY_KEYS:
                setattr(answer, keyword, first.get(keyword, ""))
            answer.ModalitiesInStudy = first.Modality
            answer.NumberOfStudyRelatedInstances = len(instances)
            yield 0xFF00, answer

    def _wanted(self, event) -> list[Dataset]:
        uid = str(event.identifier.get("StudyInstanceUID", ""))
        return self.studies().get(uid, [])

    def _get(self, event):
        wanted = self._wanted(event)
        yield len(wanted)
        for ds in wanted:
            yield 0xFF00, ds

    def _move(self, event):
        name = event.move_destination
        destination = self.destinations.get((name.decode() if isinstance(name, bytes) else str(name)).strip())
        if destination is None:
            yield None, None
            return
        wanted = self._wanted(event)
        yield destination
        yield len(wanted)
        for ds in wanted:
            yield 0xFF00, ds

    def _store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self._lock:
            self.received.append(ds)
        return 0x0000
