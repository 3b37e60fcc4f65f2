"""Debian's Orthanc as a hospital PACS for tests: its own configuration and storage in a temporary
directory, HTTP and DICOM on free loopback ports, the portal among its DICOM modalities (so it
answers the portal's C-FIND and C-MOVE and sends to the portal's receiver).

``orthanc_pacs`` (a fixture of the tests that import it) skips with the reason when Orthanc is not
installed, and fails in CI (``require_service``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from bench.orthanc import PLUGIN_DIR, binary
from tests.conftest import require_service
from tests.servers import ServiceProcess, free_port


class OrthancPacs(ServiceProcess):
    """Orthanc answering DICOM as ``ae_title`` on ``dicom_port``; ``modalities``: name -> (AE, host, port);
    ``dicomweb_servers``: name -> its ``DicomWeb.Servers`` entry (the portal as a DICOMweb server)."""

    def __init__(
        self, directory: Path, label: str, *, ae_title: str = "ORTHANCPACS", modalities=None, dicomweb_servers=None
    ) -> None:
        self.port = free_port()
        self.dicom_port = free_port()
        self.ae_title = ae_title
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": label,
            "StorageDirectory": str(directory / "storage"),
            "IndexDirectory": str(directory / "index"),
            "HttpPort": self.port,
            "DicomPort": self.dicom_port,
            "DicomAet": ae_title,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {name: list(entry) for name, entry in (modalities or {}).items()},
            "Plugins": [str(p) for p in sorted(PLUGIN_DIR.glob("*.so"))] if PLUGIN_DIR.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": dict(dicomweb_servers or {})},
        }
        path = directory / "orthanc.json"
        path.write_text(json.dumps(config))
        super().__init__([binary(), str(path)], {}, label)

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/system", timeout=2):
                return True
        except OSError:
            return False

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                content = answer.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Orthanc {method} {path}: {exc.code} {exc.read()[:2000]!r}") from None
        return json.loads(content) if content.strip() else None

    def store(self, data: bytes) -> dict:
        return self.call("POST", "/instances", raw=data)

    def has_instance(self, sop_instance_uid: str) -> bool:
        found = self.call("POST", "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}})
        return bool(found)


def require_orthanc() -> None:
    if binary() is None:
        require_service("Orthanc", "apt-get install orthanc orthanc-dicomweb orthanc-gdcm")
