"""Absolute links in emails use the address the portal is served at: TELECONSULT_BASE_URL when set,
else the request's address, and with DEBUG the last served address for emails sent by tasks."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import RequestFactory
from django.urls import reverse

from teleconsult import links

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_base_url(settings):
    cache.clear()
    settings.TELECONSULT_BASE_URL = ""
    settings.DEBUG = True


def urls_in(message) -> list[str]:
    return re.findall(r"https?://\S+", message.body)


def test_the_base_url_wins_when_set(settings):
    settings.TELECONSULT_BASE_URL = "https://portal.example.org"
    request = RequestFactory().get("/", HTTP_HOST="localhost:8123")
    assert links.absolute_url("/consults/3/", request) == "https://portal.example.org/consults/3/"
    assert links.absolute_url("/consults/3/") == "https://portal.example.org/consults/3/"


def test_without_it_the_requests_address_with_its_port():
    request = RequestFactory().get("/", HTTP_HOST="localhost:8123")
    assert links.absolute_url("/consults/3/", request) == "http://localhost:8123/consults/3/"


def test_in_debug_the_served_address_is_remembered_for_tasks(client):
    assert links.absolute_url("/x/") == "/x/"  # nothing served yet: a path, and a warning
    client.get("/", HTTP_HOST="localhost:8123")
    assert links.absolute_url("/x/") == "http://localhost:8123/x/"


def test_in_production_a_requests_address_is_never_remembered(client, settings):
    settings.DEBUG = False
    client.get("/", HTTP_HOST="localhost:8123")
    assert links.absolute_url("/x/") == "/x/"


def test_a_host_the_portal_does_not_answer_to_is_not_remembered(client):
    assert client.get("/", HTTP_HOST="evil.example.com").status_code == 400
    assert links.absolute_url("/x/") == "/x/"


def signup(client, email: str, **extra):
    password = "quiet-harbour-lantern-42"
    data = {"email": email, "name": "New Person", "role": "patient", "password1": password, "password2": password}
    return client.post(reverse("account_signup"), data, **extra)


def test_allauth_links_move_to_the_base_url(client, settings):
    settings.TELECONSULT_BASE_URL = "https://portal.example.org"
    signup(client, email="based@example.com")
    [link] = [u for u in urls_in(mail.outbox[-1]) if "/accounts/confirm-email/" in u]
    assert link.startswith("https://portal.example.org/accounts/confirm-email/")


def test_allauth_links_keep_the_requests_address_without_it(client):
    signup(client, email="served@example.com", HTTP_HOST="localhost:8123")
    [link] = [u for u in urls_in(mail.outbox[-1]) if "/accounts/confirm-email/" in u]
    assert link.startswith("http://localhost:8123/accounts/confirm-email/")


def test_colleague_invitation_links_to_where_the_requester_works(
    client, physician, specialist, colleague, django_capture_on_commit_callbacks
):
    from consultations import actions
    from tests.factories import ConsultFactory, make_study

    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    mail.outbox.clear()
    client.force_login(physician)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/consults/{consult.pk}/participants/",
            {"email": colleague.email},
            content_type="application/json",
            HTTP_HOST="localhost:8123",
        )
    assert response.status_code == 202, response.content
    [email] = [m for m in mail.outbox if m.to == [colleague.email] and "invitation" in m.subject.lower()]
    assert [u for u in urls_in(email) if "/consults/invitations/" in u][0].startswith("http://localhost:8123/")
