"""Interop with a real Orthanc (Debian's orthanc, orthanc-dicomweb, orthanc-gdcm) that has the portal,
served by a real daphne on PostgreSQL, as one of its DICOMweb servers (``DicomWeb.Servers`` with an
``Authorization: Bearer <token>`` header): Orthanc pushes a study in with its ``stow`` call, finds
it with ``qido``, pulls it back with ``retrieve`` (which asks for ``transfer-syntax=*``), and the
pulled instances are the ones sent, compressed pixel data included. Then a correction: the portal's
DELETE, and Orthanc sends the corrected instance under the same SOP Instance UID."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import pytest
import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from bench.orthanc import PLUGIN_DIR, binary
from studies.models import Instance, Study
from tests.conftest import require_service
from tests.orthanc import OrthancPacs

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Uncompressed, RLE and JPEG 2000: the portal must hand back what it stored, not a decoded copy.
CORPUS = ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm")
SERVER = "portal"


@pytest.fixture
def orthanc_factory(request, tmp_path):
    if binary() is None or not (PLUGIN_DIR / "libOrthancDicomWeb.so").exists():
        require_service("Orthanc", "apt-get install orthanc orthanc-dicomweb orthanc-gdcm")
    started = []

    def start(portal_url: str, token: str) -> OrthancPacs:
        portal = {"Url": f"{portal_url}/dicomweb/", "HttpHeaders": {"Authorization": f"Bearer {token}"}}
        orthanc = OrthancPacs(tmp_path, f"orthanc-{request.node.name[:40]}", dicomweb_servers={SERVER: portal})
        started.append(orthanc)
        return orthanc.start()

    yield start
    for orthanc in started:
        orthanc.stop()


def study_files(**attrs) -> list[bytes]:
    """The corpus files as one study of one patient, each under new UIDs, in its own transfer syntax."""
    study_uid = generate_uid()
    files = []
    for number, name in enumerate(CORPUS, start=1):
        ds = dcmread(get_testdata_file(name))
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName, ds.SeriesNumber = "ORTHANC-1", "Interop^Ina", number
        for keyword, value in attrs.items():
            setattr(ds, keyword, value)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def value(item: dict, tag: str):
    """One attribute of a QIDO answer as Orthanc's client passes it on (``Value`` a string, or a list)."""
    found = item[tag]["Value"]
    return found[0] if isinstance(found, list) else found


def fingerprint(data: bytes) -> tuple[str, str, str]:
    """SOP Instance UID, transfer syntax and a hash of the pixel data as stored (encapsulated or not)."""
    ds = dcmread(io.BytesIO(data))
    return str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID), hashlib.sha256(ds.PixelData).hexdigest()


def test_orthanc_pushes_queries_and_pulls_a_study_through_the_portal(
    postgres, live_server_url, live_user, orthanc_factory
):
    user = live_user("physician", email="orthanc-interop@example.com")
    token = Token.objects.create(user=user).key
    orthanc = orthanc_factory(live_server_url, token)
    files = study_files()
    sent = sorted(fingerprint(data) for data in files)
    study_uid = str(dcmread(io.BytesIO(files[0])).StudyInstanceUID)
    orthanc_study = None
    for data in files:
        orthanc_study = orthanc.call("POST", "/instances", raw=data)["ParentStudy"]

    # Push: Orthanc's STOW-RS client into the portal.
    orthanc.call("POST", f"/dicom-web/servers/{SERVER}/stow", {"Resources": [orthanc_study]})
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.num_instances, study.uploaded_by) == (3, user)
    stored = sorted(
        (sop, syntax)
        for sop, syntax in Instance.objects.filter(series__study=study).values_list(
            "sop_instance_uid", "transfer_syntax_uid"
        )
    )
    assert stored == sorted((sop, syntax) for sop, syntax, _ in sent)

    # Query: Orthanc's QIDO-RS client.
    studies = orthanc.call(
        "POST", f"/dicom-web/servers/{SERVER}/qido", {"Uri": "/studies", "Arguments": {"PatientID": "ORTHANC-1"}}
    )
    assert [value(s, "0020000D") for s in studies] == [study_uid]
    # (Orthanc 1.10's client drops IS values sent as JSON numbers, as PS3.18 F.2.3 has them: the
    # counts are checked through the instances it finds.)
    instances = orthanc.call("POST", f"/dicom-web/servers/{SERVER}/qido", {"Uri": f"/studies/{study_uid}/instances"})
    assert sorted(value(i, "00080018") for i in instances) == [sop for sop, _, _ in sent]

    # Pull: Orthanc forgets the study and retrieves it from the portal, as stored.
    orthanc.call("DELETE", f"/studies/{orthanc_study}")
    assert orthanc.call("GET", "/instances") == []
    orthanc.call("POST", f"/dicom-web/servers/{SERVER}/retrieve", {"Resources": [{"Study": study_uid}]})
    pulled = orthanc.call("GET", "/instances")
    assert len(pulled) == 3
    back = []
    for orthanc_id in pulled:
        with urllib.request.urlopen(f"{orthanc.url}/instances/{orthanc_id}/file", timeout=60) as answer:
            back.append(fingerprint(answer.read()))
    assert sorted(back) == sent

    # A correction: the portal refuses other content under a stored SOP Instance UID until it is deleted.
    corrected = dcmread(io.BytesIO(files[0]))
    corrected.PatientName = "Interop^Ina Maria"
    out = io.BytesIO()
    corrected.save_as(out, enforce_file_format=True)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    instance_url = (
        f"{live_server_url}/dicomweb/studies/{study_uid}/series/{corrected.SeriesInstanceUID}"
        f"/instances/{corrected.SOPInstanceUID}"
    )
    assert session.delete(instance_url).status_code == 204
    assert session.get(instance_url).status_code == 404
    orthanc.call("DELETE", f"/studies/{orthanc_study}")
    new_id = orthanc.call("POST", "/instances", raw=out.getvalue())["ID"]
    orthanc.call("POST", f"/dicom-web/servers/{SERVER}/stow", {"Resources": [new_id]})
    again = dcmread(io.BytesIO(session.get(instance_url, headers={"Accept": "application/dicom"}).content))
    assert str(again.PatientName) == "Interop^Ina Maria"
    assert Study.objects.get(study_instance_uid=study_uid).num_instances == 3
