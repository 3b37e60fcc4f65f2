"""A share link's passcode lockout: every try is counted before its passcode is checked, in one
conditional update, so no more than ``ShareLink.MAX_FAILED_ATTEMPTS`` wrong passcodes are ever
checked per link, however many arrive at once, and a right one that comes too late never opens it.

The race tests need PostgreSQL (``DATABASE_URL``): simultaneous requests, each on its own thread
and database connection. The rest run anywhere.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from django.test import Client
from django.utils import timezone

from studies.models import ShareLink, Study
from studies.sharing import links
from tests.concurrency import run_together
from tests.studies.test_dicomweb_helpers import store_dataset

RIGHT = "open-sesame"
LIMIT = ShareLink.MAX_FAILED_ATTEMPTS
UNAVAILABLE = b"This link does not work"
BUSY = b"being checked right now"
ENTER = "Enter the passcode you were given with the link."


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(physician) -> Study:
    ds = store_dataset(physician)
    return Study.objects.get(study_instance_uid=ds.StudyInstanceUID)


def share(study, physician, passcode: str = RIGHT) -> tuple[ShareLink, str]:
    new = links.create_share(study=study, by=physician, passcode=passcode)
    return new.link, new.token


class HashChecks:
    """Every passcode really checked against the stored hash, in order (thread-safe); ``during``
    runs inside each check, as a slow hash would leave time for other requests to act."""

    def __init__(self, monkeypatch, during=None):
        self.checked: list[str] = []
        self._lock = threading.Lock()
        real = links.check_password

        def spy(passcode, encoded, *args, **kwargs):
            with self._lock:
                self.checked.append(passcode)
            if during is not None:
                during(passcode)
            return real(passcode, encoded, *args, **kwargs)

        monkeypatch.setattr(links, "check_password", spy)

    def wrong(self) -> list[str]:
        return [p for p in self.checked if p != RIGHT]


def stored(link: ShareLink) -> ShareLink:
    return ShareLink.objects.get(pk=link.pk)


# --- The counter (any database) -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_wrong_passcode_is_counted_before_it_is_checked(monkeypatch, physician, study):
    link, token = share(study, physician)
    counted_during_check = []
    checks = HashChecks(monkeypatch, during=lambda _: counted_during_check.append(stored(link).failed_attempts))
    browser = Client()
    for attempt in range(1, LIMIT):
        answer = browser.post(f"/s/{token}/", {"passcode": f"wrong-{attempt}"})
        left = LIMIT - attempt
        expected = f"{left} more wrong {'try locks' if left == 1 else 'tries lock'} the link."
        assert answer.status_code == 400 and expected in answer.content.decode()
    last = browser.post(f"/s/{token}/", {"passcode": f"wrong-{LIMIT}"})
    assert last.status_code == 404 and UNAVAILABLE in last.content
    assert counted_during_check == list(range(1, LIMIT + 1))
    assert stored(link).status == "locked" and stored(link).failed_attempts == LIMIT
    assert Client().post(f"/s/{token}/", {"passcode": RIGHT}).status_code == 404
    assert len(checks.checked) == LIMIT  # the right passcode, after the lock, was never checked


@pytest.mark.django_db
def test_a_right_passcode_holds_a_try_while_checked_and_gives_it_back(monkeypatch, physician, study):
    passcode = "Grüße ✓ 東京"  # not ASCII: a passcode like any other
    link, token = share(study, physician, passcode=passcode)
    browser = Client()
    wrong = browser.post(f"/s/{token}/", {"passcode": "Grüsse ✓ 東京"})
    assert wrong.status_code == 400 and "4 more wrong tries lock the link." in wrong.content.decode()
    counted_during_check = []
    HashChecks(monkeypatch, during=lambda _: counted_during_check.append(stored(link).failed_attempts))
    assert browser.post(f"/s/{token}/", {"passcode": passcode}).status_code == 302
    assert counted_during_check == [2]
    assert stored(link).failed_attempts == 1
    assert b"data-viewer" in browser.get(f"/s/{token}/").content


@pytest.mark.django_db
def test_no_passcode_is_checked_while_every_try_left_is_being_checked(monkeypatch, physician, study):
    """Other requests hold every try left (counted, their passcodes still being checked)."""
    link, token = share(study, physician)
    ShareLink.objects.filter(pk=link.pk).update(failed_attempts=LIMIT)
    checks = HashChecks(monkeypatch)
    assert links.try_passcode(link, RIGHT).outcome == links.PasscodeOutcome.BUSY
    browser = Client()
    answer = browser.post(f"/s/{token}/", {"passcode": RIGHT})
    assert answer.status_code == 429 and BUSY in answer.content
    assert checks.checked == []
    assert stored(link).failed_attempts == LIMIT and stored(link).locked_at is None
    assert b"Enter the passcode" in browser.get(f"/s/{token}/").content


@pytest.mark.django_db
def test_a_right_passcode_does_not_open_a_link_locked_while_it_was_checked(monkeypatch, physician, study):
    link, token = share(study, physician)

    def another_request_locks_it(_):
        ShareLink.objects.filter(pk=link.pk).update(failed_attempts=LIMIT, locked_at=timezone.now())

    HashChecks(monkeypatch, during=another_request_locks_it)
    browser = Client()
    answer = browser.post(f"/s/{token}/", {"passcode": RIGHT})
    assert answer.status_code == 404 and UNAVAILABLE in answer.content
    assert browser.get(f"/s/{token}/").status_code == 404
    assert links.SESSION_KEY not in browser.session


@pytest.mark.parametrize("state", ["locked", "revoked", "expired"])
@pytest.mark.django_db
def test_a_link_closed_after_it_was_loaded_checks_no_passcode(monkeypatch, physician, study, state):
    link, _ = share(study, physician)
    changes = {
        "locked": {"locked_at": timezone.now(), "failed_attempts": LIMIT},
        "revoked": {"revoked_at": timezone.now()},
        "expired": {"expires_at": timezone.now() - dt.timedelta(seconds=1)},
    }[state]
    ShareLink.objects.filter(pk=link.pk).update(**changes)
    checks = HashChecks(monkeypatch)
    assert links.try_passcode(link, RIGHT).outcome == links.PasscodeOutcome.CLOSED
    assert checks.checked == []


# --- Bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passcode", "message"),
    [
        ("", ENTER),
        ("x" * (links.MAX_PASSCODE + 1), f"at most {links.MAX_PASSCODE} characters"),
        ("é" * 1_000_000, f"at most {links.MAX_PASSCODE} characters"),
        (None, ENTER),
        (b"open-sesame", ENTER),
    ],
    ids=["empty", "one-too-long", "a-million-non-ascii", "none", "bytes"],
)
@pytest.mark.django_db
def test_bad_passcodes_are_refused_by_name_never_counted_or_checked(monkeypatch, physician, study, passcode, message):
    link, token = share(study, physician)
    checks = HashChecks(monkeypatch)
    with pytest.raises(links.ShareError, match=re.escape(message)):
        links.try_passcode(link, passcode)
    if isinstance(passcode, str):
        answer = Client().post(f"/s/{token}/", {"passcode": passcode})
        assert answer.status_code == 400 and message in answer.content.decode()
    assert checks.checked == [] and stored(link).failed_attempts == 0


@pytest.mark.django_db
def test_other_bad_form_bodies_get_a_clear_400(monkeypatch, physician, study):
    link, token = share(study, physician)
    checks = HashChecks(monkeypatch)
    nul = Client().post(f"/s/{token}/", {"passcode": "open\x00sesame"})
    assert nul.status_code == 400 and b"Null characters are not allowed" in nul.content
    missing = Client().post(f"/s/{token}/", {"other": "x"})
    assert missing.status_code == 400 and ENTER.encode() in missing.content
    latin1 = Client().post(
        f"/s/{token}/", b"passcode=Gr\xfc\xdfe", content_type="application/x-www-form-urlencoded; charset=utf-8"
    )
    assert latin1.status_code == 400 and b"That passcode is wrong" in latin1.content
    assert len(checks.checked) == 1 and stored(link).failed_attempts == 1


# --- Simultaneous guesses (PostgreSQL) ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_wrong_guesses_checks_at_most_the_limit_and_a_late_right_one_never_opens(
    monkeypatch, postgres, physician, study
):
    """30 wrong guesses at once, their checks held open (a slow hash), then the right passcode:
    only the limit of wrong ones is checked, the right one is not checked, and the link locks."""
    link, token = share(study, physician)
    wrong_guesses = 30
    progress = threading.Condition()
    seen = {"checking": 0, "answered": 0}
    release = threading.Event()

    def hold_wrong_checks(passcode):
        if passcode == RIGHT:
            return
        with progress:
            seen["checking"] += 1
            progress.notify_all()
        assert release.wait(timeout=60)

    checks = HashChecks(monkeypatch, during=hold_wrong_checks)

    def guess(number):
        try:
            return Client().post(f"/s/{token}/", {"passcode": f"wrong-{number}"}).status_code
        finally:
            with progress:
                seen["answered"] += 1
                progress.notify_all()

    def right_one_last():
        try:
            with progress:
                # Every wrong guess is either being checked or already answered.
                assert progress.wait_for(lambda: seen["checking"] + seen["answered"] >= wrong_guesses, timeout=60)
            browser = Client()
            return browser, browser.post(f"/s/{token}/", {"passcode": RIGHT}).status_code
        finally:
            release.set()

    *wrong_statuses, (browser, right_status) = run_together(
        [lambda n=n: guess(n) for n in range(wrong_guesses)] + [right_one_last]
    )

    assert len(checks.wrong()) == LIMIT, checks.checked
    assert RIGHT not in checks.checked
    assert right_status == 429
    # The guesses whose checks were held all end on the lock; the others were told to try again.
    assert wrong_statuses.count(404) == LIMIT and wrong_statuses.count(429) == wrong_guesses - LIMIT
    link.refresh_from_db()
    assert link.status == "locked" and link.failed_attempts == LIMIT
    assert browser.get(f"/s/{token}/").status_code == 404
    assert Client().post(f"/s/{token}/", {"passcode": RIGHT}).status_code == 404
    assert RIGHT not in checks.checked


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_simultaneous_wrong_and_right_guesses_never_check_more_than_the_limit(monkeypatch, postgres, physician, study):
    """30 wrong guesses and the right one released at the same moment: the right one may be among
    the first tries (then it opens the link unless the lock came first, and gives its try back),
    but at most the limit of wrong ones is ever checked. The link locks once the limit of tries
    are wrong or still being checked, so the right one, while checked, may count towards it."""
    link, token = share(study, physician)
    checks = HashChecks(monkeypatch)

    def guess(passcode):
        browser = Client()
        status = browser.post(f"/s/{token}/", {"passcode": passcode}).status_code
        return browser, status

    answers = run_together([lambda n=n: guess(f"wrong-{n}") for n in range(30)] + [lambda: guess(RIGHT)])
    *wrong, (browser, right_status) = answers
    wrong_statuses = [status for _, status in wrong]

    assert len(checks.wrong()) <= LIMIT, checks.checked
    assert set(wrong_statuses) <= {400, 404, 429} and wrong_statuses.count(400) < LIMIT
    assert right_status in {302, 404, 429}
    assert right_status != 302 or RIGHT in checks.checked
    link.refresh_from_db()
    assert link.failed_attempts == len(checks.wrong())
    page = browser.get(f"/s/{token}/")
    if link.status == "locked":
        assert len(checks.wrong()) == LIMIT or (len(checks.wrong()) == LIMIT - 1 and RIGHT in checks.checked)
        assert page.status_code == 404
    else:  # fewer wrong ones were checked only because the right one held a try meanwhile
        assert len(checks.wrong()) < LIMIT and right_status == 302 and b"data-viewer" in page.content
