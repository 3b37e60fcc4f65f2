"""When the database cannot be reached: a 503 the client can retry, never a 500.

Two things keep a database hiccup from turning into server errors:

- connections leave the pool checked (``CONN_HEALTH_CHECKS`` in settings, which Django turns
  into psycopg_pool's ``check_connection``; without the pool, a kept connection is checked at
  the start of each request), so a connection the server closed while it was idle (a restart, a
  failover, ``pg_terminate_backend``) is replaced instead of failing the next request; and
  :class:`PoolWatch` replaces all the dead idle connections of a pool at once, since the pool
  waits longer after each failed check;
- an :data:`UNAVAILABLE_ERRORS` error that still reaches a request (the database is really down,
  or the connection died in the middle of the request) is answered 503 with ``Retry-After``, in
  the shape of the interface that was asked: JSON ``{"detail", "code"}`` on ``/api/`` (the DRF
  handler, ``teleconsult.api``), JSON ``{"detail"}`` on DICOMweb (``studies.dicomweb.errors``),
  ``503.html`` for pages; the WebSocket consumers send an ``error`` frame with its code and keep
  the connection.

A request is not run again after such an error: GETs here are not free of writes (the access
history records DICOMweb reads, sessions are saved on every request), and the client that gets
``Retry-After`` decides.

Django turns an exception raised inside any middleware (the session loaded for ``request.user``,
the session saved on the way out) into a 500 at that middleware's edge, before an outer middleware
could see it. So :class:`DatabaseUnavailableMiddleware` both answers errors of views
(``process_exception``) and, from its place outside the middleware that reads the database,
replaces a 500 that Django's ``got_request_exception`` signal says came from such an error.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from teleconsult.errors import PortalError

log = logging.getLogger(__name__)

# Errors that mean "the database did not answer" (connection refused, closed, pool timeout,
# statement cancelled, serialization failure) rather than a mistake in the request or the code.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
# How often each process checks the idle connections of its pools (see PoolWatch).
POOL_CHECK_SECONDS = 5.0
# Where the database error of this request is kept for the middleware (set by the signal).
_REQUEST_ATTRIBUTE = "_teleconsult_database_error"


class DatabaseUnavailableError(PortalError):
    """The database could not be reached; the same request may work in a few seconds."""

    status = 503
    code = "database_unavailable"

    def __init__(self, message: str = "The portal cannot reach its database right now. Try again in a few seconds."):
        super().__init__(message)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def unavailable(exc: BaseException, where: str) -> DatabaseUnavailableError:
    """Log the database error once, and give the refusal to answer with."""
    log.warning("Database unavailable (%s): %s: %s", where, type(exc).__name__, exc)
    return DatabaseUnavailableError()


def retry_after(response: HttpResponse) -> HttpResponse:
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


# One answer per interface, chosen by path (pages are the rest).


def api_response(error: DatabaseUnavailableError) -> HttpResponse:
    return JsonResponse(error.as_json(), status=error.status)


def dicomweb_response(error: DatabaseUnavailableError) -> HttpResponse:
    from studies.dicomweb.errors import exception_response

    return exception_response(error)


def page_response(error: DatabaseUnavailableError) -> HttpResponse:
    # No request, so no context processors: the page must not touch the database it reports on.
    html = render_to_string("503.html", {"message": error.message, "retry_after": RETRY_AFTER_SECONDS})
    return HttpResponse(html, status=error.status)


SURFACES: tuple[tuple[re.Pattern[str], Callable[[DatabaseUnavailableError], HttpResponse]], ...] = (
    (re.compile(r"^/api/"), api_response),
    # /dicomweb/ and the read routes under a share link (/s/<token>/dicomweb/).
    (re.compile(r"^/(?:s/[^/]+/)?dicomweb/"), dicomweb_response),
)


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    error = unavailable(exc, f"{request.method} {request.path}")
    render = next((render for pattern, render in SURFACES if pattern.match(request.path)), page_response)
    return retry_after(render(error))


def remember_database_error(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """``got_request_exception`` receiver: mark the request whose 500 came from a database error.

    Django sends the signal while handling the exception (asgiref keeps ``sys.exc_info()`` when it
    hands that work to a thread), so the exception is the current one.
    """
    exc = sys.exc_info()[1]
    if request is not None and exc is not None and is_unavailable(exc):
        setattr(request, _REQUEST_ATTRIBUTE, exc)


class PoolWatch:
    """Checks the idle connections of this process's connection pools every few seconds.

    The pool checks a connection before handing it out, but after a failed check it waits before
    trying the next one, longer each time (1, 2, 4, 8, 16 s: psycopg_pool's backoff). When the
    server dropped every idle connection at once (a restart, a failover), one request would walk
    through all of them and run into the pool's timeout. ``pool.check()`` tests them all at once
    without waiting and replaces the dead ones, as psycopg's documentation suggests.
    """

    _lock = threading.Lock()
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls) -> None:
        with cls._lock:
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._run, name="database-pool-watch", daemon=True)
                cls._thread.start()

    @classmethod
    def _run(cls) -> None:
        stop = threading.Event()
        while not stop.wait(POOL_CHECK_SECONDS):
            cls.check_once()

    @staticmethod
    def check_once() -> None:
        for alias in connections:
            pool = getattr(connections[alias], "pool", None)
            if pool is None or pool.closed:
                continue
            try:
                pool.check()
            except Exception:  # a closed or failing pool is the next request's business
                log.debug("Could not check the %s connection pool", alias, exc_info=True)


class DatabaseUnavailableMiddleware:
    """Answers 503 + ``Retry-After`` instead of 500 when the database could not be reached.

    Sits outside every middleware that reads or writes the database (sessions, authentication,
    the time zone, MFA) and inside those that decorate every answer (security headers, CORS, CSP).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(remember_database_error, dispatch_uid="teleconsult.database")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        PoolWatch.start()  # with the first request: serving has begun
        response = self.get_response(request)
        exc = getattr(request, _REQUEST_ATTRIBUTE, None)
        if exc is not None and response.status_code == 500:
            return unavailable_response(request, exc)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_unavailable(exception):
            return unavailable_response(request, exception)
        return None
