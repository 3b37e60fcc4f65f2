"""Running the test identity provider (tests/oidc/provider.js, node's oidc-provider) on loopback.

The npm package is installed by ``npm ci --prefix tests/oidc`` (.ci/run does it; the fixture tries
once when it is missing). Without node or npm, or without the package, tests that need the
provider skip saying so, and fail in CI (``require_service``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require_service
from tests.servers import ServiceProcess, port_answers

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "node_modules" / "oidc-provider" / "package.json"


def ensure_installed() -> str:
    """The node binary, with oidc-provider installed beside provider.js; skip (or fail in CI) if not."""
    node = shutil.which("node")
    if node is None:
        require_service("Node.js", "the test identity provider runs on node (tests/oidc/provider.js)")
    if not PACKAGE.exists():
        npm = shutil.which("npm")
        if npm is None:
            require_service("npm", "install the test identity provider with npm ci --prefix tests/oidc")
        result = subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0 or not PACKAGE.exists():
            require_service("oidc-provider", f"npm ci --prefix tests/oidc failed: {result.stderr[-500:]}")
    return node


class ProviderProcess(ServiceProcess):
    """``node tests/oidc/provider.js`` on ``port``; its issuer is ``http://127.0.0.1:<port>``."""

    def __init__(self, node: str, port: int, *, clients: list, accounts: dict, audience: str, jwks: dict, label: str):
        self.port = port
        env = {
            "PATH": str(Path(node).parent),
            "OIDC_PORT": str(port),
            "OIDC_CLIENTS": json.dumps(clients),
            "OIDC_ACCOUNTS": json.dumps(accounts),
            "OIDC_AUDIENCE": audience,
            "OIDC_JWKS": json.dumps(jwks),
        }
        super().__init__([node, str(HERE / "provider.js")], env, label)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        return port_answers(self.port) and "listening" in self.log()
