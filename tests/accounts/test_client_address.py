"""The client's address behind a reverse proxy: only the configured proxies are believed, and the one
address they saw is what the token endpoint's lockout counts, the access history keeps and allauth's
rate limits count (teleconsult/client_address.py)."""

from __future__ import annotations

import logging

import pytest
import requests
from allauth.account.adapter import get_adapter
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from studies import invitations
from studies.models import AccessEvent, Patient, Study
from teleconsult import client_address as client_address_module
from teleconsult import serve
from teleconsult.client_address import client_address, parse_address, resolve, trusted_proxies
from tests.studies.test_dicomweb_helpers import store_dataset

TOKEN_URL = "/api/v1/auth/token/"
PROXY = "127.0.0.1"  # the socket peer when nginx runs beside daphne
CLIENT = "203.0.113.7"  # the address nginx saw and appended ($proxy_add_x_forwarded_for)
OTHER_CLIENT = "203.0.113.8"
GARBAGE_CLIENT = "203.0.113.9"

GARBAGE = [
    "garbage",
    "999.1.1.1",
    "<script>alert(1)</script>",
    ",,, ,",
    "1.2.3.4.5, ::::",
    "unknown, _hidden",
    "203.0.113.7%, [::1",
    "x" * 2000,
]


@pytest.fixture(autouse=True)
def fresh_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()


def forwarded(*hops: str) -> str:
    return ", ".join(hops)


# --- the rule -----------------------------------------------------------------------------------


def test_with_no_proxy_configured_the_header_is_ignored():
    assert resolve("198.51.100.20", forwarded("10.9.9.9", CLIENT), trusted_proxies("")) == "198.51.100.20"


@pytest.mark.parametrize("setting", ["1", "127.0.0.1", "127.0.0.0/8, 10.0.0.0/8", "::ffff:127.0.0.1/128"])
def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(setting):
    # The client wrote the first entry itself; nginx appended the address it saw.
    assert resolve(PROXY, forwarded("6.6.6.6", CLIENT), trusted_proxies(setting)) == CLIENT
    assert resolve(PROXY, CLIENT, trusted_proxies(setting)) == CLIENT
    assert resolve(PROXY, None, trusted_proxies(setting)) == PROXY  # the proxy's own health check


def test_two_hops_by_count_and_by_ranges():
    chain = forwarded("6.6.6.6", CLIENT, "10.0.0.5")  # a load balancer (10.0.0.5) in front of nginx
    assert resolve(PROXY, chain, trusted_proxies("2")) == CLIENT
    assert resolve(PROXY, chain, trusted_proxies("127.0.0.1, 10.0.0.0/8")) == CLIENT
    # Only nginx trusted: the load balancer is the client as far as the portal can tell.
    assert resolve(PROXY, chain, trusted_proxies("127.0.0.1")) == "10.0.0.5"


def test_with_ranges_configured_a_peer_outside_them_is_not_trusted():
    trusted = trusted_proxies("10.0.0.0/8")
    assert resolve("198.51.100.20", forwarded("10.1.1.1", CLIENT), trusted) == "198.51.100.20"
    assert resolve("10.0.0.2", forwarded("6.6.6.6", CLIENT), trusted) == CLIENT


def test_a_client_cannot_walk_past_the_first_address_that_is_not_a_proxy():
    # The forged entries look like proxies, but nginx's entry (the client) stops the walk.
    trusted = trusted_proxies("127.0.0.1, 10.0.0.0/8")
    assert resolve(PROXY, forwarded("10.0.0.1", "10.0.0.2", CLIENT), trusted) == CLIENT


@pytest.mark.parametrize("header", GARBAGE)
def test_garbage_is_never_the_answer(header):
    for setting in ("1", "127.0.0.1"):
        assert resolve(PROXY, forwarded(header, CLIENT), trusted_proxies(setting)) == CLIENT
        # Garbage where the proxy's own entry should be: the proxy is the last hop known.
        assert resolve(PROXY, header, trusted_proxies(setting)) == PROXY


def test_addresses_are_read_in_the_forms_proxies_write_them():
    assert str(parse_address(" 203.0.113.7:5123 ")) == CLIENT
    assert str(parse_address("[2001:db8::1]:443")) == "2001:db8::1"
    assert str(parse_address("::ffff:203.0.113.7")) == CLIENT
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"
    assert parse_address("[::1") is None and parse_address("203.0.113.7%1") is None
    assert parse_address("") is None and parse_address(None) is None


def test_a_bad_setting_is_named():
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.0/33'"):
        trusted_proxies("127.0.0.1, 10.0.0.0/33")


def test_serve_refuses_daphnes_proxy_headers_before_anything_starts(capsys):
    """daphne's --proxy-headers takes the first X-Forwarded-For entry, which the client wrote."""
    with pytest.raises(SystemExit) as exit_:
        serve.main(["-p", "0", "--proxy-headers"])
    assert exit_.value.code == 2
    assert "TELECONSULT_TRUSTED_PROXIES" in capsys.readouterr().err
    assert not serve.started()


# --- where the address is used ------------------------------------------------------------------


def post_token(api_client, header: str | None, peer: str = PROXY, **body):
    extra = {"REMOTE_ADDR": peer}
    if header is not None:
        extra["HTTP_X_FORWARDED_FOR"] = header
    return api_client.post(TOKEN_URL, body, format="json", **extra)


@pytest.mark.parametrize("setting", ["1", "127.0.0.1", "127.0.0.0/8"])
def test_thirty_failures_with_a_rotating_forged_address_get_429_at_the_limit(
    api_client, physician, password, settings, setting
):
    settings.TELECONSULT_TRUSTED_PROXIES = setting
    statuses = [
        post_token(
            api_client, forwarded(f"198.51.100.{attempt}", CLIENT), email=f"guess{attempt}@example.com", password="x"
        ).status_code
        for attempt in range(30)
    ]
    assert statuses == [400] * 10 + [429] * 20
    # Another client behind the same proxy is not locked out with the attacker.
    other = post_token(api_client, forwarded("198.51.100.1", OTHER_CLIENT), email=physician.email, password=password)
    assert other.status_code == 200


def test_with_no_proxy_configured_the_lockout_counts_the_socket_peer_and_says_so(
    api_client, physician, password, caplog, monkeypatch
):
    monkeypatch.setattr(client_address_module, "_warned_untrusted_header", False)
    with caplog.at_level(logging.WARNING, logger="teleconsult.client_address"):
        for attempt in range(10):
            forged = f"198.51.100.{attempt}"
            post_token(api_client, forged, peer=CLIENT, email=f"guess{attempt}@example.com", password="x")
    assert post_token(api_client, None, peer=CLIENT, email=physician.email, password=password).status_code == 429
    other = post_token(api_client, CLIENT, peer=OTHER_CLIENT, email=physician.email, password=password)
    assert other.status_code == 200
    # An operator who forgot to name the proxy is told, once rather than on every request.
    warnings = [record.getMessage() for record in caplog.records if record.name == "teleconsult.client_address"]
    assert len(warnings) == 1 and "TELECONSULT_TRUSTED_PROXIES" in warnings[0]


@pytest.fixture
def study(physician) -> Study:
    return Study.objects.get(study_instance_uid=store_dataset(physician).StudyInstanceUID)


def read_study(auth_client, user, study, header, peer=PROXY):
    response = auth_client(user).get(
        f"/api/v1/studies/{study.study_instance_uid}/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header
    )
    assert response.status_code == 200
    return AccessEvent.objects.filter(study=study, action=AccessEvent.Action.API_READ).latest("pk")


@pytest.mark.parametrize("header", GARBAGE)
def test_a_garbage_header_is_an_ordinary_answer(api_client, auth_client, physician, password, study, settings, header):
    settings.TELECONSULT_TRUSTED_PROXIES = "127.0.0.1"
    assert post_token(api_client, header, email=physician.email, password="x").status_code == 400
    right = post_token(api_client, forwarded(header, CLIENT), email=physician.email, password=password)
    assert right.status_code == 200
    # Garbage is never kept (PostgreSQL's inet column would refuse it): the proxy saw CLIENT.
    assert read_study(auth_client, physician, study, forwarded(header, CLIENT)).ip == CLIENT
    assert read_study(auth_client, physician, study, header).ip == PROXY


def test_the_access_history_keeps_the_address_the_proxy_saw_not_the_forged_one(auth_client, physician, study, settings):
    settings.TELECONSULT_TRUSTED_PROXIES = "127.0.0.1"
    assert read_study(auth_client, physician, study, forwarded("6.6.6.6", CLIENT)).ip == CLIENT


def test_the_access_history_believes_only_a_peer_in_the_trusted_ranges(auth_client, physician, study, settings):
    settings.TELECONSULT_TRUSTED_PROXIES = "10.0.0.0/8"
    header = forwarded("6.6.6.6", CLIENT)
    assert read_study(auth_client, physician, study, header, peer="10.0.0.2").ip == CLIENT
    assert read_study(auth_client, physician, study, header, peer="198.51.100.20").ip == "198.51.100.20"


def test_invitation_events_and_allauths_rate_limits_take_the_same_address(physician, study, settings):
    settings.TELECONSULT_TRUSTED_PROXIES = "127.0.0.1"
    request = RequestFactory().post("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded("6.6.6.6", CLIENT))
    patient = Patient.objects.get(studies=study)
    invitations.record_event(request, AccessEvent.Action.LINK_REQUESTED, patient, user=physician)
    assert AccessEvent.objects.filter(patient=patient).latest("pk").ip == CLIENT
    assert get_adapter(request).get_client_ip(request) == client_address(request) == CLIENT


# --- through real daphne, Redis and PostgreSQL --------------------------------------------------


@pytest.mark.integration
def test_behind_a_proxy_real_daphnes_share_one_lockout_of_the_address_the_proxy_saw(
    daphne_factory, redis_url, postgres, live_user, password, settings
):
    """Two daphnes as the docs run them (python -m teleconsult.serve, no --proxy-headers), their
    counters in Redis; the test plays nginx on 127.0.0.1, appending the client's address."""
    user = live_user("physician", email="live-proxy@example.com")
    study = Study.objects.get(study_instance_uid=store_dataset(user).StudyInstanceUID)
    servers = [daphne_factory(TELECONSULT_TRUSTED_PROXIES="127.0.0.1") for _ in range(2)]

    def token(server, header, email, secret):
        return requests.post(
            f"{server.url}{TOKEN_URL}",
            json={"email": email, "password": secret},
            headers={"X-Forwarded-For": header},
            timeout=30,
        )

    statuses = [
        token(servers[attempt % 2], forwarded(f"198.51.100.{attempt}", CLIENT), f"g{attempt}@example.com", "x")
        for attempt in range(30)
    ]
    assert [response.status_code for response in statuses] == [400] * 10 + [429] * 20

    for header in GARBAGE:
        assert token(servers[0], forwarded(header, GARBAGE_CLIENT), "nobody@example.com", "x").status_code == 400
    answer = token(servers[1], forwarded("6.6.6.6", OTHER_CLIENT), user.email, password)
    assert answer.status_code == 200, answer.text

    read = requests.get(
        f"{servers[0].url}/api/v1/studies/{study.study_instance_uid}/",
        headers={"Authorization": f"Token {answer.json()['token']}", "X-Forwarded-For": forwarded("6.6.6.6", CLIENT)},
        timeout=30,
    )
    assert read.status_code == 200, read.text
    assert list(AccessEvent.objects.filter(study=study).values_list("ip", flat=True)) == [CLIENT]
    for server in servers:
        assert "Traceback" not in server.log()
