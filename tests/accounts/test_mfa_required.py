"""RequireMFAMiddleware: staff roles set up a second factor before any other page."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from tests.accounts.conftest import totp_code


@pytest.fixture
def mfa_required(settings):
    settings.TELECONSULT_MFA_REQUIRED = True


def sign_in(client, user, password):
    response = client.post(reverse("account_login"), {"login": user.email, "password": password})
    assert response.status_code == 302
    return response


@pytest.mark.parametrize("who", ["physician", "specialist", "admin_user"])
def test_staff_role_without_mfa_is_sent_to_totp_setup(client, mfa_required, password, request, who):
    user = request.getfixturevalue(who)
    sign_in(client, user, password)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


def test_patient_is_not_asked_for_mfa(client, mfa_required, patient_user, password):
    sign_in(client, patient_user, password)
    assert client.get(reverse("home")).status_code == 200


def test_nothing_is_asked_when_policy_is_off(client, settings, physician, password):
    settings.TELECONSULT_MFA_REQUIRED = False
    sign_in(client, physician, password)
    assert client.get(reverse("home")).status_code == 200


def test_login_lands_on_setup_page_that_renders_without_loop(client, mfa_required, physician, password):
    response = client.post(reverse("account_login"), {"login": physician.email, "password": password}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("mfa_activate_totp")
    assert len(response.redirect_chain) <= 3
    assert "needs a second factor" in response.content.decode()


def test_admin_site_is_also_behind_mfa(client, mfa_required, admin_user, password):
    sign_in(client, admin_user, password)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


@pytest.mark.parametrize(
    "name",
    ["mfa_activate_totp", "mfa_index", "account_logout", "account_reauthenticate", "mfa_add_webauthn", "account_email"],
)
def test_pages_needed_for_setup_stay_reachable(client, mfa_required, physician, password, name):
    sign_in(client, physician, password)
    assert client.get(reverse(name)).status_code == 200


def test_sign_out_works_while_setup_is_pending(client, mfa_required, physician, password):
    sign_in(client, physician, password)
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_setup_after_reauthentication_timeout_asks_for_password_then_works(client, mfa_required, physician, password):
    start = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        sign_in(client, physician, password)
        traveller.shift(dt.timedelta(minutes=10))
        response = client.get(reverse("mfa_activate_totp"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_reauthenticate"))
        response = client.post(
            reverse("account_reauthenticate"), {"password": password, "next": reverse("mfa_activate_totp")}
        )
        assert response["Location"] == reverse("mfa_activate_totp")
        assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_setting_up_totp_lets_the_user_in_and_returns_to_where_they_were(client, mfa_required, physician, password):
    sign_in(client, physician, password)
    assert client.get("/admin/?from=mail")["Location"] == reverse("mfa_activate_totp")
    page = client.get(reverse("mfa_activate_totp"))
    secret = page.context["form"].secret
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response["Location"] == reverse("mfa_view_recovery_codes")
    codes = client.get(reverse("mfa_view_recovery_codes"))
    assert codes.status_code == 200
    assert 'href="/admin/?from=mail"' in codes.content.decode()
    assert client.get(reverse("home")).status_code == 200


def test_next_is_not_kept_for_other_hosts(client, mfa_required, physician, password):
    sign_in(client, physician, password)
    client.get("/%2Fevil.example.com/x")  # the path is //evil.example.com/x
    assert "mfa_setup_next" not in client.session


def test_user_with_passkey_only_is_let_in(client, mfa_required, physician, password):
    from allauth.mfa.models import Authenticator

    Authenticator.objects.create(user=physician, type=Authenticator.Type.WEBAUTHN, data={"name": "key"})
    client.force_login(physician)
    assert client.get(reverse("home")).status_code == 200


def test_session_api_call_without_mfa_is_403_json(client, mfa_required, physician, password):
    sign_in(client, physician, password)
    response = client.get("/api/v1/me/")
    assert response.status_code == 403
    assert response.json()["code"] == "mfa_setup_required"


def test_token_client_is_not_redirected(client, mfa_required, mfa_physician, password, api_client):
    code = totp_code(mfa_physician.totp_secret)
    token = api_client.post(
        "/api/v1/auth/token/", {"email": mfa_physician.email, "password": password, "code": code}, format="json"
    ).json()["token"]
    assert api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_static_files_are_served_while_setup_is_pending(client, mfa_required, physician, password):
    sign_in(client, physician, password)
    response = client.get("/static/js/mfa-webauthn.js")
    assert response.status_code == 200


def test_token_issued_before_the_policy_is_refused_until_mfa_is_set_up(api_client, settings, physician, password):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=physician)
    settings.TELECONSULT_MFA_REQUIRED = True
    response = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 401
    assert "two-factor" in response.json()["detail"]
    # The owner can still revoke it.
    assert api_client.delete("/api/v1/auth/token/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 204
    assert not Token.objects.filter(key=token.key).exists()


def _websocket_user(headers: list[tuple[bytes, bytes]]) -> str:
    """The user a WebSocket consumer sees after our authentication middleware."""
    from asgiref.sync import async_to_sync
    from channels.generic.websocket import JsonWebsocketConsumer
    from channels.testing import WebsocketCommunicator

    from accounts.websocket import TokenOrSessionAuthMiddleware

    class WhoAmI(JsonWebsocketConsumer):
        def connect(self):
            self.accept()
            user = self.scope["user"]
            self.send_json({"user": user.email if user.is_authenticated else "anonymous"})

    async def exchange():
        communicator = WebsocketCommunicator(TokenOrSessionAuthMiddleware(WhoAmI.as_asgi()), "/ws/x/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        message = await communicator.receive_json_from()
        await communicator.disconnect()
        return message["user"]

    return async_to_sync(exchange)()


def test_websocket_token_user_without_required_mfa_is_anonymous(transactional_db, settings):
    from rest_framework.authtoken.models import Token

    from tests.factories import UserFactory

    doctor = UserFactory(role="physician", email="ws.doc@example.com")
    patient = UserFactory(role="patient", email="ws.patient@example.com")
    doctor_token, patient_token = Token.objects.create(user=doctor), Token.objects.create(user=patient)

    settings.TELECONSULT_MFA_REQUIRED = False
    assert _websocket_user([(b"authorization", f"Token {doctor_token.key}".encode())]) == doctor.email
    settings.TELECONSULT_MFA_REQUIRED = True
    assert _websocket_user([(b"authorization", f"Token {doctor_token.key}".encode())]) == "anonymous"
    assert _websocket_user([(b"authorization", f"Token {patient_token.key}".encode())]) == patient.email


def test_websocket_session_user_without_required_mfa_is_anonymous(transactional_db, settings, client):
    from django.conf import settings as django_settings

    from tests.factories import UserFactory

    doctor = UserFactory(role="physician", email="ws.session@example.com")
    client.force_login(doctor)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"cookie", cookie.encode())]
    settings.TELECONSULT_MFA_REQUIRED = False
    assert _websocket_user(headers) == doctor.email
    settings.TELECONSULT_MFA_REQUIRED = True
    assert _websocket_user(headers) == "anonymous"
