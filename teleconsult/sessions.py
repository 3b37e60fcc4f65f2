"""Django's database sessions, except that a database that cannot be reached says so.

Django's store turns any database error while saving a session into ``UpdateError``, which the
session middleware answers 400 "the session was deleted before the request completed". When the
error is the connection's (``teleconsult.database.UNAVAILABLE_ERRORS``), that error goes on
instead, so the request is answered 503 with Retry-After like every other database outage.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError

from teleconsult.database import UNAVAILABLE_ERRORS


class SessionStore(db.SessionStore):
    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create)
        except UpdateError as exc:
            if isinstance(exc.__context__, UNAVAILABLE_ERRORS):
                raise exc.__context__ from None
            raise
