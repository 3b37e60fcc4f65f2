"""Shared pieces of the DICOMweb tests: synthetic files, an ingest shortcut and dicomweb-client
pointed at the Django test client through a requests adapter (its real HTTP code, no server)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import numpy as np
import requests
from dicomweb_client.api import DICOMwebClient
from django.test import Client
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid
from requests.structures import CaseInsensitiveDict
from rest_framework.authtoken.models import Token

from studies.ingest import ingest_file
from tests.studies.dicom_factory import base_dataset

BASE = "http://testserver/dicomweb"


def make_dataset(*, frames: int = 1, rows: int = 8, columns: int = 6, **attrs) -> Dataset:
    """A small CT image with fresh UIDs; keyword arguments set attributes (``StudyInstanceUID=...``)."""
    ds = base_dataset(
        CTImageStorage,
        media_storage=True,
        PatientID="PID-1",
        PatientName="Doe^Jane",
        PatientBirthDate="19800214",
        PatientSex="F",
        StudyDate="20240315",
        StudyTime="101500",
        StudyDescription="Head CT",
        AccessionNumber="ACC-1",
        StudyID="S1",
        ReferringPhysicianName="Ref^Doctor",
        InstitutionName="General Hospital",
        Modality="CT",
        SeriesNumber=1,
        SeriesDescription="Axial",
        InstanceNumber=1,
    )
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(frames * rows * columns, dtype=np.uint16) * 7 % 4096).reshape(frames, rows, columns)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def make_dicom(**attrs) -> bytes:
    return to_bytes(make_dataset(**attrs))


def store(user, data: bytes, name: str = "test.dcm"):
    result = ingest_file(io.BytesIO(data), filename=name, user=user)
    assert result.status == "stored", result
    return result


def store_dataset(user, **attrs) -> Dataset:
    ds = make_dataset(**attrs)
    store(user, to_bytes(ds))
    return ds


def with_fresh_uid(path: str) -> bytes:
    """A corpus file under a new SOP Instance UID (pixel data and transfer syntax untouched)."""
    ds = dcmread(path)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class DjangoTestAdapter(requests.adapters.BaseAdapter):
    """Sends requests' prepared requests through django.test.Client and turns the answer back."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        body = request.body or b""
        if not isinstance(body, bytes | str):
            body = b"".join(body)  # chunked upload: requests hands over a generator
        if isinstance(body, str):
            body = body.encode()
        skip = {"content-type", "content-length", "host", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.client.generic(
            request.method,
            path,
            data=body,
            content_type=request.headers.get("Content-Type", ""),
            headers=headers,
        )
        content = b"".join(answer.streaming_content) if answer.streaming else answer.content
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response._content = content
        response._content_consumed = True
        response.raw = io.BytesIO(content)
        response.url = request.url
        response.request = request
        response.reason = answer.reason_phrase
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def dicomweb_client_for(user) -> DICOMwebClient:
    session = requests.Session()
    session.mount("http://testserver", DjangoTestAdapter(Client()))
    if user is not None:
        session.headers["Authorization"] = f"Token {token_for(user)}"
    return DICOMwebClient(url=BASE, session=session)


def token_client(user) -> Client:
    """A Django test client sending the user's API token."""
    return Client(headers={"Authorization": f"Token {token_for(user)}"})
