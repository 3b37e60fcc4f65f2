"""Signing in with an identity provider, through allauth's own social-login flow from the point
where the provider's claims have come back (the browser round trip against a real provider is
tests/e2e/test_oidc_sign_in.py): who is signed in, where a new clinician lands, and the
second-factor rule (the provider's ``amr``, else the portal's own factor)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.core import context
from allauth.mfa.totp.internal.auth import TOTP
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.internal.flows.login import complete_login
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages import get_messages
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import RequestFactory
from django.urls import reverse

from accounts.mfa import PROVIDER_MFA_SESSION_KEY
from accounts.models import Membership, Organization, User
from accounts.oidc import socialaccount_apps
from tests.oidc.keys import make_provider

pytestmark = pytest.mark.django_db

ISSUER = "https://sso.hospital.example"


@pytest.fixture
def hospital(settings):
    provider = make_provider(issuer=ISSUER)
    settings.TELECONSULT_OIDC_PROVIDERS = (provider,)
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": socialaccount_apps([provider])}}
    return provider


def claims(**overrides) -> dict:
    values = {
        "iss": ISSUER,
        "sub": "staff-42",
        "email": "new.doctor@example.com",
        "email_verified": True,
        "name": "Dr New\nDoctor",
        "amr": ["pwd"],
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def sign_in_with(hospital, client, **overrides):
    """Hand allauth the provider's answer for a browser session; the response it gives."""
    request = RequestFactory().get("/accounts/oidc/hospital/login/callback/")
    SessionMiddleware(lambda r: None).process_request(request)
    if client.cookies.get("sessionid"):
        request.session = client.session
    AuthenticationMiddleware(lambda r: None).process_request(request)
    MessageMiddleware(lambda r: None).process_request(request)
    with context.request_context(request):
        provider = get_adapter(request).get_provider(request, "hospital")
        data = claims(**overrides)
        sociallogin = provider.sociallogin_from_response(request, {"id_token": data, "userinfo": data})
        sociallogin.state = {"process": "login"}
        response = complete_login(request, sociallogin)
    request.session.save()
    client.cookies["sessionid"] = request.session.session_key
    request.messages_list = [str(m) for m in get_messages(request)]
    return request, response


def signed_in_user(request):
    pk = request.session.get(SESSION_KEY)
    return User.objects.get(pk=pk) if pk else None


def test_a_new_physician_joins_the_providers_practice_and_can_work(hospital, client):
    request, response = sign_in_with(hospital, client)
    user = signed_in_user(request)
    assert user is not None and user.email == "new.doctor@example.com"
    assert user.role == "physician"
    assert user.name == "Dr New Doctor"  # one line
    assert not user.has_usable_password()
    practice = Organization.objects.get(name="General Hospital")
    assert Membership.objects.filter(user=user, practice=practice, role="clinician").exists()
    assert user.has_clinical_access
    assert EmailAddress.objects.get(user=user).verified
    assert SocialAccount.objects.filter(user=user, provider="hospital", uid="staff-42").exists()


def test_a_new_specialist_joins_but_waits_for_approval(settings, hospital, client):
    settings.TELECONSULT_OIDC_PROVIDERS = (make_provider(issuer=ISSUER, role="specialist"),)
    request, _ = sign_in_with(hospital, client)
    user = signed_in_user(request)
    assert user.role == "specialist"
    assert user.practice_ids()
    assert not user.specialist_profile.is_approved
    assert not user.may_take_consults


def test_an_existing_account_is_found_by_its_verified_address(hospital, client, physician):
    practices = list(physician.practice_ids())
    request, _ = sign_in_with(hospital, client, email="Owner@Example.com")
    assert signed_in_user(request) == physician
    assert User.objects.filter(email__iexact="owner@example.com").count() == 1
    physician.forget_practices()
    assert physician.practice_ids() == practices  # an existing account keeps its practices
    assert SocialAccount.objects.filter(user=physician, provider="hospital").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email_verified": False}, "has not verified your email address"),
        ({"email": "owner@elsewhere.example"}, "signs in addresses at example.com only"),
        ({"email": None}, "did not tell us your email address"),
    ],
)
def test_claims_that_break_the_rules_sign_nobody_in(hospital, client, physician, overrides, message):
    users = User.objects.count()
    request, response = sign_in_with(hospital, client, **overrides)
    assert signed_in_user(request) is None
    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    assert any(message in text for text in request.messages_list), request.messages_list
    assert User.objects.count() == users


def test_an_address_of_another_domain_does_not_reach_an_existing_account(hospital, client):
    other = User.objects.create_user("doctor@elsewhere.example", role="physician")
    EmailAddress.objects.create(user=other, email=other.email, verified=True, primary=True)
    request, _ = sign_in_with(hospital, client, email=other.email)
    assert signed_in_user(request) is None
    assert not SocialAccount.objects.filter(user=other).exists()


# -- the second factor -------------------------------------------------------------------------------


@pytest.fixture
def mfa_required(settings):
    settings.TELECONSULT_MFA_REQUIRED = True


def test_provider_mfa_satisfies_the_portals_rule_for_this_session(hospital, client, mfa_required, physician):
    request, _ = sign_in_with(hospital, client, email=physician.email, amr=["pwd", "otp"])
    assert signed_in_user(request) == physician
    assert request.session[PROVIDER_MFA_SESSION_KEY] == str(physician.pk)
    assert client.get(reverse("home")).status_code == 200
    assert client.get("/api/v1/me/").status_code == 200


def test_without_provider_mfa_the_portal_asks_for_its_own_second_factor(hospital, client, mfa_required, physician):
    request, _ = sign_in_with(hospital, client, email=physician.email, amr=["pwd"])
    assert signed_in_user(request) == physician
    assert PROVIDER_MFA_SESSION_KEY not in request.session
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")


def test_an_account_with_a_portal_factor_is_asked_for_its_code_unless_the_provider_did_mfa(hospital, client, physician):
    from allauth.mfa.totp.internal.auth import generate_totp_secret

    TOTP.activate(physician, generate_totp_secret())
    request, response = sign_in_with(hospital, client, email=physician.email, amr=["pwd"])
    assert signed_in_user(request) is None
    assert response["Location"] == reverse("mfa_authenticate")

    client.cookies.clear()
    request, response = sign_in_with(hospital, client, email=physician.email, amr=["mfa"])
    assert signed_in_user(request) == physician


def test_a_password_sign_in_does_not_inherit_an_earlier_provider_mfa(
    hospital, client, mfa_required, physician, password
):
    sign_in_with(hospital, client, email=physician.email, amr=["hwk"])
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("account_logout"))
    client.post(reverse("account_login"), {"login": physician.email, "password": password})
    assert PROVIDER_MFA_SESSION_KEY not in client.session
    assert client.get(reverse("home"))["Location"] == reverse("mfa_activate_totp")


def test_login_page_shows_a_button_per_provider(hospital, client):
    page = client.get(reverse("account_login")).content.decode()
    assert "Sign in with General Hospital" in page
    assert 'action="/accounts/oidc/hospital/login/?process=login"' in page
