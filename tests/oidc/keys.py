"""A minimal key publisher for unit tests of provider tokens: a real HTTP server on loopback that
serves an OpenID Connect discovery document and a JWKS, and signs tokens with its RSA key.

The browser round trip (tests/e2e/test_oidc_sign_in.py) uses a full provider (node's
oidc-provider, tests/oidc/provider.js); this is for the many refusal cases, fast and without Node.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.oidc import Provider


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class KeyServer:
    """``KeyServer().start()``: ``issuer``, ``sign(claims)``, ``provider(...)``; ``stop()``."""

    def __init__(self) -> None:
        self.key = new_key()
        self.kid = "test-key-1"
        self.jwks_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.issuer, "jwks_uri": f"{server.issuer}/jwks"}
                elif self.path == "/jwks":
                    server.jwks_requests += 1
                    body = {"keys": [public_jwk(server.key, server.kid)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> KeyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": "portal-client",
            "sub": "subject-1",
            "iat": now,
            "exp": now + 300,
            "email": "owner@example.com",
            "email_verified": True,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, key=None, kid: str | None = None, **overrides) -> str:
        return jwt.encode(
            self.claims(**overrides), key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    def provider(self, **fields) -> Provider:
        return make_provider(**{"issuer": self.issuer, **fields})


def make_provider(**fields) -> Provider:
    """A provider as the settings would read it: "hospital", for addresses at example.com."""
    values = {
        "name": "hospital",
        "label": "General Hospital",
        "issuer": "https://sso.hospital.example",
        "client_id": "portal-client",
        "client_secret": "secret",
        "practice": "General Hospital",
        "role": "physician",
        "email_domains": ("example.com",),
        "audiences": ("portal-client",),
    }
    values.update(fields)
    return Provider(**values)
