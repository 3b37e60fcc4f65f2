"""Signing in with the hospital's identity provider in a real browser, and its access tokens on
DICOMweb: a real provider (node's oidc-provider, tests/oidc/provider.js) and a real daphne
configured for it through the TELECONSULT_OIDC_* variables, as an operator would."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from accounts.models import Membership, Organization, User
from tests.oidc.keys import new_key
from tests.oidc.server import ProviderProcess, ensure_installed
from tests.servers import free_port
from tests.studies.test_dicomweb_helpers import store_dataset

pytestmark = pytest.mark.e2e

AUDIENCE = "urn:teleconsult:api"
KID = "hospital-key-1"
LOGIN = "ann.radiology"
EMAIL = "ann.smith@hospital.example"


@pytest.fixture
def signing_key():
    return new_key()


@pytest.fixture
def portal_and_provider(request, daphne_factory, tmp_path, signing_key):
    """A provider whose only login is Ann, and a daphne whose hospital provider it is."""
    node = ensure_installed()
    portal_port, provider_port = free_port(), free_port()
    portal = f"http://127.0.0.1:{portal_port}"
    private_jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key)), "kid": KID, "use": "sig"}
    provider = ProviderProcess(
        node,
        provider_port,
        clients=[
            {
                "client_id": "teleconsult",
                "client_secret": "portal-secret-0123456789",
                "redirect_uris": [f"{portal}/accounts/oidc/hospital/login/callback/"],
            },
            # A viewer (OHIF) signing in on its own, a public client with PKCE.
            {"client_id": "viewer", "redirect_uris": [f"{portal}/viewer-callback"]},
        ],
        accounts={LOGIN: {"email": EMAIL, "email_verified": True, "name": "Dr Ann Smith"}},
        audience=AUDIENCE,
        jwks={"keys": [private_jwk]},
        label=f"oidc-provider-{provider_port}",
    )
    request.addfinalizer(provider.stop)
    provider.start()
    secret = tmp_path / "client-secret"
    secret.write_text("portal-secret-0123456789\n")
    server = daphne_factory(
        port=portal_port,
        TELECONSULT_OIDC_PROVIDERS="hospital",
        TELECONSULT_OIDC_HOSPITAL_ISSUER=provider.issuer,
        TELECONSULT_OIDC_HOSPITAL_CLIENT_ID="teleconsult",
        TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE=str(secret),
        TELECONSULT_OIDC_HOSPITAL_PRACTICE="General Hospital",
        TELECONSULT_OIDC_HOSPITAL_ROLE="physician",
        TELECONSULT_OIDC_HOSPITAL_EMAIL_DOMAINS="hospital.example",
        TELECONSULT_OIDC_HOSPITAL_NAME="General Hospital",
        TELECONSULT_OIDC_HOSPITAL_AUDIENCE=AUDIENCE,
    )
    return server, provider


def viewer_access_token(context, portal: str, provider: ProviderProcess) -> str:
    """An access token as a viewer gets one: authorization code with PKCE in the signed-in browser."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect_uri = f"{portal}/viewer-callback"
    page = context.new_page()
    query = {
        "client_id": "viewer",
        "response_type": "code",
        "scope": "openid email profile",
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": AUDIENCE,
        "state": "s",
    }
    page.goto(f"{provider.issuer}/auth?{urlencode(query)}")
    # The browser is already signed in at the provider: it comes straight back with a code (the
    # page there is the portal's 404; only the address matters).
    page.wait_for_url(lambda url: url.startswith(redirect_uri))
    code = parse_qs(urlsplit(page.url).query)["code"][0]
    answer = requests.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": "viewer",
            "code_verifier": verifier,
            "resource": AUDIENCE,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_clinician_signs_in_with_the_hospital_and_reads_dicomweb_with_its_token(
    portal_and_provider, browser_context, live_user, signing_key
):
    server, provider = portal_and_provider
    hospital = Organization.objects.create(name="General Hospital", kind="hospital")
    colleague = live_user(email="colleague@hospital.example", practice=hospital)
    study = store_dataset(colleague)
    outsider = live_user(email="outsider@elsewhere.example")
    store_dataset(outsider, PatientID="OTHER-1", PatientName="Other^Patient")

    context = browser_context(base_url=server.url)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Sign in with General Hospital").click()
    page.wait_for_url(f"{provider.issuer}/**")
    page.fill("input[name=login]", LOGIN)
    page.fill("input[name=password]", "anything")
    page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{server.url}/**")
    page.wait_for_load_state()
    assert "/accounts/login" not in page.url
    assert "Dr Ann Smith" in page.content()

    ann = User.objects.get(email=EMAIL)
    assert ann.role == "physician"
    assert Membership.objects.filter(user=ann, practice=hospital).exists()
    assert ann.has_clinical_access

    token = viewer_access_token(context, server.url, provider)
    studies = requests.get(
        f"{server.url}/dicomweb/studies",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"},
        timeout=30,
    )
    assert studies.status_code == 200, studies.text
    assert [s["0020000D"]["Value"][0] for s in studies.json()] == [study.StudyInstanceUID]

    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "exp": int(time.time()) + 300}, new_key(), algorithm="RS256", headers={"kid": KID})
    expired = jwt.encode(
        {**claims, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 600},
        signing_key,
        algorithm="RS256",
        headers={"kid": KID},
    )
    for bad, detail in ((forged, "signature does not verify"), (expired, "has expired")):
        refused = requests.get(
            f"{server.url}/dicomweb/studies",
            headers={"Authorization": f"Bearer {bad}", "Accept": "application/dicom+json"},
            timeout=30,
        )
        assert refused.status_code == 401, refused.text
        assert detail in refused.json()["detail"]
