"""Priors from a node that is a DICOMweb server: QIDO-RS to search, WADO-RS to retrieve
(dicomweb-client), with the same errors and progress as the DIMSE ones (``studies.dimse.client``)."""

from __future__ import annotations

import os
from collections.abc import Callable

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from .dimse.client import MAX_MATCHES, RETURN_KEYS, NodeUnreachableError, OperationFailedError, Progress

TIMEOUT = 60


def _client(node) -> DICOMwebClient:
    if not node.dicomweb_url:
        raise OperationFailedError(f"The DICOMweb node {node.ae_title} has no URL set.", node=node.pk)
    session = requests.Session()
    session.request = _with_timeout(session.request)
    return DICOMwebClient(url=node.dicomweb_url.rstrip("/"), session=session)


def _with_timeout(request):
    def call(method, url, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return request(method, url, **kwargs)

    return call


def _call(node, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except requests.ConnectionError as exc:
        raise NodeUnreachableError(
            f"The DICOMweb node {node.ae_title} at {node.dicomweb_url} cannot be reached ({type(exc).__name__}).",
            node=node.pk,
        ) from None
    except requests.Timeout:
        raise NodeUnreachableError(f"The DICOMweb node {node.ae_title} did not answer in {TIMEOUT} s.") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise OperationFailedError(f"{what} at {node.ae_title} failed with HTTP {status}.", node=node.pk) from None


def search(node, query) -> list[Dataset]:
    from .priors import _dicom_date_range, _name_pattern

    filters = {}
    if query.patient_id:
        filters["PatientID"] = query.patient_id
    if query.name:
        filters["PatientName"] = _name_pattern(query.name)
    if query.date_from or query.date_to:
        filters["StudyDate"] = _dicom_date_range(query)
    if query.modality:
        filters["ModalitiesInStudy"] = query.modality
    found = _call(
        node,
        "QIDO-RS",
        _client(node).search_for_studies,
        search_filters=filters,
        fields=list(RETURN_KEYS),
        limit=MAX_MATCHES,
        get_remaining=False,
    )
    return [Dataset.from_json(item) for item in found or []]


def retrieve(node, study_uid: str, *, on_progress: Callable, on_instance: Callable[[str], int]) -> Progress:
    """WADO-RS the study instance by instance; each is filed by ``on_instance(path)``."""
    from .priors import write_temporary

    web = _client(node)
    instances = _call(node, "QIDO-RS", web.search_for_instances, study_instance_uid=study_uid, get_remaining=True)
    total, completed, failed = len(instances or []), 0, 0
    on_progress(Progress(total, 0, 0, 0))
    for item in instances or []:
        ds = Dataset.from_json(item)
        data = _call(
            node,
            "WADO-RS",
            web.retrieve_instance,
            study_instance_uid=study_uid,
            series_instance_uid=ds.SeriesInstanceUID,
            sop_instance_uid=ds.SOPInstanceUID,
            media_types=(("application/dicom", "*"),),
        )
        path = write_temporary(_as_file(data))
        try:
            status = on_instance(path)
        finally:
            if os.path.exists(path):
                os.unlink(path)
        if status == 0 or 0xB000 <= status <= 0xBFFF:
            completed += 1
        else:
            failed += 1
        on_progress(Progress(total - completed - failed, completed, failed, 0))
    return Progress(0, completed, failed, 0)


def _as_file(ds: Dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
