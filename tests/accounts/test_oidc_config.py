"""Identity providers' configuration (read and checked when the settings load) and the rules a
provider's claims must meet: verified address, allowed domain, second factor from ``amr``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.oidc import (
    ClaimsRefusedError,
    amr_shows_mfa,
    provider_origins,
    providers_from_environment,
    socialaccount_apps,
    verified_email,
)


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "hospital-secret"
    path.write_text("s3cret-from-file\n")
    return path


@pytest.fixture
def environ(secret_file):
    return {
        "TELECONSULT_OIDC_PROVIDERS": "hospital, clinic",
        "TELECONSULT_OIDC_HOSPITAL_ISSUER": "https://sso.hospital.example/realms/staff",
        "TELECONSULT_OIDC_HOSPITAL_CLIENT_ID": "teleconsult",
        "TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE": str(secret_file),
        "TELECONSULT_OIDC_HOSPITAL_PRACTICE": "General Hospital",
        "TELECONSULT_OIDC_HOSPITAL_ROLE": "Specialist",
        "TELECONSULT_OIDC_HOSPITAL_EMAIL_DOMAINS": "hospital.example, @Radiology.Hospital.Example",
        "TELECONSULT_OIDC_HOSPITAL_NAME": "St Mary's staff login",
        "TELECONSULT_OIDC_HOSPITAL_AUDIENCE": "api://teleconsult",
        "TELECONSULT_OIDC_CLINIC_ISSUER": "https://login.clinic.example/tenant/v2.0",
        "TELECONSULT_OIDC_CLINIC_CLIENT_ID": "abc",
        "TELECONSULT_OIDC_CLINIC_CLIENT_SECRET_FILE": str(secret_file),
        "TELECONSULT_OIDC_CLINIC_PRACTICE": "Clinic",
        "TELECONSULT_OIDC_CLINIC_EMAIL_DOMAINS": "clinic.example",
    }


def test_no_providers_when_the_variable_is_unset():
    assert providers_from_environment({}) == ()
    assert providers_from_environment({"TELECONSULT_OIDC_PROVIDERS": " "}) == ()


def test_two_providers_are_read_with_their_secret_from_the_file(environ):
    hospital, clinic = providers_from_environment(environ)
    assert hospital.name == "hospital"
    assert hospital.issuer == "https://sso.hospital.example/realms/staff"
    assert hospital.client_secret == "s3cret-from-file"
    assert hospital.role == "specialist"
    assert hospital.email_domains == ("hospital.example", "radiology.hospital.example")
    assert hospital.label == "St Mary's staff login"
    assert hospital.audiences == ("teleconsult", "api://teleconsult")
    assert clinic.role == "physician"  # the default
    assert clinic.label == "Clinic"
    assert clinic.audiences == ("abc",)


def test_allauth_apps_and_the_sign_in_origins_follow_the_providers(environ):
    providers = providers_from_environment(environ)
    apps = socialaccount_apps(providers)
    assert [app["provider_id"] for app in apps] == ["hospital", "clinic"]
    assert apps[0]["settings"]["server_url"] == "https://sso.hospital.example/realms/staff"
    assert apps[0]["secret"] == "s3cret-from-file"
    assert provider_origins(providers) == ["https://sso.hospital.example", "https://login.clinic.example"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TELECONSULT_OIDC_HOSPITAL_ISSUER": ""}, "TELECONSULT_OIDC_HOSPITAL_ISSUER must be set"),
        ({"TELECONSULT_OIDC_HOSPITAL_ISSUER": "sso.hospital.example"}, "issuer URL"),
        ({"TELECONSULT_OIDC_HOSPITAL_ISSUER": "http://sso.hospital.example"}, "must use https"),
        ({"TELECONSULT_OIDC_HOSPITAL_CLIENT_ID": ""}, "TELECONSULT_OIDC_HOSPITAL_CLIENT_ID must be set"),
        ({"TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "cannot read '/nonexistent/secret'"),
        (
            {"TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE": ""},
            "TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE must name",
        ),
        ({"TELECONSULT_OIDC_HOSPITAL_PRACTICE": ""}, "TELECONSULT_OIDC_HOSPITAL_PRACTICE must be set"),
        ({"TELECONSULT_OIDC_HOSPITAL_ROLE": "admin"}, "ROLE must be one of physician, specialist, not 'admin'"),
        ({"TELECONSULT_OIDC_HOSPITAL_EMAIL_DOMAINS": ""}, "EMAIL_DOMAINS must be set"),
        ({"TELECONSULT_OIDC_HOSPITAL_EMAIL_DOMAINS": "hospital.example,not a domain"}, "'not a domain'"),
        ({"TELECONSULT_OIDC_PROVIDERS": "hospital,Bad Name"}, "'bad name' is not a provider name"),
        ({"TELECONSULT_OIDC_PROVIDERS": "hospital,HOSPITAL"}, "names a provider twice"),
        ({"TELECONSULT_OIDC_CLINIC_ISSUER": "https://sso.hospital.example/realms/staff"}, "the same issuer"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(environ, change, message):
    environ.update(change)
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        providers_from_environment(environ)


def test_an_empty_secret_file_is_refused(environ, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    environ["TELECONSULT_OIDC_HOSPITAL_CLIENT_SECRET_FILE"] = str(empty)
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        providers_from_environment(environ)


def test_http_issuer_is_accepted_on_loopback_or_with_debug(environ):
    environ["TELECONSULT_OIDC_HOSPITAL_ISSUER"] = "http://127.0.0.1:9000"
    assert providers_from_environment(environ)[0].issuer == "http://127.0.0.1:9000"
    environ["TELECONSULT_OIDC_HOSPITAL_ISSUER"] = "http://sso.internal"
    assert providers_from_environment(environ, debug=True)[0].issuer == "http://sso.internal"


def test_settings_refuse_to_load_with_a_bad_provider(tmp_path):
    """Start-up stops with the message, rather than the first sign-in failing."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELECONSULT_OIDC", "PYTEST_", "DJANGO_SETTINGS"))
    }
    env.update(
        DEBUG="1",
        TELECONSULT_DATA_DIR=str(tmp_path),
        TELECONSULT_OIDC_PROVIDERS="hospital",
        TELECONSULT_OIDC_HOSPITAL_ISSUER="https://sso.hospital.example",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import teleconsult.settings"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: TELECONSULT_OIDC_HOSPITAL_CLIENT_ID must be set" in result.stderr


# -- the claims' rules ---------------------------------------------------------------------------


@pytest.fixture
def hospital(environ):
    return providers_from_environment(environ)[0]


def test_a_verified_address_of_an_allowed_domain_is_accepted(hospital):
    assert (
        verified_email(hospital, {"email": " Ann@Hospital.Example ", "email_verified": True}) == "ann@hospital.example"
    )
    assert verified_email(hospital, {"email": "bo@radiology.hospital.example", "email_verified": "true"})


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({}, "did not tell us your email address"),
        ({"email": "ann@hospital.example"}, "has not verified your email address"),
        ({"email": "ann@hospital.example", "email_verified": False}, "has not verified"),
        ({"email": "ann@hospital.example", "email_verified": "false"}, "has not verified"),
        ({"email": "ann@gmail.com", "email_verified": True}, "signs in addresses at hospital.example"),
        # Neither a look-alike nor a subdomain that was not listed.
        ({"email": "ann@evilhospital.example", "email_verified": True}, "not ann@evilhospital.example"),
        ({"email": "ann@x.hospital.example", "email_verified": True}, "not ann@x.hospital.example"),
        ({"email": "ann@hospital.example@gmail.com", "email_verified": True}, "signs in addresses at"),
        ({"email": ["ann@hospital.example"], "email_verified": True}, "did not tell us"),
    ],
)
def test_claims_that_cannot_speak_for_an_account_are_refused(hospital, claims, message):
    with pytest.raises(ClaimsRefusedError, match=message):
        verified_email(hospital, claims)


@pytest.mark.parametrize(
    ("amr", "mfa"),
    [
        (["pwd", "otp"], True),
        (["mfa"], True),
        (["hwk"], True),
        (["sms"], True),
        (["pwd"], False),
        (["pwd", "kba"], False),
        ("mfa", True),
        ([], False),
        (None, False),
        ({"mfa": True}, False),
    ],
)
def test_amr_says_whether_a_second_factor_was_used(amr, mfa):
    assert amr_shows_mfa(amr) is mfa
