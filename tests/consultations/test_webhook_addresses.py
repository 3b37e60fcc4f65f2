"""The webhook guard's view of addresses: IPv6 forms that carry an IPv4 address are judged by the
IPv4 address they reach, reserved ranges are refused, and a name that does not resolve in time is
a clear 400 rather than a request held open."""

from __future__ import annotations

import socket
import threading

import pytest

from consultations.models import WebhookSubscription
from consultations.webhooks import targets

API = "/api/v1/webhooks/"


@pytest.fixture
def no_allowed_networks(settings):
    settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://[64:ff9b::7f00:1]/hook", "leads to 127.0.0.1, a loopback address"),  # NAT64
        ("https://[64:ff9b:1::808:808]/hook", "a local-use NAT64 address"),
        ("https://[::a00:1]/hook", "leads to 10.0.0.1, a private network address"),  # IPv4-compatible
        ("https://[2002:7f00:1::1]/hook", "leads to 127.0.0.1"),  # 6to4
        # Teredo: server 65.54.227.120, client 10.0.0.1 (stored with its bits flipped)
        ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", "leads to 10.0.0.1"),
        ("https://[::1:0:0:1]/hook", "a reserved address"),  # in ::/8, which Python 3.11 calls global
        ("https://[::ffff:0:a00:1]/hook", "a reserved address"),  # IPv4-translated (SIIT)
        ("https://[400::1]/hook", "a reserved address"),
        ("https://[fec0::1]/hook", "a site-local address"),
    ],
)
def test_addresses_that_reach_no_public_host_are_refused_with_the_reason(no_allowed_networks, url, words):
    with pytest.raises(targets.WebhookTargetError) as refused:
        targets.check(url)
    assert refused.value.code == "webhook_url_not_public"
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("public", "private"),
    [
        ("64:ff9b::808:808", "64:ff9b::a00:1"),  # NAT64
        ("2002:808:808::1", "2002:a00:1::1"),  # 6to4
        ("::808:808", "::a00:1"),  # IPv4-compatible
    ],
)
def test_the_ipv4_address_an_ipv6_form_carries_decides(no_allowed_networks, public, private):
    assert targets.check(f"https://[{public}]/hook").address == public
    with pytest.raises(targets.WebhookTargetError):
        targets.check(f"https://[{private}]/hook")


def test_an_allowed_network_admits_the_ipv4_address_an_ipv6_form_carries(settings):
    settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert targets.check("https://[64:ff9b::a14:1]/hook").address == "64:ff9b::a14:1"
    with pytest.raises(targets.WebhookTargetError):
        targets.check("https://[64:ff9b::a15:1]/hook")


@pytest.fixture
def silent_name_server(monkeypatch, settings):
    """getaddrinfo as it behaves when the name servers never answer: it blocks (here until the
    test ends, so the lookup thread is freed)."""
    settings.TELECONSULT_WEBHOOK_DNS_TIMEOUT = 0.2
    done = threading.Event()

    def hanging_getaddrinfo(*args, **kwargs):
        done.wait(3)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    yield
    done.set()


def test_a_name_that_does_not_resolve_in_time_is_a_clear_400(silent_name_server, auth_client, physician):
    practice = physician.memberships.get(role="admin").practice
    response = auth_client(physician).post(
        API,
        {"url": "https://slow.example.org/hook", "events": ["report.signed"], "practice": practice.pk},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "webhook_url_unresolved"
    assert response.json()["field"] == "url"
    assert "could not be resolved within 0.2 seconds" in response.json()["detail"]
    assert not WebhookSubscription.objects.exists()
