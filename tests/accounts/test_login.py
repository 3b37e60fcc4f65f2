"""The sign-in form: errors, allauth's rate limits, and signing out."""

from __future__ import annotations

from django.urls import reverse


def post_login(client, email, password):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_sign_in_goes_home(client, physician, password):
    response = post_login(client, physician.email, password)
    assert response["Location"] == reverse("home")


def test_wrong_password_is_a_form_error(client, physician):
    response = post_login(client, physician.email, "not-the-password")
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_repeated_failures_are_rate_limited_by_allauth(client, physician, password):
    for _ in range(5):
        post_login(client, physician.email, "not-the-password")
    response = post_login(client, physician.email, password)
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_out_ends_the_session(client, physician, password):
    post_login(client, physician.email, password)
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_signed_in_layout_shows_user_role_and_sign_out(client, specialist, password):
    post_login(client, specialist.email, password)
    html = client.get(reverse("home")).content.decode()
    assert "Dr Specialist" in html
    assert "role-specialist" in html
    assert "Sign out" in html
