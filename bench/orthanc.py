"""Debian's Orthanc (with its DICOMweb and GDCM plugins) on loopback, as the peer of the benchmarks.

Started with a temporary configuration and storage, stopped afterwards. Absent when the Debian
packages orthanc, orthanc-dicomweb and orthanc-gdcm are not installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_DIR = Path("/usr/share/orthanc/plugins")


def binary() -> str | None:
    return next((b for b in BINARIES if Path(b).exists()), shutil.which("Orthanc"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Orthanc:
    def __init__(self) -> None:
        self.exe = binary()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-orthanc-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def available(self) -> bool:
        return self.exe is not None

    def version(self) -> str:
        with urllib.request.urlopen(f"{self.url}/system", timeout=10) as answer:
            return json.loads(answer.read())["Version"]

    def start(self) -> Orthanc:
        plugins = [str(p) for p in sorted(PLUGIN_DIR.glob("*.so"))] if PLUGIN_DIR.exists() else []
        config = {
            "Name": "bench",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "HttpPort": self.port,
            "DicomPort": _free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": False,
            "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "Gdcm": {"Enable": True},
            "ConcurrentJobs": 2,
        }
        config_path = self.dir / "orthanc.json"
        config_path.write_text(json.dumps(config))
        self.log = open(self.dir / "orthanc.log", "wb")  # noqa: SIM115 - kept open while Orthanc runs
        self.process = subprocess.Popen([self.exe, str(config_path)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.version()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start; see {self.dir / 'orthanc.log'}") from None
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
