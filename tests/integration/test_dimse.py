"""The DICOM receiver as a real process (``manage.py dicom_scp``) on PostgreSQL, with a real Celery
worker on Redis rendering thumbnails, against real peers: dcmtk's ``echoscu`` and ``storescu``, and
pynetdicom as a sender for what dcmtk cannot do (send from another address, abort mid-transfer,
send a truncated or UID-less data set, open 20 associations at once)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage, Verification

from studies.models import DicomNode, Instance, RejectedAssociation, Study
from studies.nodes import add_node
from tests.conftest import require_service
from tests.factories import UserFactory, make_study
from tests.servers import ServiceProcess, free_port, port_answers, wait_until
from tests.studies import dicom_factory as f

pytestmark = pytest.mark.integration

CALLING = "MODALITY"
CALLED = "TELECONSULT"


class DicomScpProcess(ServiceProcess):
    """``manage.py dicom_scp`` on a loopback port."""

    def __init__(self, port: int, env: dict[str, str], label: str) -> None:
        self.port = port
        argv = [sys.executable, "manage.py", "dicom_scp", "--bind", "127.0.0.1", "--port", str(port)]
        super().__init__(argv, env, label)

    def is_ready(self) -> bool:
        return port_answers(self.port)


@pytest.fixture
def dcmtk():
    if not (shutil.which("echoscu") and shutil.which("storescu")):
        require_service("dcmtk", "install Debian's dcmtk (echoscu, storescu) to run the DIMSE tests")


@pytest.fixture
def scp(request, postgres, redis_url, service_environment, celery_worker_factory, dcmtk):
    """The receiver and a worker sharing this test's Redis prefix; both stop when the test ends."""
    celery_worker_factory()
    process = DicomScpProcess(free_port(), service_environment.env(LOG_LEVEL="INFO"), f"dimse-{free_port()}")
    request.addfinalizer(process.stop)
    return process.start()


@pytest.fixture
def node(transactional_db, live_user):
    owner = live_user("physician", email="dimse-owner@example.com")
    return add_node(ae_title=CALLING, host="127.0.0.1", port=104, owner=owner)


def _study_files(folder: Path, count: int, study_uid: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"IM{number:04d}.dcm"
        f.make_ct(path, StudyInstanceUID=study_uid, InstanceNumber=number + 1, rows=32, columns=32)
        paths.append(path)
    return paths


def _associate(port: int, *, calling: str = CALLING, bind: str | None = None):
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    return ae.associate("127.0.0.1", port, ae_title=CALLED, bind_address=(bind, 0) if bind else None)


def test_storescu_of_a_folder_files_the_study_in_the_owners_practice_with_thumbnails(scp, node, tmp_path):
    study_uid = generate_uid()
    _study_files(tmp_path / "cd", 4, study_uid)

    echo = subprocess.run(["echoscu", "-aet", CALLING, "-aec", CALLED, "127.0.0.1", str(scp.port)], timeout=60)
    store = subprocess.run(
        ["storescu", "-aet", CALLING, "-aec", CALLED, "127.0.0.1", str(scp.port), "+sd", str(tmp_path / "cd")],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert echo.returncode == 0
    assert store.returncode == 0, store.stderr
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.practice, study.uploaded_by, study.num_instances) == (node.practice, node.owner, 4)
    wait_until(
        lambda: Instance.objects.filter(series__study=study, status=Instance.Status.READY).count() == 4,
        timeout=60,
        message=f"thumbnails rendered by the worker\n{scp.log_tail()}",
    )
    assert all(instance.thumbnail.name for instance in Instance.objects.filter(series__study=study))
    # Sending again is idempotent: success, nothing new.
    again = subprocess.run(
        ["storescu", "-aet", CALLING, "-aec", CALLED, "127.0.0.1", str(scp.port), "+sd", str(tmp_path / "cd")],
        capture_output=True,
        timeout=120,
    )
    assert again.returncode == 0
    study.refresh_from_db()
    assert study.num_instances == 4


def test_echoscu_from_an_unknown_ae_title_is_rejected_logged_and_recorded(scp, node):
    echo = subprocess.run(
        ["echoscu", "-aet", "STRANGER", "-aec", CALLED, "127.0.0.1", str(scp.port)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert echo.returncode != 0
    assert "Calling AE Title Not Recognized" in echo.stderr
    wait_until(lambda: "'STRANGER' at 127.0.0.1" in scp.log(), message="the rejection logged")
    assert "rejected: unknown_ae" in scp.log()
    assert RejectedAssociation.objects.get(calling_ae="STRANGER").reason == "unknown_ae"


def test_a_known_ae_title_from_another_address_is_rejected(scp, node):
    assoc = _associate(scp.port, bind="127.0.0.2")

    assert assoc.is_rejected
    rejection = assoc.acceptor.primitive
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x01, 0x01, 0x03)
    recorded = RejectedAssociation.objects.get(calling_ae=CALLING)
    assert (recorded.address, recorded.reason, recorded.node_id) == ("127.0.0.2", "wrong_address", node.pk)


def test_a_disabled_node_is_rejected(scp, node):
    DicomNode.objects.filter(pk=node.pk).update(enabled=False)

    assert _associate(scp.port).is_rejected


@pytest.fixture
def chunked_sending(monkeypatch):
    """pynetdicom sends files as they are on disk, bad ones included, rather than re-encoding them."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def test_bad_input_each_c_store_gets_a_refusal_status_naming_the_reason(scp, node, tmp_path, chunked_sending):
    truncated = tmp_path / "truncated.dcm"
    f.make_truncated(truncated)
    no_uids = tmp_path / "no-uids.dcm"
    ds = f.dataset(StudyInstanceUID=None, SeriesInstanceUID=None)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    del ds.SOPInstanceUID
    f.to_bytes(ds, no_uids)
    good = _study_files(tmp_path / "good", 1, generate_uid())[0]
    elsewhere = make_study(uploader=UserFactory(role="physician", email="elsewhere@example.com"))
    forbidden = _study_files(tmp_path / "forbidden", 1, elsewhere.study_instance_uid)[0]

    assoc = _associate(scp.port)
    assert assoc.is_established
    statuses = [assoc.send_c_store(path) for path in (truncated, no_uids, forbidden, good)]
    assoc.release()

    assert [status.Status for status in statuses] == [0xC003, 0xC006, 0xA900, 0x0000]
    assert statuses[0].ErrorComment.startswith("truncated: ")
    assert statuses[1].ErrorComment.startswith("missing_uid: ")
    assert statuses[2].ErrorComment.startswith("forbidden_study: ")
    assert Instance.objects.count() == 1
    assert "refused (0xA900)" in scp.log()


def test_a_sender_aborting_mid_transfer_leaves_what_was_answered_and_no_partial_file(scp, node, tmp_path):
    study_uid = generate_uid()
    first, second, cut = _study_files(tmp_path / "cd", 3, study_uid)
    assoc = _associate(scp.port)
    assert [assoc.send_c_store(dcmread(path)).Status for path in (first, second)] == [0, 0]

    # The third instance: its command and the first pieces of its data set, then an A-ABORT.
    request = C_STORE()
    request.MessageID = 3
    request.AffectedSOPClassUID = CTImageStorage
    ds = dcmread(cut)
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = io.BytesIO(encode(ds, False, True))  # the data set alone, no file meta
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = next(cx.context_id for cx in assoc.accepted_contexts if cx.abstract_syntax == CTImageStorage)
    pieces = list(message.encode_msg(context_id, 1024))
    for piece in pieces[:-2]:
        assoc.dul.send_pdu(piece)
    receiving = sorted(Path(scp.env["TELECONSULT_DATA_DIR"], "media", ".incoming").glob(f"request-{scp.pid}-*"))

    def partial_files() -> list[Path]:
        return [file for directory in receiving for file in directory.glob("*.dcm")]

    wait_until(partial_files, message="the partial data set on disk")
    assoc.abort()

    wait_until(lambda: not partial_files(), message="the partial data set removed")
    assert Instance.objects.filter(series__study__study_instance_uid=study_uid).count() == 2
    still = _associate(scp.port)
    assert still.send_c_echo().Status == 0x0000  # still serving
    still.release()  # an association left open would hold the receiver's shutdown to its timeout
    assert "aborted" in scp.log()


def test_twenty_simultaneous_associations_are_all_stored(scp, node, tmp_path):
    study_uid = generate_uid()  # one study: the associations contend for its row
    files = _study_files(tmp_path / "cd", 40, study_uid)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(paths: list[Path]) -> None:
        try:
            assoc = _associate(scp.port)
            assert assoc.is_established, "association not accepted"
            for path in paths:
                status = assoc.send_c_store(dcmread(path))
                with lock:
                    statuses.append(status.Status if "Status" in status else -1)
            assoc.release()
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(files[i::20],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)

    assert not errors, errors
    assert statuses == [0x0000] * 40
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.num_instances == 40
    assert Instance.objects.filter(series__study=study).count() == 40
    assert scp.running


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server pair for 127.0.0.1 and a client pair it issued, and a client pair another CA
    issued (openssl)."""
    if shutil.which("openssl") is None:
        require_service("openssl", "the TLS test makes its certificates with the openssl command")
    folder.mkdir()

    def run(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True, timeout=60)

    for ca in ("ca", "other-ca"):
        run(f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={ca} -keyout {ca}.key -out {ca}.pem")
    for name, subject, issuer in (
        ("server", "127.0.0.1", "ca"),
        ("client", "ct1", "ca"),
        ("stranger", "x", "other-ca"),
    ):
        run(f"req -newkey rsa:2048 -nodes -subj /CN={subject} -keyout {name}.key -out {name}.csr")
        run(f"x509 -req -in {name}.csr -CA {issuer}.pem -CAkey {issuer}.key -CAcreateserial -days 2 -out {name}.pem")
    return {
        name: folder / name
        for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "stranger.pem", "stranger.key")
    }


def test_with_dicom_tls_and_a_ca_only_senders_with_its_client_certificate_get_in(
    request, postgres, service_environment, dcmtk, node, tmp_path
):
    certs = _certificates(tmp_path / "tls")
    env = service_environment.env(
        TELECONSULT_DIMSE_TLS_CERT=str(certs["server.pem"]),
        TELECONSULT_DIMSE_TLS_KEY=str(certs["server.key"]),
        TELECONSULT_DIMSE_TLS_CA=str(certs["ca.pem"]),
    )
    scp = DicomScpProcess(free_port(), env, f"dimse-tls-{free_port()}")
    request.addfinalizer(scp.stop)
    scp.start()

    def echo(*tls: str) -> int:
        argv = ["echoscu", *tls, "-aet", CALLING, "-aec", CALLED, "127.0.0.1", str(scp.port)]
        return subprocess.run(argv, capture_output=True, timeout=60).returncode

    trust = ("--add-cert-file", str(certs["ca.pem"]))
    assert echo("--enable-tls", str(certs["client.key"]), str(certs["client.pem"]), *trust) == 0
    assert echo() != 0  # plain DIMSE
    assert echo("--anonymous-tls", *trust) != 0  # no client certificate
    assert echo("--enable-tls", str(certs["stranger.key"]), str(certs["stranger.pem"]), *trust) != 0
    assert "DICOM TLS receiver" in scp.log()
