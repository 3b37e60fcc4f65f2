"""A database that cannot be reached is a 503 with Retry-After in each interface's shape, never a 500.

Views here raise the database errors themselves (``urlpatterns`` below); the real routes are run
with every query failing (``connection.execute_wrapper``), which is what a dead connection does.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
from django.urls import path
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from teleconsult import database

CLOSED = "server closed the connection unexpectedly"


class BrokenApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise OperationalError(CLOSED)


def broken_page(request):
    raise OperationalError(CLOSED)


def broken_interface(request):
    raise InterfaceError("connection already closed")


def broken_code(request):
    raise RuntimeError("a plain bug")


def broken_share_route(request, token):
    raise OperationalError(CLOSED)


urlpatterns = [
    path("api/v1/broken/", BrokenApiView.as_view()),
    path("dicomweb/studies", broken_page),
    path("s/<str:token>/dicomweb/studies", broken_share_route),
    path("studies/broken/", broken_page),
    path("studies/interface/", broken_interface),
    path("studies/bug/", broken_code),
]


@pytest.fixture
def client():
    # The test client re-raises what Django's got_request_exception reported; the answer is the point here.
    return Client(raise_request_exception=False)


def assert_retry_later(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == str(database.RETRY_AFTER_SECONDS)


def dead_database(execute, sql, params, many, context):
    raise OperationalError(CLOSED)


# --- a view raises ----------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_api_view_with_database_error_answers_503_json_in_the_api_shape(client, db):
    response = client.get("/api/v1/broken/")

    assert_retry_later(response)
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": database.DatabaseUnavailableError().message, "code": "database_unavailable"}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/dicomweb/studies", "/s/abc123/dicomweb/studies"])
def test_dicomweb_view_with_database_error_answers_503_json_detail_only(client, db, url):
    response = client.get(url, HTTP_ACCEPT="application/dicom+json")

    assert_retry_later(response)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": database.DatabaseUnavailableError().message}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/studies/broken/", "/studies/interface/"])
def test_page_view_with_database_error_answers_the_503_page(client, db, url):
    response = client.get(url)

    assert_retry_later(response)
    assert response["Content-Type"].startswith("text/html")
    assert "Back in a moment" in response.content.decode()


@pytest.mark.urls(__name__)
def test_other_errors_stay_server_errors(client, db):
    assert client.get("/studies/bug/").status_code == 500


# --- the real routes with every query failing ------------------------------------------------


@pytest.fixture
def token(physician) -> str:
    return Token.objects.create(user=physician).key


def test_api_with_token_and_dead_database_answers_503_json(client, token):
    with connection.execute_wrapper(dead_database):
        response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")

    assert_retry_later(response)
    assert response.json()["code"] == "database_unavailable"


def test_api_with_session_whose_load_fails_in_middleware_answers_503_json(client, physician):
    # The session is read by the MFA middleware (request.user), before any view: Django turns that
    # into a 500 at the middleware's edge, which the outer middleware answers as 503.
    client.force_login(physician)
    with connection.execute_wrapper(dead_database):
        response = client.get("/api/v1/me/")

    assert_retry_later(response)
    assert response.json()["code"] == "database_unavailable"


def test_dicomweb_search_with_dead_database_answers_503_json(client, token):
    with connection.execute_wrapper(dead_database):
        response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Token {token}")

    assert_retry_later(response)
    assert response.json() == {"detail": database.DatabaseUnavailableError().message}


def test_page_of_signed_in_user_with_dead_database_is_the_503_page_without_queries(client, physician):
    client.force_login(physician)
    with connection.execute_wrapper(dead_database):
        response = client.get("/")

    assert_retry_later(response)
    assert "Back in a moment" in response.content.decode()


# --- WebSocket frames -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_room_frame_with_database_error_answers_an_error_frame_and_keeps_the_connection(
    physician, specialist, monkeypatch
):
    from consultations import actions
    from teleconsult.asgi import application
    from tests.factories import ConsultFactory, make_study

    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    key = Token.objects.create(user=physician).key
    headers = [(b"authorization", f"Token {key}".encode()), (b"origin", b"http://testserver")]
    posted = actions.post_message

    def post_message_once_failing(*args, **kwargs):
        monkeypatch.setattr(actions, "post_message", posted)
        raise OperationalError(CLOSED)

    monkeypatch.setattr(actions, "post_message", post_message_once_failing)

    async def scenario():
        comm = WebsocketCommunicator(application, f"/ws/consults/{consult.pk}/", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        frames = []
        for _attempt in range(2):
            await comm.send_to(text_data=json.dumps({"type": "chat.message", "text": "Hello", "client_id": "c-1"}))
            while True:
                frame = json.loads(await comm.receive_from(timeout=5))
                if frame["type"] in {"error", "chat.message"}:
                    frames.append(frame)
                    break
        await comm.disconnect()
        return frames

    error, message = async_to_sync(scenario)()

    assert error == {
        "type": "error",
        "code": "database_unavailable",
        "message": database.DatabaseUnavailableError().message,
    }
    assert message["client_id"] == "c-1" and message["text"] == "Hello"


# --- connections leave the pool checked ------------------------------------------------------


def test_connections_are_health_checked(settings):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def kill_other_connections() -> int:
    """Terminate the other connections to the test database (this run's only), as a restart would."""
    import psycopg

    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}
    with psycopg.connect(**params, autocommit=True) as killer:
        return killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_pooled_connection_killed_while_idle_is_replaced_before_use(postgres):
    if connection.pool is None:
        pytest.skip("the PostgreSQL pool is off (DATABASE_POOL=0)")
    connection.ensure_connection()
    connection.close()  # back to the pool, idle
    assert kill_other_connections() >= 1

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_session_save_that_loses_its_connection_is_503_not_session_interrupted(client, physician):
    client.force_login(physician)

    def session_update_fails(execute, sql, params, many, context):
        if sql.startswith('UPDATE "django_session"'):
            raise OperationalError(CLOSED)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(session_update_fails):
        response = client.get("/")

    assert_retry_later(response)


def test_session_deleted_meanwhile_is_still_a_400(client, physician):
    from django.contrib.sessions.models import Session

    client.force_login(physician)

    def session_gone(execute, sql, params, many, context):
        if sql.startswith('UPDATE "django_session"'):
            Session.objects.all().delete()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(session_gone):
        assert client.get("/").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_pool_watch_replaces_every_dead_idle_connection_at_once(postgres):
    if connection.pool is None:
        pytest.skip("the PostgreSQL pool is off (DATABASE_POOL=0)")
    connection.ensure_connection()
    connection.close()
    connection.pool.pop_stats()
    kill_other_connections()

    database.PoolWatch.check_once()

    assert connection.pool.get_stats().get("connections_lost", 0) >= 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
