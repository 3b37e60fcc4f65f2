"""A real daphne on real PostgreSQL while the database's connections are terminated every 1.5 s.

Pages, the REST API, DICOMweb and chat posts are asked for side by side. While connections are
being killed, a request whose connection dies under it may be refused with 503 + Retry-After, but
never answered 500; once the killing stops (and after one more kill of the idle pool), every
request succeeds: no pooled connection that died while idle is handed to a request.
"""

from __future__ import annotations

import collections
import itertools
import re
import threading
import time

import pytest
import requests

from tests.conftest import PASSWORD

pytestmark = pytest.mark.integration

KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
KILL_EVERY = 1.5
KILLING_SECONDS = 12.0
CLIENTS = 3
REQUESTS_AFTER = 40


def kill_connections(settings_dict: dict) -> int:
    """Terminate every other connection to the test database (only that database: the datname filter)."""
    import psycopg

    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as killer:
        return killer.execute(KILL).fetchone()[0]


def sign_in(base_url: str, email: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base_url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    done = session.post(
        f"{base_url}/accounts/login/",
        data={"csrfmiddlewaretoken": token, "login": email, "password": PASSWORD},
        headers={"Referer": f"{base_url}/accounts/login/"},
        timeout=30,
    )
    assert done.status_code == 200 and "sessionid" in session.cookies, done.text[:500]
    return session


class Traffic:
    """Requests of each kind, in turn, from several threads; counts answers by kind and status."""

    def __init__(self, base_url: str, page_session: requests.Session, token: str, consult_id: int) -> None:
        self.base_url = base_url
        self.page_session = page_session
        self.headers = {"Authorization": f"Token {token}"}
        self.consult_id = consult_id
        self.numbers = itertools.count()
        self.lock = threading.Lock()

    def one(self, kind: str) -> tuple[str, int, str]:
        """Ask once; returns (kind, status, problem with a 503's shape or '')."""
        url = self.base_url
        if kind == "page":
            response = self.page_session.get(f"{url}/", timeout=60)
        elif kind == "api":
            response = requests.get(f"{url}/api/v1/consults/", headers=self.headers, timeout=60)
        elif kind == "dicomweb":
            response = requests.get(
                f"{url}/dicomweb/studies", headers={**self.headers, "Accept": "application/dicom+json"}, timeout=60
            )
        else:
            with self.lock:
                n = next(self.numbers)
            response = requests.post(
                f"{url}/api/v1/consults/{self.consult_id}/messages/",
                json={"text": f"Fault test message {n}", "client_id": f"fault-{n}"},
                headers=self.headers,
                timeout=60,
            )
        return kind, response.status_code, shape_problem(kind, response) if response.status_code == 503 else ""


def shape_problem(kind: str, response: requests.Response) -> str:
    if not response.headers.get("Retry-After", "").isdigit():
        return f"{kind}: 503 without Retry-After"
    if kind == "page":
        return (
            ""
            if "text/html" in response.headers["Content-Type"]
            else f"page: 503 as {response.headers['Content-Type']}"
        )
    try:
        body = response.json()
    except ValueError:
        return f"{kind}: 503 body is not JSON: {response.text[:200]}"
    expected = {"detail"} if kind == "dicomweb" else {"detail", "code"}
    return "" if set(body) == expected else f"{kind}: 503 body {body}"


KINDS = ("page", "api", "dicomweb", "chat")


def tally(results) -> dict[str, collections.Counter]:
    counts: dict[str, collections.Counter] = {kind: collections.Counter() for kind in KINDS}
    for kind, status, _problem in results:
        counts[kind][status] += 1
    return counts


@pytest.mark.django_db(transaction=True)
def test_terminated_database_connections_answer_503_at_worst_and_never_500_once_back(
    postgres, daphne_factory, live_user
):
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from consultations import actions
    from tests.factories import ConsultFactory, make_study

    physician = live_user("physician", email="faults.physician@example.com")
    specialist = live_user("specialist", email="faults.specialist@example.com")
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    token = Token.objects.create(user=physician).key
    settings_dict = dict(connection.settings_dict)
    connection.close()  # this process's connection must not be the one killed under the test

    server = daphne_factory()
    traffic = Traffic(server.url, sign_in(server.url, physician.email), token, consult.pk)
    for kind in KINDS:  # everything works before the faults
        assert traffic.one(kind)[1] < 400, kind

    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        while not stop.wait(KILL_EVERY):
            kills.append(kill_connections(settings_dict))

    during: list[tuple[str, int, str]] = []

    def client(offset: int) -> None:
        for kind in itertools.islice(itertools.cycle(KINDS), offset, None):
            if stop.is_set():
                return
            result = traffic.one(kind)
            with traffic.lock:
                during.append(result)

    threads = [threading.Thread(target=killer)] + [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(KILLING_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(90)

    # The database is back; the pool's idle connections are killed once more, as a restart or a
    # failover would leave them, and the server is asked again after a pause.
    kills.append(kill_connections(settings_dict))
    time.sleep(1.0)
    after = [traffic.one(kind) for kind in itertools.islice(itertools.cycle(KINDS), REQUESTS_AFTER)]

    during_counts, after_counts = tally(during), tally(after)
    summary = (
        f"{len(kills)} kills ({sum(kills)} connections); during: "
        + ", ".join(f"{kind} {dict(c)}" for kind, c in during_counts.items())
        + "; after: "
        + ", ".join(f"{kind} {dict(c)}" for kind, c in after_counts.items())
    )
    print(summary)
    assert len(kills) >= KILLING_SECONDS / KILL_EVERY - 2 and sum(kills) > 0, summary
    assert all(status < 400 or status == 503 for _kind, status, _p in during), summary
    assert [problem for _k, _s, problem in during if problem] == [], summary
    assert all(status < 400 for _kind, status, _p in after), summary
