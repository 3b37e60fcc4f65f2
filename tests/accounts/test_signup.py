"""Sign-up for patients and physicians, with mandatory email verification."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import PhysicianProfile, Role, User

GOOD_PASSWORD = "quiet-harbour-lantern-42"


def signup(client, **overrides):
    data = {
        "email": "newperson@example.com",
        "name": "New Person",
        "role": "patient",
        "institution": "",
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
    }
    data.update(overrides)
    return client.post(reverse("account_signup"), data)


def confirmation_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_patient_signs_up_and_must_verify_email_before_signing_in(client, db):
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="newperson@example.com")
    assert user.role == Role.PATIENT and user.name == "New Person"
    assert not EmailAddress.objects.get(user=user).verified
    assert "_auth_user_id" not in client.session

    # Signing in before confirming only re-sends the confirmation.
    response = client.post(reverse("account_login"), {"login": user.email, "password": GOOD_PASSWORD})
    assert response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session

    link = confirmation_link(mail.outbox[0])
    assert client.get(link).status_code == 200  # a page with a button: links in mail scanners do not confirm
    assert not EmailAddress.objects.get(user=user).verified
    assert client.post(link).status_code == 302
    assert EmailAddress.objects.get(user=user).verified

    response = client.post(reverse("account_login"), {"login": user.email, "password": GOOD_PASSWORD})
    assert response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


def test_physician_signup_records_institution(client, db):
    response = signup(client, role="physician", institution="St Elsewhere")
    assert response.status_code == 302
    user = User.objects.get(email="newperson@example.com")
    assert user.role == Role.PHYSICIAN
    assert PhysicianProfile.objects.get(user=user).institution == "St Elsewhere"


def test_physician_without_institution_gets_form_error(client, db):
    response = signup(client, role="physician")
    assert response.status_code == 200
    assert "hospital or practice" in response.content.decode()
    assert not User.objects.filter(email="newperson@example.com").exists()


@pytest.mark.parametrize("role", ["specialist", "admin"])
def test_nobody_signs_up_as_specialist_or_admin(client, db, role):
    response = signup(client, role=role)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not User.objects.filter(email="newperson@example.com").exists()


def test_taken_email_is_refused_with_a_form_error(client, physician):
    response = signup(client, email=physician.email)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email=physician.email).count() == 1


def test_taken_email_in_other_case_is_refused(client, physician):
    response = signup(client, email=physician.email.upper())
    assert response.status_code == 200
    assert User.objects.filter(email__iexact=physician.email).count() == 1


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("84736251948", "entirely numeric"),
    ],
)
def test_weak_password_is_refused_with_the_reason(client, db, password, message):
    response = signup(client, password1=password, password2=password)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(email="newperson@example.com").exists()


def test_mismatched_passwords_are_refused(client, db):
    response = signup(client, password2="something-else-entirely")
    assert response.status_code == 200
    assert "same password" in response.content.decode()


def test_missing_name_is_a_form_error(client, db):
    response = signup(client, name="")
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def test_signup_form_errors_render_without_inline_script(client, db):
    from tests.accounts.test_pages import assert_clean_page

    assert_clean_page(signup(client, password1="short1", password2="short1"))


def test_specialist_made_by_admin_takes_consults_only_once_approved(specialist):
    profile = specialist.specialist_profile
    profile.approved_at = None
    profile.save()
    specialist.refresh_from_db()
    assert not specialist.may_take_consults
    profile.approve(by=None)
    specialist.refresh_from_db()
    assert specialist.may_take_consults


def test_password_reset_does_not_reveal_whether_an_address_has_an_account(client, physician):
    known = client.post(reverse("account_reset_password"), {"email": physician.email})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("account_reset_password_done")


def test_password_reset_link_sets_a_new_password(client, physician):
    client.post(reverse("account_reset_password"), {"email": physician.email})
    match = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    response = client.get(match.group(1), follow=True)
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else match.group(1)
    response = client.post(form_url, {"password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 302
    physician.refresh_from_db()
    assert physician.check_password(GOOD_PASSWORD)


def test_password_change_rejects_weak_password(client, physician, password):
    client.post(reverse("account_login"), {"login": physician.email, "password": password})
    response = client.post(
        reverse("account_change_password"), {"oldpassword": password, "password1": "short1", "password2": "short1"}
    )
    assert response.status_code == 200
    assert "too short" in response.content.decode()


def test_signup_form_asks_name_first_and_passwords_last(client, db):
    html = client.get(reverse("account_signup")).content.decode()
    positions = [html.index(f'name="{field}"') for field in ("name", "email", "role", "institution", "password1")]
    assert positions == sorted(positions)
