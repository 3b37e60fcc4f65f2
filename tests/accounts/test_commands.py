"""manage.py createuser and seed_demo."""

from __future__ import annotations

import sys
import types
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import PhysicianProfile, SpecialistProfile, User


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createuser_makes_a_ready_verified_account(db):
    output = run(
        "createuser", "Doc@Example.com", "--role", "physician", "--password", "a-long-fine-password", "--name", "Dr Doc"
    )
    user = User.objects.get(email="doc@example.com")
    assert "Created physician doc@example.com" in output
    assert user.check_password("a-long-fine-password")
    assert user.name == "Dr Doc" and user.role == "physician" and user.is_active
    assert not user.is_staff
    address = EmailAddress.objects.get(user=user)
    assert address.verified and address.primary
    assert PhysicianProfile.objects.filter(user=user).exists()


def test_createuser_account_can_sign_in_at_once(client, db):
    run("createuser", "fresh@example.com", "--role", "patient", "--password", "a-long-fine-password")
    response = client.post("/accounts/login/", {"login": "fresh@example.com", "password": "a-long-fine-password"})
    assert response["Location"] == "/"


def test_createuser_specialist_is_approved_with_specialties_and_jurisdictions(db):
    run(
        "createuser", "spec@example.com", "--role", "specialist", "--password", "a-long-fine-password",
        "--specialty", "chest", "General radiology", "--specialty", "nuclear-medicine",
        "--jurisdiction", "us-ca", "DE",
    )  # fmt: skip
    user = User.objects.get(email="spec@example.com")
    profile = SpecialistProfile.objects.get(user=user)
    assert profile.specialties == ["chest", "general_radiology", "nuclear_medicine"]
    assert profile.jurisdictions == ["US-CA", "DE"]
    assert profile.is_approved
    assert user.may_take_consults


def test_createuser_admin_is_staff_and_superuser(db):
    run("createuser", "boss@example.com", "--role", "admin", "--password", "a-long-fine-password")
    user = User.objects.get(email="boss@example.com")
    assert user.is_staff and user.is_superuser and user.is_admin


def test_createuser_without_password_generates_and_prints_one(db):
    output = run("createuser", "gen@example.com", "--role", "patient")
    printed = output.split("Password: ")[1].strip()
    assert len(printed) >= 12
    assert User.objects.get(email="gen@example.com").check_password(printed)


def test_createuser_rerun_updates_role_name_and_password(db):
    run("createuser", "again@example.com", "--role", "admin", "--password", "a-long-fine-password")
    output = run(
        "createuser",
        "again@example.com",
        "--role",
        "physician",
        "--name",
        "Renamed",
        "--password",
        "another-long-password",
    )
    assert "Updated physician again@example.com" in output
    user = User.objects.get(email="again@example.com")
    assert user.role == "physician" and user.name == "Renamed"
    assert not user.is_staff and not user.is_superuser
    assert user.check_password("another-long-password")
    assert User.objects.filter(email="again@example.com").count() == 1
    assert EmailAddress.objects.filter(user=user).count() == 1


def test_createuser_rerun_without_password_keeps_it(db):
    run("createuser", "keep@example.com", "--role", "patient", "--password", "a-long-fine-password")
    output = run("createuser", "keep@example.com", "--role", "patient")
    assert "Password unchanged" in output
    assert User.objects.get(email="keep@example.com").check_password("a-long-fine-password")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "specialist", "--specialty", "astrology"], "Unknown specialty 'astrology'"),
        (["--role", "specialist", "--jurisdiction", "Narnia"], "'Narnia' is not a jurisdiction"),
        (["--role", "specialist", "--jurisdiction", "U1"], "ISO 3166"),
        (["--role", "patient", "--specialty", "chest"], "only for the specialist role"),
        (["--role", "patient", "--jurisdiction", "DE"], "Jurisdictions are only for"),
        (["--role", "physician", "--jurisdiction", "DE", "FR"], "one --jurisdiction"),
        (["--role", "patient", "--password", "short"], "Password refused"),
        (["--role", "physician", "--name", "Dr\nBcc: x@example.com"], "--name: A name cannot contain line breaks"),
    ],
)
def test_createuser_bad_arguments_are_clear_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("createuser", "bad@example.com", *args)
    assert not User.objects.filter(email="bad@example.com").exists()


def test_createuser_bad_email_is_a_clear_error(db):
    with pytest.raises(CommandError, match="not a valid email"):
        run("createuser", "not-an-email", "--role", "patient")


def test_createuser_unknown_role_is_refused(db):
    with pytest.raises(CommandError, match="invalid choice"):
        run("createuser", "x@example.com", "--role", "wizard")


DEMO_EMAILS = ["admin@example.com", "physician@example.com", "specialist@example.com", "patient@example.com"]


def test_seed_demo_creates_the_demo_accounts(db, settings):
    settings.DEBUG = True
    output = run("seed_demo")
    for email in DEMO_EMAILS:
        user = User.objects.get(email=email)
        assert user.check_password(DEMO_PASSWORD)
        assert EmailAddress.objects.get(user=user).verified
    assert DEMO_PASSWORD == "demo-pass-2026"
    assert DEMO_PASSWORD in output
    specialist = User.objects.get(email="specialist@example.com")
    profile = specialist.specialist_profile
    assert profile.specialties == ["neuroradiology", "general_radiology", "chest"]
    assert profile.jurisdictions == ["US", "DE"]
    assert specialist.may_take_consults
    assert User.objects.get(email="admin@example.com").is_superuser


def test_seed_demo_specialist_is_always_on_call(db, settings):
    import datetime as dt

    settings.DEBUG = True
    run("seed_demo")
    profile = User.objects.get(email="specialist@example.com").specialist_profile
    for hour in range(0, 24 * 7, 5):
        moment = dt.datetime(2026, 11, 23, tzinfo=dt.UTC) + dt.timedelta(hours=hour, minutes=59, seconds=59)
        assert profile.is_on_call(moment), moment


def test_seed_demo_is_idempotent(db, settings):
    settings.DEBUG = True
    run("seed_demo")
    counts = (User.objects.count(), EmailAddress.objects.count(), SpecialistProfile.objects.count())
    output = run("seed_demo")
    assert (User.objects.count(), EmailAddress.objects.count(), SpecialistProfile.objects.count()) == counts
    assert "up to date" in output


def test_seed_demo_refuses_without_debug(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        run("seed_demo")
    assert not User.objects.filter(email__in=DEMO_EMAILS).exists()


def test_seed_demo_force_runs_without_debug(db, settings):
    settings.DEBUG = False
    run("seed_demo", "--force")
    assert User.objects.filter(email__in=DEMO_EMAILS).count() == 4


def test_seed_demo_calls_the_study_and_consult_seeders(db, settings, monkeypatch):
    settings.DEBUG = True
    calls = {}

    studies_demo = types.ModuleType("studies.demo")

    def seed_demo_study(physician, patient_user):
        calls["study"] = (physician.email, patient_user.email)
        return "the-study"

    studies_demo.seed_demo_study = seed_demo_study
    consultations_demo = types.ModuleType("consultations.demo")

    def seed_demo_consult(*, study, physician, specialist):
        calls["consult"] = (study, physician.email, specialist.email)

    consultations_demo.seed_demo_consult = seed_demo_consult
    monkeypatch.setitem(sys.modules, "studies.demo", studies_demo)
    monkeypatch.setitem(sys.modules, "consultations.demo", consultations_demo)

    run("seed_demo")
    assert calls["study"] == ("physician@example.com", "patient@example.com")
    assert calls["consult"] == ("the-study", "physician@example.com", "specialist@example.com")


def test_seed_demo_skips_missing_seeders_with_a_note(db, settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setitem(sys.modules, "studies.demo", None)  # import fails like a missing module
    monkeypatch.setitem(sys.modules, "consultations.demo", None)
    output = run("seed_demo")
    assert "Skipped seed_demo_study" in output
    assert "Skipped seed_demo_consult" in output
