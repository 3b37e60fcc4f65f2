"""The hospital's identity providers (OpenID Connect): their configuration and the rules a sign-in
from one must meet.

Each provider is named in ``TELECONSULT_OIDC_PROVIDERS`` (``hospital,clinic``) and configured by
``TELECONSULT_OIDC_<NAME>_*`` variables; :func:`providers_from_environment` reads and checks them
when the settings load, so a typo stops start-up with a message naming the variable instead of
failing at the first sign-in. The same configuration drives allauth's ``openid_connect`` apps
(:func:`socialaccount_apps`: the browser sign-in, accounts/social_adapter.py) and the check of the
providers' access tokens on the APIs (accounts/oidc_tokens.py).

A provider may speak only for the email domains it is given: an address is matched to an account
only when the provider says it verified it (``email_verified``) and its domain is one of those.
Whether the provider did a second factor comes from the ``amr`` claim (RFC 8176).

This module is read by the settings, so it imports nothing of Django's apps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "TELECONSULT_OIDC"
ROLES = ("physician", "specialist")
# A provider's name is its id in URLs (/accounts/oidc/<name>/login/) and part of variable names.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,29}")
DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# RFC 8176 authentication method references that are a second factor or stronger on their own:
# "mfa" (several factors), one-time codes ("otp", "sms", "tel"), hardware and software keys
# ("hwk", "swk", "sc"), and biometrics checked by the authenticator ("fpt", "face", "iris",
# "retina", "vbm"). "pwd", "pin", "kba", "user", "wia" and the like are one factor.
MFA_AMR_VALUES = frozenset({"mfa", "otp", "sms", "tel", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm"})


@dataclass(frozen=True)
class Provider:
    """One identity provider as configured; ``name`` is its id in URLs and in the variables."""

    name: str
    label: str
    issuer: str
    client_id: str
    client_secret: str
    practice: str
    role: str
    email_domains: tuple[str, ...]
    audiences: tuple[str, ...]

    def allows_email(self, email: object) -> bool:
        """May this provider speak for ``email``? Its domain must be one of the provider's."""
        return email_domain(email) in self.email_domains


def email_domain(email: object) -> str | None:
    """The lower-cased domain of a plausible single address, else None."""
    if not isinstance(email, str):
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or "@" in local or not DOMAIN.fullmatch(domain.lower()):
        return None
    return domain.lower()


def is_true(value: object) -> bool:
    """A claim's boolean: JSON ``true``, or the string "true" some providers send."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def amr_shows_mfa(amr: object) -> bool:
    """Does an ``amr`` claim (a list of RFC 8176 values) say a second factor was used?"""
    if isinstance(amr, str):
        amr = [amr]
    if not isinstance(amr, list | tuple):
        return False
    return any(isinstance(value, str) and value.lower() in MFA_AMR_VALUES for value in amr)


class ClaimsRefusedError(ValueError):
    """The provider's claims cannot sign anyone in here; the message says why, for the person."""


def verified_email(provider: Provider, claims: Mapping) -> str:
    """The address ``claims`` vouch for, lower-cased, when ``provider`` may speak for it.

    The provider must say it verified the address (``email_verified`` true), and the address's
    domain must be one of the provider's: otherwise any account of the portal could be claimed by
    whoever controls the provider's directory.
    """
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        raise ClaimsRefusedError(
            f"{provider.label} did not tell us your email address, so we cannot find your account."
        )
    email = email.strip().lower()
    if not is_true(claims.get("email_verified")):
        raise ClaimsRefusedError(
            f"{provider.label} has not verified your email address {email}; it cannot sign you in."
        )
    if not provider.allows_email(email):
        domains = ", ".join(provider.email_domains)
        raise ClaimsRefusedError(f"{provider.label} signs in addresses at {domains} only, not {email}.")
    return email


# -- reading the configuration --------------------------------------------------------------------


def _env_name(name: str, field: str) -> str:
    return f"{PREFIX}_{name.upper().replace('-', '_')}_{field}"


def _check_issuer(variable: str, value: str, *, debug: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ImproperlyConfigured(f"{variable} must be the provider's issuer URL (https://...), not {value!r}")
    if parts.scheme == "http" and not debug and parts.hostname not in LOOPBACK_HOSTS:
        raise ImproperlyConfigured(f"{variable} must use https (http only on loopback or with DEBUG), not {value!r}")
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{variable} is an issuer URL without query or fragment, not {value!r}")
    # Issuers are compared exactly (OpenID Connect Discovery 4.3); a trailing slash is kept as given.
    return value


def _read_secret(name: str, get: Callable[[str], str | None]) -> str:
    file_variable = _env_name(name, "CLIENT_SECRET_FILE")
    path = (get(file_variable) or "").strip()
    if path:
        try:
            secret = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_variable}: cannot read {path!r} ({exc.strerror or exc})") from None
        if not secret:
            raise ImproperlyConfigured(f"{file_variable}: {path!r} is empty")
        return secret
    secret = (get(_env_name(name, "CLIENT_SECRET")) or "").strip()
    if not secret:
        raise ImproperlyConfigured(
            f"{file_variable} must name a file holding the client secret of provider {name!r} "
            f"(or set {_env_name(name, 'CLIENT_SECRET')})"
        )
    return secret


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def read_provider(name: str, get: Callable[[str], str | None], *, debug: bool = False) -> Provider:
    """One provider's configuration, checked; ImproperlyConfigured names the variable at fault."""

    def required(field: str) -> str:
        variable = _env_name(name, field)
        value = (get(variable) or "").strip()
        if not value:
            raise ImproperlyConfigured(f"{variable} must be set for identity provider {name!r}")
        return value

    issuer = _check_issuer(_env_name(name, "ISSUER"), required("ISSUER"), debug=debug)
    client_id = required("CLIENT_ID")
    secret = _read_secret(name, get)
    practice = required("PRACTICE")
    if len(practice) > 200:
        raise ImproperlyConfigured(f"{_env_name(name, 'PRACTICE')} is a practice's name of at most 200 characters")
    role = (get(_env_name(name, "ROLE")) or "physician").strip().lower()
    if role not in ROLES:
        raise ImproperlyConfigured(f"{_env_name(name, 'ROLE')} must be one of {', '.join(ROLES)}, not {role!r}")
    domains = [domain.lower().lstrip("@") for domain in _list(required("EMAIL_DOMAINS"))]
    bad = [domain for domain in domains if not DOMAIN.fullmatch(domain)]
    if bad or not domains:
        raise ImproperlyConfigured(
            f"{_env_name(name, 'EMAIL_DOMAINS')} must list email domains such as 'hospital.example', "
            f"not {', '.join(map(repr, bad)) or 'nothing'}"
        )
    label = (get(_env_name(name, "NAME")) or "").strip() or name.replace("-", " ").replace("_", " ").title()
    if len(label) > 60 or not label.isprintable():
        raise ImproperlyConfigured(f"{_env_name(name, 'NAME')} is a button label of at most 60 printable characters")
    audiences = tuple(dict.fromkeys([client_id, *_list(get(_env_name(name, "AUDIENCE")))]))
    return Provider(
        name=name,
        label=label,
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        practice=practice,
        role=role,
        email_domains=tuple(dict.fromkeys(domains)),
        audiences=audiences,
    )


def read_providers(get: Callable[[str], str | None], *, debug: bool = False) -> tuple[Provider, ...]:
    """Every provider named in ``TELECONSULT_OIDC_PROVIDERS`` (none when it is unset or empty)."""
    names = [name.lower() for name in _list(get(f"{PREFIX}_PROVIDERS"))]
    for name in names:
        if not NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"{PREFIX}_PROVIDERS: {name!r} is not a provider name (a letter, then letters, digits, - or _; "
                "at most 30 characters)"
            )
    variables = {_env_name(name, "ISSUER") for name in names}
    if len(variables) != len(names):
        raise ImproperlyConfigured(f"{PREFIX}_PROVIDERS names a provider twice: {', '.join(names)}")
    providers = tuple(read_provider(name, get, debug=debug) for name in names)
    issuers = [provider.issuer.rstrip("/") for provider in providers]
    if len(set(issuers)) != len(issuers):
        # An access token names its issuer; two providers with one issuer could not be told apart.
        raise ImproperlyConfigured(f"{PREFIX}_<NAME>_ISSUER: two providers have the same issuer")
    return providers


def providers_from_environment(environ: Mapping[str, str] | None = None, *, debug: bool = False):
    """The providers configured in ``environ`` (the process environment by default)."""
    environ = os.environ if environ is None else environ
    return read_providers(environ.get, debug=debug)


def socialaccount_apps(providers: Iterable[Provider]) -> list[dict]:
    """allauth's ``SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"]`` for ``providers``."""
    return [
        {
            "provider_id": provider.name,
            "name": provider.label,
            "client_id": provider.client_id,
            "secret": provider.client_secret,
            "settings": {
                "server_url": provider.issuer,
                # Ask for a verified address; ``amr`` comes in the ID token.
                "scope": ["openid", "profile", "email"],
                "oauth_pkce_enabled": True,
            },
        }
        for provider in providers
    ]


def provider_origins(providers: Iterable[Provider]) -> list[str]:
    """The origins the browser is sent to for signing in (Content-Security-Policy form-action)."""
    origins = []
    for provider in providers:
        parts = urlsplit(provider.issuer)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins


def configured() -> tuple[Provider, ...]:
    """The providers of the running settings."""
    from django.conf import settings

    return tuple(getattr(settings, "TELECONSULT_OIDC_PROVIDERS", ()))


def provider_named(name: str) -> Provider | None:
    return next((provider for provider in configured() if provider.name == name), None)
