"""Shared fixtures: named users used everywhere, and the real services when they are configured."""

from __future__ import annotations

import os

import pytest

from tests.factories import UserFactory

PASSWORD = "correct-horse-battery-staple"


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
