"""Shared fixtures: named users used everywhere, and the real services when they are configured."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

import pytest

from tests.factories import UserFactory

PASSWORD = "correct-horse-battery-staple"

# import_dicom, which tests run in this process, moves the process's temporary files beside the
# media root of that moment where /tmp is a tmpfs (storage.keep_temporary_files_on_disk); tests
# change the media root from test to test, so they name the temporary directory themselves.
# (Importing teleconsult.asgi changes nothing: the server's start-up is teleconsult.serve.)
os.environ.setdefault("TMPDIR", tempfile.gettempdir())


def _seed_after_flush(sender, **kwargs) -> None:
    if sender.label == "consultations":
        from consultations.demo import ensure_report_templates

        ensure_report_templates()


@pytest.fixture(scope="session", autouse=True)
def _seeded_rows_outlive_flushes():
    """Rows the migrations seed (the standard report templates) are back after each flush of a
    transactional test (Django's flush sends post_migrate), whatever order a test process runs the
    tests in: a later test on the same database finds them as on a freshly migrated one."""
    from django.db.models.signals import post_migrate

    post_migrate.connect(_seed_after_flush, dispatch_uid="tests.seed_after_flush")
    yield
    post_migrate.disconnect(dispatch_uid="tests.seed_after_flush")


@pytest.fixture(autouse=True)
def _not_inside_a_worker():
    """Celery keeps a process-wide "inside a task" flag: an eager task sets it while it runs and
    puts back the value it found, so eager tasks run from several threads at once (race tests,
    in-process servers) can leave it set, after which ``result.get()`` refuses to run. Every test
    starts with it cleared, whichever tests its process ran before."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Counters kept in the cache (sign-in and signing lockouts, rate limits, summaries) start
    empty in every test: primary keys repeat from test to test, and so would their counts."""
    yield
    from django.core.cache import cache

    # A test without Django settings, or whose cache went away, has nothing to clear.
    with contextlib.suppress(Exception):
        cache.clear()


def require_service(name: str, reason: str) -> None:
    """Skip with the reason on a bare laptop; fail in CI, where every service must be there."""
    if os.environ.get("TELECONSULT_REQUIRE_SERVICES"):
        pytest.fail(f"{name} is required here (TELECONSULT_REQUIRE_SERVICES is set): {reason}")
    pytest.skip(f"{name} not available: {reason}")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        require_service("Redis", "set REDIS_URL to run this test against a real Redis")
    import redis

    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"cannot reach {url}: {exc}")
    return url


@pytest.fixture
def postgres(settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "set DATABASE_URL to a PostgreSQL database to run this test")
    return connection


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def physician(db):
    return UserFactory(role="physician", email="owner@example.com", name="Dr Owner")


@pytest.fixture
def colleague(db):
    return UserFactory(role="physician", email="colleague@example.com", name="Dr Colleague")


@pytest.fixture
def outsider(db):
    return UserFactory(role="physician", email="outsider@example.com", name="Dr Outsider")


@pytest.fixture
def specialist(db):
    from tests.factories import SpecialistFactory

    return SpecialistFactory(email="specialist@example.com", name="Dr Specialist")


@pytest.fixture
def patient_user(db):
    return UserFactory(role="patient", email="patient@example.com", name="Pat Patient")


@pytest.fixture
def admin_user(db):
    return UserFactory(role="admin", email="admin@example.com", name="Ada Admin", is_staff=True, is_superuser=True)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth_client(api_client):
    """An API client signed in as a given user: ``auth_client(user)``."""

    def make(user):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(user=user)
        return client

    return make


# --- Real processes: daphne servers and Celery workers on the test database (tests/servers.py) ---


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    """DATABASE_URL of the database pytest-django created, for processes the tests start."""
    from django.db import connection

    from tests.servers import database_url

    with django_db_blocker.unblock():
        return database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def server_outbox(tmp_path_factory):
    """Emails sent by the session's live servers (Django's file backend)."""
    from tests.servers import Outbox

    return Outbox(tmp_path_factory.mktemp("outbox"))


def _session_server(request, test_database_url, server_outbox, *, mfa_required: bool, label: str):
    from django.conf import settings

    from tests.servers import ProcessFactory, ServiceEnvironment

    environment = ServiceEnvironment(
        database_url=test_database_url, data_dir=settings.DATA_DIR, outbox=server_outbox, mfa_required=mfa_required
    )
    factory = ProcessFactory(environment, label=f"{label}-{os.getpid()}")
    request.addfinalizer(factory.stop_all)
    server = factory.daphne()
    server.outbox = server_outbox
    return server


@pytest.fixture(scope="session")
def live_server_process(request, test_database_url, server_outbox):
    """One real daphne for the whole session: DEBUG on, MFA not required, mail to ``server_outbox``.

    Rows a test creates are visible to it only once committed: use ``transactional_db``.
    """
    return _session_server(request, test_database_url, server_outbox, mfa_required=False, label="live")


@pytest.fixture(scope="session")
def live_server_url(live_server_process) -> str:
    return live_server_process.url


@pytest.fixture(scope="session")
def live_server_mfa_process(request, test_database_url, server_outbox):
    """Like ``live_server_process`` but with TELECONSULT_MFA_REQUIRED on."""
    return _session_server(request, test_database_url, server_outbox, mfa_required=True, label="live-mfa")


@pytest.fixture(scope="session")
def live_server_mfa_url(live_server_mfa_process) -> str:
    return live_server_mfa_process.url


@pytest.fixture
def service_environment(request, test_database_url, tmp_path):
    """The environment for this test's own processes; shares Redis (own key prefix) when REDIS_URL is set."""
    from django.conf import settings

    from tests.servers import Outbox, ServiceEnvironment

    redis = request.getfixturevalue("redis_url") if "redis_url" in request.fixturenames else None
    return ServiceEnvironment(
        database_url=test_database_url, data_dir=settings.DATA_DIR, outbox=Outbox(tmp_path / "outbox"), redis_url=redis
    )


@pytest.fixture
def daphne_factory(request, service_environment):
    """Start real daphne processes, as the portal is served (``python -m teleconsult.serve``):
    ``daphne_factory(port=None, options=(), **env)`` -> DaphneProcess (url, stop, kill, restart);
    ``options`` are more of daphne's options.

    Request ``redis_url`` too and every server (and ``celery_worker_factory`` worker) shares that
    Redis with this test's own prefix. All of them stop when the test ends.
    """
    from tests.servers import ProcessFactory, unique_prefix

    factory = ProcessFactory(service_environment, label=unique_prefix(re.sub(r"\W+", "-", request.node.name)[:40]))
    request.addfinalizer(factory.stop_all)
    return factory.daphne


@pytest.fixture
def celery_worker_factory(request, service_environment):
    """Start real Celery workers: ``celery_worker_factory(queue="celery", beat=False, **env)``."""
    from tests.servers import ProcessFactory, unique_prefix

    factory = ProcessFactory(service_environment, label=unique_prefix(re.sub(r"\W+", "-", request.node.name)[:40]))
    request.addfinalizer(factory.stop_all)
    return factory.worker


@pytest.fixture
def live_user(transactional_db):
    """``live_user(role="physician", email=..., **fields)``: a verified user who can sign in on the real servers.

    Their password is ``PASSWORD``, hashed with a hasher the servers know.
    """
    from tests.factories import SpecialistFactory
    from tests.servers import server_password_hash

    def make(role: str = "physician", **fields):
        factory = SpecialistFactory if role == "specialist" else UserFactory
        user = factory(role=role, **fields) if role != "specialist" else factory(**fields)
        user.password = server_password_hash(PASSWORD)
        user.save(update_fields=["password"])
        return user

    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many integration and end-to-end tests really ran: CI output must show they did."""
    counts: dict[str, dict[str, int]] = {marker: {} for marker in ("integration", "e2e")}
    for status in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(status, []):
            if status == "passed" and report.when != "call":
                continue
            for marker, by_status in counts.items():
                if marker in getattr(report, "keywords", {}):
                    by_status[status] = by_status.get(status, 0) + 1
    terminalreporter.section("real services and browser")
    for marker, by_status in counts.items():
        summary = ", ".join(f"{count} {status}" for status, count in by_status.items()) or "none collected"
        terminalreporter.write_line(f"{marker} tests: {summary}")
