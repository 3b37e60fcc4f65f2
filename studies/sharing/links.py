"""Share links: one study for whoever holds the link, read-only, until it expires or is revoked.

The token is 32 random bytes (``secrets.token_urlsafe``); only its SHA-256 is stored, with the
first characters kept to tell links apart in lists. A passcode is hashed like a password; after
``ShareLink.MAX_FAILED_ATTEMPTS`` wrong tries the link locks for good (``try_passcode``: a try is
counted before its passcode is checked, so simultaneous guesses cannot outrun the count). Who holds
an unlocked link is remembered in the Django session (share ids), never in a cookie of its own.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password, make_password
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from teleconsult.errors import PortalError

from ..models import ShareLink, Study

DEFAULT_DAYS = 7
MAX_DAYS = 90
MIN_PASSCODE = 4
MAX_PASSCODE = 128
TOKEN_BYTES = 32
SESSION_KEY = "unlocked_share_links"


class ShareError(PortalError):
    """A share link that cannot be made as asked; the message says why (403 when the user may not
    share the study, 400 for a bad expiry or passcode)."""


@dataclass
class NewShareLink:
    link: ShareLink
    token: str

    @property
    def path(self) -> str:
        return f"/s/{self.token}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_share(user, study: Study) -> bool:
    """Physicians (and specialists and admins) who may see the study, and the linked patient."""
    if user.is_patient:
        return study.patient.account_id == user.pk
    return user.is_physician or user.is_specialist or user.is_admin


def create_share(
    *,
    study: Study,
    by,
    expires_in_days: int = DEFAULT_DAYS,
    passcode: str = "",
    allow_download: bool = False,
    include_report: bool = False,
    label: str = "",
) -> NewShareLink:
    """The caller has checked that ``by`` may see ``study``. ``include_report``: the holder also
    reads the study's latest signed report (``studies.sharing.reports``)."""
    if not may_share(by, study):
        raise ShareError(
            "Only a physician with access to the study or the patient may share it.", code="not_allowed", status=403
        )
    if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= MAX_DAYS:
        raise ShareError(f"expires_in_days must be a whole number of days from 1 to {MAX_DAYS}.")
    passcode = passcode or ""
    if passcode and not MIN_PASSCODE <= len(passcode) <= MAX_PASSCODE:
        raise ShareError(f"A passcode has {MIN_PASSCODE} to {MAX_PASSCODE} characters.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink.objects.create(
        study=study,
        created_by=by,
        token_hash=hash_token(token),
        token_prefix=token[:6],
        label=label[:200],
        expires_at=timezone.now() + dt.timedelta(days=expires_in_days),
        passcode_hash=make_password(passcode) if passcode else "",
        allow_download=bool(allow_download),
        include_report=bool(include_report),
    )
    return NewShareLink(link=link, token=token)


def find_link(token: str) -> ShareLink | None:
    """The link for a token, whatever its state; None for anything that is not one of ours."""
    if not token or len(token) > 128:
        return None
    return ShareLink.objects.select_related("study__patient").filter(token_hash=hash_token(token)).first()


def usable_link(token: str) -> ShareLink | None:
    link = find_link(token)
    return link if link is not None and link.is_usable else None


def is_unlocked(request: HttpRequest, link: ShareLink) -> bool:
    if not link.has_passcode:
        return True
    return link.pk in request.session.get(SESSION_KEY, [])


def unlock(request: HttpRequest, link: ShareLink) -> None:
    unlocked = [pk for pk in request.session.get(SESSION_KEY, []) if pk != link.pk]
    request.session[SESSION_KEY] = [*unlocked[-49:], link.pk]


class PasscodeOutcome(enum.Enum):
    RIGHT = "right"  # the link opens for this browser
    WRONG = "wrong"  # counted; ``tries_left`` more wrong ones lock the link
    BUSY = "busy"  # not checked: every try left is held by a passcode being checked right now
    CLOSED = "closed"  # not opened: the link is locked, revoked or expired


@dataclass(frozen=True)
class PasscodeTry:
    outcome: PasscodeOutcome
    tries_left: int = 0


def _check_passcode_input(passcode) -> None:
    if not isinstance(passcode, str) or not passcode:
        raise ShareError("Enter the passcode you were given with the link.", field="passcode")
    if len(passcode) > MAX_PASSCODE:
        raise ShareError(
            f"A passcode has at most {MAX_PASSCODE} characters; this one has {len(passcode)}.", field="passcode"
        )


def try_passcode(link: ShareLink, passcode: str) -> PasscodeTry:
    """Check a passcode against the link, counting the try first.

    The count and the permission to check are one conditional UPDATE (``failed_attempts + 1``
    where the link is usable and ``failed_attempts`` is under the limit): the database takes the
    row's write lock and re-evaluates the condition for each of several simultaneous tries, so at
    most ``MAX_FAILED_ATTEMPTS`` passcodes are ever being or have been checked, however many arrive
    at once, and the slow hash runs outside any transaction. A right passcode then gives its try
    back (only while the link is still usable: one locked meanwhile stays closed); a wrong one
    keeps it, and the one that finds the limit reached locks the link. A try being checked counts
    as wrong until it is known to be right, so while every try left is held that way the link
    answers BUSY without checking.

    Bad input (not text, empty, longer than ``MAX_PASSCODE``) raises ``ShareError`` and is neither
    counted nor checked.
    """
    _check_passcode_input(passcode)
    if not link.has_passcode:
        return PasscodeTry(PasscodeOutcome.RIGHT)
    this_link = ShareLink.objects.filter(pk=link.pk)
    counted = this_link.usable().filter(failed_attempts__lt=ShareLink.MAX_FAILED_ATTEMPTS)
    if not counted.update(failed_attempts=F("failed_attempts") + 1):
        return _refused_unchecked(link)
    if check_password(passcode, link.passcode_hash):
        still_open = this_link.usable().update(failed_attempts=F("failed_attempts") - 1)
        if not still_open:
            this_link.update(failed_attempts=F("failed_attempts") - 1)
            return PasscodeTry(PasscodeOutcome.CLOSED)
        return PasscodeTry(PasscodeOutcome.RIGHT)
    failed, locked_at = this_link.values_list("failed_attempts", "locked_at").get()
    if locked_at is None and failed < ShareLink.MAX_FAILED_ATTEMPTS:
        return PasscodeTry(PasscodeOutcome.WRONG, tries_left=ShareLink.MAX_FAILED_ATTEMPTS - failed)
    this_link.filter(locked_at__isnull=True).update(locked_at=timezone.now())
    return PasscodeTry(PasscodeOutcome.CLOSED)


def _refused_unchecked(link: ShareLink) -> PasscodeTry:
    """Why a try got no count: the link closed, or every try left is being checked."""
    if ShareLink.objects.usable().filter(pk=link.pk).exists():
        return PasscodeTry(PasscodeOutcome.BUSY)
    return PasscodeTry(PasscodeOutcome.CLOSED)


def links_of(user):
    """The links a user made (administrators: every link)."""
    links = ShareLink.objects.select_related("study")
    return links if user.is_admin else links.filter(created_by=user)
