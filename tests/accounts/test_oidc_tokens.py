"""Identity providers' access tokens as ``Authorization: Bearer`` on the REST API, FHIR, DICOMweb
and WebSockets: checked against the provider's published keys (a real HTTP server on loopback,
tests/oidc/keys.py), mapped to an existing account, refused with a reason otherwise."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from accounts import oidc_tokens
from accounts.models import User
from accounts.websocket import token_key, user_for_token
from tests.oidc.keys import KeyServer, new_key
from tests.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_server():
    server = KeyServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _forget_keys():
    oidc_tokens.forget_keys()
    yield
    oidc_tokens.forget_keys()


@pytest.fixture
def hospital(settings, key_server):
    provider = key_server.provider()
    settings.TELECONSULT_OIDC_PROVIDERS = (provider,)
    return provider


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_providers_token_reads_the_api_as_the_account_of_its_verified_email(hospital, key_server, physician):
    response = bearer(key_server.sign()).get("/api/v1/me/")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == physician.email


def test_the_account_that_signed_in_with_the_provider_is_found_by_sub(hospital, key_server, physician, colleague):
    SocialAccount.objects.create(user=colleague, provider="hospital", uid="subject-9")
    token = key_server.sign(sub="subject-9", email=None, email_verified=None)
    response = bearer(token).get("/api/v1/me/")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == colleague.email


def test_dicomweb_and_fhir_accept_the_token(hospital, key_server, physician):
    from tests.studies.test_dicomweb_helpers import store_dataset

    ds = store_dataset(physician)
    token = key_server.sign()
    response = bearer(token).get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200, response.content
    assert [study["0020000D"]["Value"][0] for study in response.json()] == [ds.StudyInstanceUID]
    assert bearer(token).get("/fhir/r4/Patient").status_code == 200


def test_outsider_token_sees_no_study_of_another_practice(hospital, key_server, physician, outsider):
    from tests.studies.test_dicomweb_helpers import store_dataset

    store_dataset(physician)
    token = key_server.sign(email=outsider.email, sub="outsider")
    response = bearer(token).get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json")
    assert response.status_code in (200, 204)
    assert not response.content or response.json() == []


def unsigned(server) -> str:
    """A token claiming the provider's issuer and key, with ``alg: none`` and no signature."""
    import base64
    import json

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': server.kid})}.{part(server.claims())}."


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda s: s.sign(key=new_key()), "signature does not verify"),
        (lambda s: s.sign(key=new_key(), kid="attacker"), "unknown signing key"),
        (lambda s: s.sign(exp=1_000_000_000, iat=999_999_000), "has expired"),
        (lambda s: s.sign(nbf=4_000_000_000), "not valid yet"),
        (lambda s: s.sign(aud="another-app"), "not issued for this portal"),
        (lambda s: s.sign(iss="https://evil.example"), "issuer is not an identity provider of this portal"),
        (lambda s: s.sign(exp=None), "lacks a required claim"),
        (lambda s: s.sign(email_verified=False, sub="unknown"), "names no account here"),
        (lambda s: s.sign(email="someone@elsewhere.example", sub="unknown"), "names no account here"),
        (lambda s: s.sign(email="nobody@example.com", sub="unknown"), "no active account"),
        (lambda s: "abc.def.ghi", "neither a portal API token nor a valid JWT"),
        (unsigned, "algorithm the portal does not accept"),
    ],
)
def test_a_bad_token_is_a_401_saying_why(hospital, key_server, physician, make, detail):
    users = User.objects.count()
    for path in ("/api/v1/me/", "/dicomweb/studies"):
        response = bearer(make(key_server)).get(path)
        assert response.status_code == 401, (path, response.content)
        assert detail in response.json()["detail"], (path, response.json())
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert User.objects.count() == users  # tokens never make accounts


def test_a_token_signed_with_hmac_of_the_public_key_is_refused(hospital, key_server, physician):
    """The algorithm-confusion attack: HS256 with the provider's public key as the secret."""
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    public_pem = key_server.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = part(json.dumps({"alg": "HS256", "kid": key_server.kid}).encode())
    payload = part(json.dumps(key_server.claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    response = bearer(f"{header}.{payload}.{part(signature)}").get("/api/v1/me/")
    assert response.status_code == 401
    assert "algorithm the portal does not accept" in response.json()["detail"]


def test_an_inactive_account_is_refused(hospital, key_server, physician):
    User.objects.filter(pk=physician.pk).update(is_active=False)
    response = bearer(key_server.sign()).get("/api/v1/me/")
    assert response.status_code == 401


def test_unreachable_provider_keys_are_a_503_with_retry_after(settings, key_server, physician):
    settings.TELECONSULT_OIDC_PROVIDERS = (key_server.provider(issuer=f"http://127.0.0.1:{free_port()}"),)
    token = key_server.sign(iss=settings.TELECONSULT_OIDC_PROVIDERS[0].issuer)
    for path in ("/api/v1/me/", "/dicomweb/studies", "/fhir/r4/Patient"):
        response = bearer(token).get(path)
        assert response.status_code == 503, (path, response.content)
        assert response["Retry-After"] == "30"
        assert "cannot be reached" in response.content.decode()


def test_keys_are_fetched_once_for_many_requests(hospital, key_server, physician):
    for _ in range(3):
        assert bearer(key_server.sign()).get("/api/v1/me/").status_code == 200
    assert key_server.jwks_requests == 1


def test_portal_tokens_still_work_beside_provider_tokens(hospital, physician):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=physician)
    assert bearer(token.key).get("/api/v1/me/").status_code == 200
    assert bearer("not-a-key!").get("/api/v1/me/").status_code == 401


def test_no_provider_configured_refuses_jwts_with_a_reason(settings, key_server, physician):
    settings.TELECONSULT_OIDC_PROVIDERS = ()
    response = bearer(key_server.sign()).get("/api/v1/me/")
    assert response.status_code == 401
    assert "none is configured" in response.json()["detail"]


def test_mfa_policy_applies_unless_the_token_says_the_provider_did_mfa(settings, hospital, key_server, physician):
    settings.TELECONSULT_MFA_REQUIRED = True
    refused = bearer(key_server.sign()).get("/api/v1/me/")
    assert refused.status_code == 401
    assert "two-factor" in refused.json()["detail"]
    assert bearer(key_server.sign(amr=["pwd", "otp"])).get("/api/v1/me/").status_code == 200


# -- WebSockets ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_websocket_handshake_accepts_a_providers_token(hospital, key_server, physician):
    token = key_server.sign()
    key = token_key([f"Bearer {token}".encode()])
    assert key == token
    assert async_to_sync(user_for_token)(key) == physician
    forged = key_server.sign(key=new_key())
    assert async_to_sync(user_for_token)(forged) is None
    expired = key_server.sign(exp=1_000_000_000, iat=999_999_000)
    assert async_to_sync(user_for_token)(expired) is None
