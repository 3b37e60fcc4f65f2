"""POST/DELETE /api/v1/auth/token/ and GET /api/v1/me/."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from allauth.account.models import EmailAddress

from accounts.api import WRONG_CREDENTIALS
from tests.accounts.conftest import recovery_codes, totp_code
from tests.factories import UserFactory

TOKEN_URL = "/api/v1/auth/token/"
ME_URL = "/api/v1/me/"


def post_token(client, ip="10.0.0.1", **body):
    return client.post(TOKEN_URL, body, format="json", REMOTE_ADDR=ip)


def test_good_login_returns_token_that_me_accepts(api_client, physician, password):
    response = post_token(api_client, email=physician.email, password=password)
    assert response.status_code == 200
    me = api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert me.status_code == 200
    practice = physician.default_practice
    assert me.json() == {
        "id": physician.pk,
        "email": physician.email,
        "name": "Dr Owner",
        "role": "physician",
        "practices": [{"id": practice.pk, "name": practice.name, "role": "admin"}],
        "default_practice": practice.pk,
    }


def test_email_is_case_insensitive(api_client, physician, password):
    assert post_token(api_client, email="OWNER@Example.com", password=password).status_code == 200


def test_wrong_password_is_400_naming_password(api_client, physician):
    response = post_token(api_client, email=physician.email, password="not-the-password")
    assert response.status_code == 400
    assert "password" in response.json()
    assert "token" not in response.json()


def test_unknown_email_is_the_same_400_as_a_wrong_password(api_client, db):
    response = post_token(api_client, email="nobody@example.com", password="whatever-password")
    assert response.status_code == 400
    assert response.json()["detail"] == WRONG_CREDENTIALS


@pytest.mark.parametrize("missing", ["email", "password"])
def test_missing_field_is_400_naming_the_field(api_client, physician, password, missing):
    body = {"email": physician.email, "password": password}
    del body[missing]
    response = post_token(api_client, **body)
    assert response.status_code == 400
    assert missing in response.json()
    assert missing in response.json()["detail"]


def test_malformed_json_is_400(api_client, db):
    response = api_client.post(TOKEN_URL, data='{"email": "a@b.c", ', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_invalid_email_is_400_naming_email(api_client, db):
    response = post_token(api_client, email="not-an-email", password="x")
    assert response.status_code == 400
    assert "email" in response.json()


def test_unconfirmed_address_answers_as_a_wrong_password_does(api_client, physician, password):
    """The right password for an unconfirmed address is not confirmed as right."""
    EmailAddress.objects.filter(user=physician).update(verified=False)
    right = post_token(api_client, email=physician.email, password=password)
    wrong = post_token(api_client, email=physician.email, password="not-the-password")
    assert right.status_code == wrong.status_code == 400
    assert right.json() == wrong.json() == {"detail": WRONG_CREDENTIALS, "password": [WRONG_CREDENTIALS]}


def test_inactive_user_gets_no_token(api_client, physician, password):
    physician.is_active = False
    physician.save()
    assert post_token(api_client, email=physician.email, password=password).status_code == 400


def test_mfa_user_without_code_is_400_naming_code(api_client, mfa_physician, password):
    response = post_token(api_client, email=mfa_physician.email, password=password)
    assert response.status_code == 400
    assert "code" in response.json()
    assert '"code"' in response.json()["detail"]


def test_mfa_user_with_totp_code_gets_token(api_client, mfa_physician, password):
    code = totp_code(mfa_physician.totp_secret)
    response = post_token(api_client, email=mfa_physician.email, password=password, code=code)
    assert response.status_code == 200, response.json()


def test_totp_code_with_spaces_is_accepted(api_client, mfa_physician, password):
    code = totp_code(mfa_physician.totp_secret)
    response = post_token(api_client, email=mfa_physician.email, password=password, code=f"{code[:3]} {code[3:]}")
    assert response.status_code == 200


def test_wrong_totp_code_is_400_naming_code(api_client, mfa_physician, password):
    code = totp_code(mfa_physician.totp_secret)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    response = post_token(api_client, email=mfa_physician.email, password=password, code=wrong)
    assert response.status_code == 400
    assert "code" in response.json()


def test_reused_totp_code_is_refused(api_client, mfa_physician, password):
    code = totp_code(mfa_physician.totp_secret)
    assert post_token(api_client, email=mfa_physician.email, password=password, code=code).status_code == 200
    again = post_token(api_client, email=mfa_physician.email, password=password, code=code)
    assert again.status_code == 400
    assert "already used" in again.json()["code"][0]


def test_recovery_code_works_once(api_client, mfa_physician, password):
    code = recovery_codes(mfa_physician)[0]
    assert post_token(api_client, email=mfa_physician.email, password=password, code=code).status_code == 200
    again = post_token(api_client, email=mfa_physician.email, password=password, code=code)
    assert again.status_code == 400
    assert "code" in again.json()
    assert code not in recovery_codes(mfa_physician)


def test_mfa_required_user_without_mfa_is_told_to_set_it_up(api_client, physician, password, settings):
    settings.TELECONSULT_MFA_REQUIRED = True
    response = post_token(api_client, email=physician.email, password=password)
    assert response.status_code == 403
    assert "two-factor" in response.json()["detail"]


def test_patient_gets_token_without_mfa_even_when_required(api_client, patient_user, password, settings):
    settings.TELECONSULT_MFA_REQUIRED = True
    assert post_token(api_client, email=patient_user.email, password=password).status_code == 200


def test_ten_failures_lock_the_account_for_15_minutes_from_any_address(api_client, physician, password):
    start = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        for attempt in range(10):
            response = post_token(api_client, ip=f"10.1.0.{attempt}", email=physician.email, password="wrong-password")
            assert response.status_code == 400
        # The right password from a fresh address is refused too: the account is locked.
        assert post_token(api_client, ip="10.9.9.9", email=physician.email, password=password).status_code == 429
        traveller.shift(dt.timedelta(minutes=14))
        assert post_token(api_client, ip="10.9.9.9", email=physician.email, password=password).status_code == 429
        traveller.shift(dt.timedelta(minutes=2))
        assert post_token(api_client, ip="10.9.9.9", email=physician.email, password=password).status_code == 200


def test_ten_failures_lock_the_address_for_every_account(api_client, physician, colleague, password):
    start = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        for attempt in range(10):
            post_token(api_client, ip="10.2.0.1", email=f"guess{attempt}@example.com", password="wrong-password")
        locked = post_token(api_client, ip="10.2.0.1", email=colleague.email, password=password)
        assert locked.status_code == 429
        assert "Too many" in locked.json()["detail"]
        # Another address is not affected.
        assert post_token(api_client, ip="10.2.0.2", email=colleague.email, password=password).status_code == 200
        traveller.shift(dt.timedelta(minutes=16))
        assert post_token(api_client, ip="10.2.0.1", email=colleague.email, password=password).status_code == 200


def test_nine_failures_do_not_lock(api_client, physician, password):
    for _ in range(9):
        post_token(api_client, email=physician.email, password="wrong-password")
    assert post_token(api_client, email=physician.email, password=password).status_code == 200


def test_wrong_mfa_codes_count_as_failures(api_client, mfa_physician, password):
    for _ in range(10):
        post_token(api_client, email=mfa_physician.email, password=password, code="000000")
    code = totp_code(mfa_physician.totp_secret)
    assert post_token(api_client, email=mfa_physician.email, password=password, code=code).status_code == 429


def test_delete_revokes_the_token(api_client, physician, password):
    token = post_token(api_client, email=physician.email, password=password).json()["token"]
    response = api_client.delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 204
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Token {token}").status_code == 401


def test_delete_revokes_only_the_callers_token(api_client, physician, colleague, password):
    mine = post_token(api_client, email=physician.email, password=password).json()["token"]
    theirs = post_token(api_client, email=colleague.email, password=password).json()["token"]
    api_client.delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Token {mine}")
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Token {theirs}").status_code == 200


def test_delete_without_token_is_401(api_client, db):
    response = api_client.delete(TOKEN_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_delete_revokes_a_token_sent_as_bearer(api_client, physician, password):
    token = post_token(api_client, email=physician.email, password=password).json()["token"]
    assert api_client.delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 204
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.parametrize("key", ["abc\x00def", "abc\x00", "a" * 65, "abc%def", "ab;cd"])
def test_a_key_that_cannot_be_a_token_is_401_without_a_query(api_client, db, key, django_assert_num_queries):
    for scheme in ("Token", "Bearer"):
        with django_assert_num_queries(0):
            response = api_client.get(ME_URL, HTTP_AUTHORIZATION=f"{scheme} {key}")
        assert response.status_code == 401


def test_delete_with_unknown_token_is_401(api_client, db):
    response = api_client.delete(TOKEN_URL, HTTP_AUTHORIZATION="Token 0123456789abcdef")
    assert response.status_code == 401


def test_unauthenticated_me_is_401(api_client, db):
    assert api_client.get(ME_URL).status_code == 401


def test_me_with_garbage_token_is_401(api_client, db):
    assert api_client.get(ME_URL, HTTP_AUTHORIZATION="Token nope").status_code == 401


def test_createuser_account_gets_token_and_me_answers_role(api_client, db):
    from django.core.management import call_command

    call_command("createuser", "new-spec@example.com", "--role", "specialist", "--password", "a-long-new-password")
    response = post_token(api_client, email="new-spec@example.com", password="a-long-new-password")
    assert response.status_code == 200
    me = api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert me.json()["role"] == "specialist"


def test_me_for_user_without_name_shows_email(api_client, db, password):
    user = UserFactory(role="patient", email="nameless@example.com", name="")
    response = post_token(api_client, email=user.email, password=password)
    me = api_client.get(ME_URL, HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert me.json()["name"] == "nameless@example.com"


def test_simultaneous_wrong_passwords_never_check_more_than_the_limit(db, physician, settings, monkeypatch):
    """Each try is counted before its password is checked: a burst far past the limit checks the
    limit's worth and answers the rest 429 unchecked."""
    from django.test import Client

    from accounts import api
    from tests.concurrency import run_together

    settings.TELECONSULT_TOKEN_FAILURE_LIMIT = 5
    checked = []

    def counting_authenticate(request, **credentials):
        checked.append(credentials["password"])
        return None  # wrong, without touching the database from the threads

    monkeypatch.setattr(api, "authenticate", counting_authenticate)

    def guess(n):
        return lambda: post_token(Client(), email=physician.email, password=f"guess-{n}").status_code

    answers = run_together([guess(n) for n in range(25)])
    assert len(checked) <= 5
    assert answers.count(429) >= 20 and set(answers) <= {400, 429}


def test_a_right_password_gives_its_try_back(api_client, physician, password, settings):
    settings.TELECONSULT_TOKEN_FAILURE_LIMIT = 3
    for _ in range(2):
        assert post_token(api_client, email=physician.email, password="wrong").status_code == 400
    for _ in range(3):  # right ones do not use up the tries
        assert post_token(api_client, email=physician.email, password=password).status_code == 200
    assert post_token(api_client, email=physician.email, password="wrong").status_code == 400
    assert post_token(api_client, email=physician.email, password=password).status_code == 429
