"""Specialists' licences: what is accepted, the rule routing and claiming read (verified and
unexpired that day), expiry reminders, and the REST API."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts import licences
from accounts.models import Licence, SpecialistEvent
from consultations import actions, offers
from consultations.licence_reminders import remind_expiring, remind_expiring_licences
from consultations.models import ConsultOffer, Notification
from tests.factories import ConsultFactory, SpecialistFactory, make_study

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
DAY = dt.timedelta(days=1)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, "PNG")
    return buffer.getvalue()


def pdf(name: str = "licence.pdf", data: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


@pytest.fixture
def other_specialist(db):
    return SpecialistFactory(email="other.specialist@example.com", name="Dr Other")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TELECONSULT_LICENCE_RULE = True


def licence_for(specialist, jurisdiction="US-CA", *, expires_on=None, status=Licence.Status.VERIFIED, by=None):
    """A licence entered through the module, then given ``status`` and ``expires_on`` directly (an
    expiry in the past cannot be entered: that is what the test of the rule needs)."""
    licence = licences.add_licence(
        specialist,
        jurisdiction=jurisdiction,
        number=f"L-{Licence.objects.count() + 1}",
        expires_on=licences.today() + dt.timedelta(days=365),
        document=pdf(),
        by=specialist,
    )
    Licence.objects.filter(pk=licence.pk).update(
        status=status, expires_on=expires_on or licences.today() + dt.timedelta(days=365)
    )
    licence.refresh_from_db()
    return licence


# -- what a licence must be --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"),
    [("de", "DE"), ("US-CA", "US-CA"), ("Germany", "DE"), ("california", "US-CA"), (" fr ", "FR")],
)
def test_jurisdiction_is_an_iso_code_or_a_place_name(typed, code):
    assert licences.normalize_jurisdiction(typed) == code


@pytest.mark.parametrize("typed", ["Narnia", "", "XX", "US-ZZ"])
def test_unknown_jurisdiction_is_refused_naming_the_field(typed):
    with pytest.raises(licences.LicenceInputError) as caught:
        licences.normalize_jurisdiction(typed)
    assert caught.value.field == "jurisdiction"
    assert caught.value.as_json()["jurisdiction"]


def test_expiry_in_the_past_is_refused(specialist):
    with pytest.raises(licences.LicenceInputError) as caught:
        licences.add_licence(
            specialist, jurisdiction="DE", number="1", expires_on=licences.today() - DAY, document=pdf(), by=specialist
        )
    assert caught.value.field == "expires_on"
    assert "in the past" in caught.value.message
    assert not Licence.objects.exists()


@pytest.mark.parametrize(
    ("upload", "says"),
    [
        (SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf"), "PDF, PNG or JPEG"),
        (SimpleUploadedFile("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, content_type="image/png"), "damaged"),
        (SimpleUploadedFile("x.pdf", b"", content_type="application/pdf"), "empty"),
    ],
)
def test_document_of_another_type_or_damaged_is_refused(specialist, upload, says):
    with pytest.raises(licences.LicenceInputError) as caught:
        licences.add_licence(
            specialist, jurisdiction="DE", number="1", expires_on=licences.today() + DAY, document=upload, by=specialist
        )
    assert caught.value.field == "document"
    assert says in caught.value.message


def test_document_larger_than_the_limit_is_refused(specialist, settings):
    settings.TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE = 1000
    with pytest.raises(licences.LicenceInputError) as caught:
        licences.add_licence(
            specialist,
            jurisdiction="DE",
            number="1",
            expires_on=licences.today() + DAY,
            document=pdf(data=PDF + b" " * 2000),
            by=specialist,
        )
    assert caught.value.field == "document"
    assert "at most 1000 bytes" in caught.value.message


def test_a_png_scan_is_kept_under_a_name_that_says_nothing_of_its_owner(specialist):
    licence = licences.add_licence(
        specialist,
        jurisdiction="Germany",
        number="ÄK-123",
        expires_on=licences.today() + DAY,
        document=SimpleUploadedFile("dr-specialist-licence.png", png_bytes(), content_type="image/png"),
        by=specialist,
    )
    assert licence.jurisdiction == "DE" and licence.status == Licence.Status.PENDING
    assert licence.document_kind == "png" and licence.document_name == "dr-specialist-licence.png"
    assert "specialist" not in licence.document.name
    assert SpecialistEvent.objects.filter(specialist=specialist, action="licence_added", actor=specialist).exists()


def test_a_change_sends_a_verified_licence_back_for_verification(specialist, admin_user):
    licence = licence_for(specialist)
    Licence.objects.filter(pk=licence.pk).update(reminded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    licences.change_licence(licence, by=specialist, expires_on=licences.today() + dt.timedelta(days=700))
    licence.refresh_from_db()
    assert licence.status == Licence.Status.PENDING and licence.reviewed_by is None
    assert licence.reminded_at is None  # a new expiry date earns a new reminder


# -- the rule routing and claiming read ----------------------------------------------------------


@pytest.fixture
def pool_consult(physician):
    return ConsultFactory(requester=physician, study=make_study(uploader=physician), jurisdiction="US-CA")


def test_specialist_whose_only_licence_expired_yesterday_is_not_offered_the_consult(pool_consult, physician):
    lapsed = SpecialistFactory(email="lapsed@example.com", profile__jurisdictions=["US"])
    licence_for(lapsed, "US-CA", expires_on=licences.today() - DAY)
    current = SpecialistFactory(email="current@example.com", profile__jurisdictions=["US"])
    licence_for(current, "US", expires_on=licences.today())  # good through its last day, country-wide

    actions.submit_consult(pool_consult, by=physician)

    offered = set(pool_consult.offers.values_list("specialist__email", flat=True))
    assert offered == {"current@example.com"}


def test_specialist_whose_only_licence_expired_yesterday_cannot_claim(pool_consult, physician):
    lapsed = SpecialistFactory(email="lapsed@example.com")
    licence = licence_for(lapsed, "US-CA")
    actions.submit_consult(pool_consult, by=physician)
    assert pool_consult.offers.filter(specialist=lapsed).exists()
    Licence.objects.filter(pk=licence.pk).update(expires_on=licences.today() - DAY)  # the day after it lapsed

    with pytest.raises(licences.LicenceRequiredError) as caught:
        actions.accept_consult(pool_consult, by=lapsed)

    assert caught.value.status == 403 and caught.value.code == "licence_required"
    assert "US-CA" in caught.value.message and "expired on" in caught.value.message
    pool_consult.refresh_from_db()
    assert pool_consult.state == "submitted" and pool_consult.assignee is None


@pytest.mark.parametrize("status", [Licence.Status.PENDING, Licence.Status.REJECTED])
def test_unverified_licences_do_not_count(pool_consult, physician, status):
    waiting = SpecialistFactory(email="waiting@example.com")
    licence_for(waiting, "US-CA", status=status)
    assert [p.user for p in offers.matching_profiles(pool_consult)] == []


def test_a_licence_elsewhere_does_not_count(pool_consult):
    abroad = SpecialistFactory(email="abroad@example.com")
    licence_for(abroad, "US-NY")
    licence_for(abroad, "DE")
    assert offers.matching_profiles(pool_consult) == []


def test_suspended_specialist_is_neither_offered_nor_may_claim(pool_consult, physician, admin_user):
    from accounts import specialists

    held = SpecialistFactory(email="held@example.com")
    licence_for(held, "US-CA")
    actions.submit_consult(pool_consult, by=physician)
    specialists.suspend(held, by=admin_user, reason="Complaint under review")
    held.refresh_from_db()
    assert offers.matching_profiles(pool_consult) == []
    with pytest.raises(Exception, match="approved specialist"):
        actions.accept_consult(pool_consult, by=held)


def test_named_specialist_without_a_valid_licence_is_refused_at_submission(
    physician, django_capture_on_commit_callbacks
):
    named = SpecialistFactory(email="named@example.com")
    licence_for(named, "US-CA", expires_on=licences.today() - DAY)
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician), target_specialist=named)
    with pytest.raises(licences.LicenceRequiredError, match="holds no verified licence for US-CA"):
        actions.submit_consult(consult, by=physician)
    assert not ConsultOffer.objects.exists()


def test_licensed_specialist_claims(pool_consult, physician):
    current = SpecialistFactory(email="current@example.com")
    licence_for(current, "US-CA")
    actions.submit_consult(pool_consult, by=physician)
    actions.accept_consult(pool_consult, by=current)
    pool_consult.refresh_from_db()
    assert pool_consult.assignee == current


def test_without_the_rule_the_profile_jurisdictions_decide(pool_consult, settings):
    settings.TELECONSULT_LICENCE_RULE = False
    declared = SpecialistFactory(email="declared@example.com", profile__jurisdictions=["US"])
    assert [p.user for p in offers.matching_profiles(pool_consult)] == [declared]


# -- reminders ---------------------------------------------------------------------------------


def test_specialist_and_administrators_are_reminded_once_thirty_days_ahead(
    specialist, admin_user, django_capture_on_commit_callbacks
):
    due = licence_for(specialist, "DE", expires_on=licences.today() + dt.timedelta(days=30))
    licence_for(specialist, "US", expires_on=licences.today() + dt.timedelta(days=31))  # not yet
    licence_for(specialist, "FR", expires_on=licences.today() + DAY, status=Licence.Status.REJECTED)

    with django_capture_on_commit_callbacks(execute=True):
        assert remind_expiring_licences.delay().get() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert remind_expiring() == 0  # the next day's run: already reminded

    own = Notification.objects.get(user=specialist)
    assert own.kind == "licence_expiring" and due.number in own.title and own.url == "/specialists/licences/"
    told = Notification.objects.get(user=admin_user)
    assert specialist.display_name in told.title and told.url == f"/specialists/{specialist.pk}/"
    assert sorted(to for message in mail.outbox for to in message.to) == [admin_user.email, specialist.email]
    due.refresh_from_db()
    assert due.reminded_at is not None
    assert SpecialistEvent.objects.filter(action="licence_reminded", licence=due).count() == 1


# -- REST API ----------------------------------------------------------------------------------


API = "/api/v1/licences/"


def test_specialist_adds_a_licence_over_the_api(auth_client, specialist):
    client = auth_client(specialist)
    expiry = (licences.today() + dt.timedelta(days=90)).isoformat()
    response = client.post(
        API, {"jurisdiction": "US-CA", "number": "A123", "expires_on": expiry, "document": pdf()}, format="multipart"
    )
    assert response.status_code == 201, response.data
    assert response.data["status"] == "pending" and response.data["valid_today"] is False
    assert [row["number"] for row in client.get(API).data["results"]] == ["A123"]
    document = client.get(response.data["document"])
    assert document.status_code == 200 and b"".join(document.streaming_content) == PDF


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires_on": "2001-01-01"}, "expires_on"),
        ({"expires_on": "soon"}, "expires_on"),
        ({"jurisdiction": "Atlantis"}, "jurisdiction"),
        ({"document": SimpleUploadedFile("x.exe", b"MZ\x90\x00", content_type="application/pdf")}, "document"),
        ({"number": ""}, "number"),
    ],
)
def test_bad_licence_input_answers_400_naming_the_field(auth_client, specialist, change, field):
    body = {
        "jurisdiction": "DE",
        "number": "1",
        "expires_on": (licences.today() + DAY).isoformat(),
        "document": pdf(),
        **change,
    }
    response = auth_client(specialist).post(API, body, format="multipart")
    assert response.status_code == 400
    assert field in response.data and response.data["detail"]
    assert not Licence.objects.exists()


def test_huge_document_answers_400(auth_client, specialist, settings):
    settings.TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE = 4096
    body = {
        "jurisdiction": "DE",
        "number": "1",
        "expires_on": (licences.today() + DAY).isoformat(),
        "document": pdf(data=PDF + b"0" * 10_000),
    }
    response = auth_client(specialist).post(API, body, format="multipart")
    assert response.status_code == 400 and "document" in response.data


def test_administrator_verifies_and_the_licence_counts(auth_client, specialist, admin_user):
    licence = licence_for(specialist, status=Licence.Status.PENDING)
    response = auth_client(admin_user).post(f"{API}{licence.pk}/verify/")
    assert response.status_code == 200 and response.data["status"] == "verified" and response.data["valid_today"]
    assert response.data["reviewed_by"] == admin_user.pk
    rejected = auth_client(admin_user).post(f"{API}{licence.pk}/reject/", {"reason": ""}, format="json")
    assert rejected.status_code == 400 and "reason" in rejected.data


def test_specialist_cannot_verify_their_own_licence(auth_client, specialist):
    licence = licence_for(specialist, status=Licence.Status.PENDING)
    assert auth_client(specialist).post(f"{API}{licence.pk}/verify/").status_code == 404
    licence.refresh_from_db()
    assert licence.status == "pending"


def test_outsider_gets_404_for_a_licence_and_its_document(auth_client, specialist, outsider, other_specialist):
    licence = licence_for(specialist)
    for user in (outsider, other_specialist):
        client = auth_client(user)
        assert client.get(f"{API}{licence.pk}/").status_code == 404
        assert client.get(f"{API}{licence.pk}/document/").status_code == 404
        assert client.patch(f"{API}{licence.pk}/", {"number": "X"}, format="multipart").status_code == 404
        assert client.get(API).data["results"] == []


def test_administrators_list_approve_and_suspend_over_the_api(auth_client, admin_user):
    newcomer = SpecialistFactory(email="new@example.com", profile__approved_at=None)
    client = auth_client(admin_user)
    pending = client.get("/api/v1/specialists/?filter=pending")
    assert [row["email"] for row in pending.data["results"]] == ["new@example.com"]
    assert client.get("/api/v1/specialists/?filter=nonsense").status_code == 400
    assert client.post(f"/api/v1/specialists/{newcomer.pk}/approve/").data["profile"]["approved_at"]
    assert client.post(f"/api/v1/specialists/{newcomer.pk}/suspend/", {}, format="json").status_code == 400
    suspended = client.post(f"/api/v1/specialists/{newcomer.pk}/suspend/", {"reason": "Lapsed"}, format="json")
    assert suspended.data["profile"]["suspension_reason"] == "Lapsed"
    actions_taken = list(SpecialistEvent.objects.filter(specialist=newcomer).values_list("action", "actor"))
    assert actions_taken == [("suspended", admin_user.pk), ("approved", admin_user.pk)]


def test_specialists_api_is_404_for_everyone_but_administrators(auth_client, specialist):
    assert auth_client(specialist).get("/api/v1/specialists/").status_code == 404
    assert auth_client(specialist).post(f"/api/v1/specialists/{specialist.pk}/approve/").status_code == 404


def test_the_schema_documents_licences_and_specialists(auth_client, admin_user):
    schema = auth_client(admin_user).get("/api/v1/schema/?format=json").json()
    assert "/api/v1/licences/" in schema["paths"]
    assert "/api/v1/specialists/{id}/suspend/" in schema["paths"]


def test_administrators_invite_over_the_api(auth_client, admin_user, specialist, django_capture_on_commit_callbacks):
    client = auth_client(admin_user)
    url = "/api/v1/specialists/invitations/"
    assert client.post(url, {"email": "x@example.com", "specialties": ["astrology"]}, format="json").status_code == 400
    taken = client.post(url, {"email": specialist.email, "specialties": ["chest"]}, format="json")
    assert taken.status_code == 400 and "email" in taken.data
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(url, {"email": "New@Example.com", "specialties": ["chest"]}, format="json")
    assert made.status_code == 201 and made.data["email"] == "new@example.com" and made.data["status"] == "pending"
    assert [message.to for message in mail.outbox] == [["new@example.com"]]
    assert auth_client(specialist).post(url, {"email": "y@example.com", "specialties": ["chest"]}).status_code == 404
