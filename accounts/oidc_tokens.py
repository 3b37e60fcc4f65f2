"""Access tokens of the configured identity providers as ``Authorization: Bearer`` credentials.

OHIF, Kheops and scripts that signed in at the hospital's provider send its access token (a JWT)
instead of a portal API token. It is accepted on /api/, /fhir/, /dicomweb/ and WebSockets when:

- its issuer (``iss``) is a configured provider's, and its signature verifies with a key of that
  provider's JWKS (found through the provider's discovery document, both cached per process);
- it was issued for this portal (``aud`` is the provider's client id or one of its configured
  audiences), and it is within ``exp``/``nbf`` with a small leeway for clocks;
- it names an existing active account: the account that signed in with this provider under the
  token's ``sub``, else the account of its ``email`` when the provider verified that address and
  may speak for its domain (the rules of accounts/oidc.py). Tokens never create accounts.

Which class decides is routed by shape: a portal key is letters and digits, a JWT has dots
(accounts/authentication.py hands those here). A token that fails any check is a 401 whose detail
says which; a provider whose keys cannot be fetched is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

import jwt
import requests
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from teleconsult.errors import PortalError

from . import oidc
from .mfa import must_set_up_mfa

log = logging.getLogger(__name__)

SCHEMES = (b"bearer", b"token")
# header.payload.signature, each base64url; far longer than any portal key.
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MAX_TOKEN_LENGTH = 16 * 1024
# Public-key algorithms only: a provider's JWKS holds public keys, and "none" or an HMAC with a
# public key as the secret must never verify.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 5
DISCOVERY_TTL_SECONDS = 3600
JWKS_TTL_SECONDS = 300
RETRY_AFTER_SECONDS = 30
MFA_SETUP_MESSAGE = "Set up two-factor authentication on the Security page before using the API."


def looks_like_jwt(key: str) -> bool:
    return len(key) <= MAX_TOKEN_LENGTH and JWT_SHAPE.fullmatch(key) is not None


class ProviderUnavailableError(PortalError):
    """The provider's keys could not be fetched: the token may be fine, so try again later."""

    status = 503
    code = "identity_provider_unavailable"

    def __init__(self, provider: oidc.Provider) -> None:
        super().__init__(
            f"The identity provider {provider.label} cannot be reached to check this token. Try again shortly."
        )
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


@dataclass(frozen=True)
class ProviderToken:
    """``request.auth`` for a provider's access token."""

    provider: str
    claims: dict

    @property
    def did_mfa(self) -> bool:
        return oidc.amr_shows_mfa(self.claims.get("amr"))


# -- keys, cached per process -----------------------------------------------------------------------

_lock = threading.Lock()
_clients: dict[tuple[str, str], tuple[float, jwt.PyJWKClient]] = {}


def _jwks_client(provider: oidc.Provider) -> jwt.PyJWKClient:
    """The provider's JWKS client (PyJWT's, which caches the key set and refreshes it, with a
    cooldown, when a token names a key it does not hold). The discovery document that names the
    JWKS is read again after an hour."""
    key = (provider.name, provider.issuer)
    with _lock:
        cached = _clients.get(key)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
        jwks_uri = document["jwks_uri"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        log.warning("Identity provider %s: discovery document %s: %s", provider.name, url, exc)
        raise ProviderUnavailableError(provider) from None
    if document.get("issuer") != provider.issuer:
        log.warning("Identity provider %s: discovery says issuer %r", provider.name, document.get("issuer"))
        raise ProviderUnavailableError(provider)
    client = jwt.PyJWKClient(jwks_uri, lifespan=JWKS_TTL_SECONDS, timeout=FETCH_TIMEOUT_SECONDS)
    with _lock:
        _clients[key] = (time.monotonic(), client)
    return client


def forget_keys() -> None:
    """Drop the cached discovery documents and key sets (tests; a provider's configuration change)."""
    with _lock:
        _clients.clear()


# -- checking a token ---------------------------------------------------------------------------------

REFUSALS = (
    (jwt.ExpiredSignatureError, "The access token has expired."),
    (jwt.ImmatureSignatureError, "The access token is not valid yet."),
    (jwt.InvalidAudienceError, "The access token was not issued for this portal (audience)."),
    (jwt.InvalidIssuerError, "The access token's issuer is not the identity provider's."),
    (jwt.InvalidSignatureError, "The access token's signature does not verify."),
    (jwt.InvalidAlgorithmError, "The access token is signed with an algorithm the portal does not accept."),
    (jwt.MissingRequiredClaimError, "The access token lacks a required claim (exp, iss, aud)."),
)


def _refusal(exc: jwt.InvalidTokenError) -> str:
    return next((message for kind, message in REFUSALS if isinstance(exc, kind)), "The access token is invalid.")


def _provider_for(token: str) -> oidc.Provider:
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthenticationFailed("The bearer token is neither a portal API token nor a valid JWT.") from None
    issuer = unverified.get("iss")
    provider = next((p for p in oidc.configured() if isinstance(issuer, str) and p.issuer == issuer), None)
    if provider is None:
        raise AuthenticationFailed("The access token's issuer is not an identity provider of this portal.")
    return provider


def verify(token: str) -> tuple[oidc.Provider, dict]:
    """The provider and the claims of a valid access token; AuthenticationFailed (401) says why not,
    ProviderUnavailableError (503) when the keys cannot be fetched."""
    provider = _provider_for(token)
    client = _jwks_client(provider)
    try:
        signing_key = client.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as exc:
        log.warning("Identity provider %s: JWKS: %s", provider.name, exc)
        raise ProviderUnavailableError(provider) from None
    except (jwt.PyJWKClientError, jwt.InvalidTokenError):
        # No key of the provider has this kid: signed by someone else.
        raise AuthenticationFailed("The access token's signature does not verify (unknown signing key).") from None
    try:
        claims = jwt.decode(
            token,
            signing_key,
            algorithms=ALGORITHMS,
            audience=list(provider.audiences),
            issuer=provider.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.InvalidTokenError as exc:
        raise AuthenticationFailed(_refusal(exc)) from None
    return provider, claims


def expires_at(token: str) -> float | None:
    """When an access token that was verified earlier stops being accepted (its ``exp`` and the
    leeway), read without checking the signature again; None when it cannot be read."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.InvalidTokenError:
        return None
    return float(exp) + LEEWAY_SECONDS if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def account_for(provider: oidc.Provider, claims: dict):
    """The active account the token speaks for, never a new one."""
    from allauth.socialaccount.models import SocialAccount

    from .addresses import account_for_address

    subject = claims.get("sub")
    user = None
    if isinstance(subject, str) and subject:
        linked = SocialAccount.objects.filter(provider=provider.name, uid=subject).select_related("user").first()
        user = linked.user if linked is not None else None
    if user is None:
        try:
            email = oidc.verified_email(provider, claims)
        except oidc.ClaimsRefusedError:
            raise AuthenticationFailed(
                "The access token names no account here: sign in to the portal with "
                f"{provider.label} once, or use a token that carries your verified email address."
            ) from None
        user = account_for_address(email)
    if user is None or not user.is_active:
        raise AuthenticationFailed("The access token names no active account of this portal.")
    return user


def authenticate_token(token: str):
    """``(user, ProviderToken)`` for a provider's access token (see the module's rules)."""
    provider, claims = verify(token)
    user = account_for(provider, claims)
    credential = ProviderToken(provider=provider.name, claims=claims)
    # The MFA policy as for portal tokens, unless the provider says this token's sign-in used one.
    if not credential.did_mfa and must_set_up_mfa(user):
        raise AuthenticationFailed(MFA_SETUP_MESSAGE)
    return user, credential


class ProviderTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <JWT>`` from a configured identity provider; anything that is not
    JWT-shaped is left to the other classes."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in SCHEMES:
            return None
        try:
            token = parts[1].decode("ascii")
        except UnicodeError:
            return None
        if not looks_like_jwt(token):
            return None
        if not oidc.configured():
            raise AuthenticationFailed("This portal accepts no identity provider's tokens (none is configured).")
        return authenticate_token(token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
