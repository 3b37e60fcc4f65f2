"""The consults API: create with validation, transitions mapped to 403/409, outsiders 404,
reports (draft, sign, addendum, PDF), attachments, participants and notifications."""

from __future__ import annotations

import io

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from consultations.models import ConsultRequest, Report, State
from tests.factories import SpecialistFactory, make_study

pytestmark = pytest.mark.django_db

BASE = "/api/v1/consults/"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def as_physician(auth_client, physician):
    return auth_client(physician)


@pytest.fixture
def as_specialist(auth_client, specialist):
    return auth_client(specialist)


def create_payload(study, **extra):
    payload = {
        "study_uid": study.study_instance_uid,
        "question": "Acute bleed?",
        "priority": "urgent",
        "specialty": "neuroradiology",
        "jurisdiction": "US-CA",
    }
    payload.update(extra)
    return payload


def test_physician_creates_and_submits_a_consult(as_physician, study, specialist):
    response = as_physician.post(BASE, create_payload(study), format="json")
    assert response.status_code == 201, response.data
    body = response.data
    assert body["state"] == "submitted"
    assert body["priority"] == "urgent"
    assert body["study"]["study_uid"] == study.study_instance_uid
    assert body["due_at"] and body["urgency"] == "ok"
    assert "cancel" in body["actions"]


def test_create_as_draft(as_physician, study):
    response = as_physician.post(BASE, create_payload(study, submit=False), format="json")
    assert response.status_code == 201
    assert response.data["state"] == "draft" and "submit" in response.data["actions"]


def test_jurisdiction_defaults_from_the_institution(as_physician, physician, study, specialist):
    physician.physician_profile.jurisdiction = "DE"
    physician.physician_profile.save()
    payload = create_payload(study)
    del payload["jurisdiction"]
    response = as_physician.post(BASE, payload, format="json")
    assert response.status_code == 201
    assert response.data["jurisdiction"] == "DE"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"study_uid": "1.2.3.999"}, "study_uid"),
        ({"study_uid": ""}, "study_uid"),
        ({"question": ""}, "question"),
        ({"question": "?"}, "question"),
        ({"question": "x" * 5001}, "question"),
        ({"priority": "whenever"}, "priority"),
        ({"specialty": "astrology"}, "specialty"),
        ({"specialty": ""}, "specialty"),
        ({"specialist_id": "abc", "specialty": ""}, "specialist_id"),
        ({"specialist_id": 999999}, "specialist_id"),
        ({"jurisdiction": "california"}, "jurisdiction"),
        ({"jurisdiction": ""}, "jurisdiction"),
        ({"clinical_history": "x" * 10001}, "clinical_history"),
        ({"outside_report": "x" * 20001}, "outside_report"),
        ({"submit": "perhaps"}, "submit"),
    ],
)
def test_bad_create_input_names_the_field(as_physician, study, change, field):
    response = as_physician.post(BASE, create_payload(study, **change), format="json")
    assert response.status_code == 400
    assert field in response.data, response.data
    assert field in response.data["detail"]


def test_specialist_not_licensed_in_the_jurisdiction_is_refused(as_physician, study, specialist):
    response = as_physician.post(BASE, create_payload(study, specialist_id=specialist.pk, jurisdiction="FR"), "json")
    assert response.status_code == 400
    assert "not licensed in FR" in response.data["specialist_id"][0]


def test_cannot_request_on_a_study_one_cannot_see(auth_client, outsider, study):
    response = auth_client(outsider).post(BASE, create_payload(study), format="json")
    assert response.status_code == 400
    assert "study_uid" in response.data


def test_patient_cannot_request_a_consult(auth_client, patient_user, study):
    response = auth_client(patient_user).post(BASE, create_payload(study), format="json")
    assert response.status_code == 403
    assert "physicians" in response.data["detail"]


@pytest.mark.parametrize("param", ["state=nonsense", "priority=later", "specialty=x", "scope=everything"])
def test_bad_list_filters_name_the_field(as_physician, param):
    response = as_physician.get(f"{BASE}?{param}")
    assert response.status_code == 400
    assert param.split("=")[0] in response.data


def test_list_is_filtered_by_role_and_state(as_physician, as_specialist, consult, auth_client, outsider):
    assert [c["id"] for c in as_physician.get(BASE).data["results"]] == [consult.pk]
    assert [c["id"] for c in as_specialist.get(f"{BASE}?scope=worklist").data["results"]] == [consult.pk]
    assert as_physician.get(f"{BASE}?state=closed").data["results"] == []
    assert auth_client(outsider).get(BASE).data["results"] == []


OUTSIDER_ROUTES = [
    ("get", ""),
    ("get", "events/"),
    ("post", "submit/"),
    ("post", "accept/"),
    ("post", "decline/"),
    ("post", "cancel/"),
    ("post", "request-info/"),
    ("post", "answer-info/"),
    ("post", "close/"),
    ("post", "participants/"),
    ("post", "attachments/"),
    ("get", "attachments/1/"),
    ("get", "report/"),
    ("put", "report/"),
    ("get", "report/versions/"),
    ("post", "report/sign/"),
    ("post", "report/addendum/"),
    ("get", "report/pdf/"),
]


@pytest.mark.parametrize(("method", "suffix"), OUTSIDER_ROUTES)
def test_outsider_gets_404_on_every_consult_route(auth_client, outsider, accepted, method, suffix):
    client = auth_client(outsider)
    response = getattr(client, method)(f"{BASE}{accepted.pk}/{suffix}", {}, format="json")
    assert response.status_code == 404


def test_unknown_consult_is_404(as_physician):
    assert as_physician.get(f"{BASE}999999/").status_code == 404


def test_unauthenticated_is_refused(api_client, consult):
    assert api_client.get(f"{BASE}{consult.pk}/").status_code in (401, 403)


def test_accept_then_conflict_names_the_winner(as_specialist, auth_client, other_specialist, consult):
    consult.offers.get_or_create(specialist=other_specialist, defaults={"reason": "matching"})
    assert as_specialist.post(f"{BASE}{consult.pk}/accept/").status_code == 200
    response = auth_client(other_specialist).post(f"{BASE}{consult.pk}/accept/")
    assert response.status_code == 409
    assert response.data["detail"] == "Dr Specialist already accepted this consult."
    assert response.data["taken_by"]["name"] == "Dr Specialist"
    assert response.data["code"] == "already_taken"


def test_wrong_role_action_is_403_with_reason(as_physician, consult):
    response = as_physician.post(f"{BASE}{consult.pk}/accept/")
    assert response.status_code == 403
    assert "approved specialist" in response.data["detail"]


def test_illegal_transition_is_409_with_reason(as_physician, consult):
    response = as_physician.post(f"{BASE}{consult.pk}/close/")
    assert response.status_code == 409
    assert "Cannot close a consult that is waiting for a specialist" in response.data["detail"]


@pytest.mark.parametrize(
    ("suffix", "field"),
    [("decline/", "reason"), ("request-info/", "question"), ("answer-info/", "answer")],
)
def test_action_bodies_are_validated(as_specialist, as_physician, accepted, suffix, field):
    client = as_physician if suffix == "answer-info/" else as_specialist
    response = client.post(f"{BASE}{accepted.pk}/{suffix}", {}, format="json")
    assert response.status_code == 400
    assert field in response.data


def test_full_loop_through_the_api(as_physician, as_specialist, consult, password, auth_client, patient_user):
    pk = consult.pk
    assert as_specialist.post(f"{BASE}{pk}/accept/").status_code == 200
    r = as_specialist.post(f"{BASE}{pk}/request-info/", {"question": "Prior CT?"}, format="json")
    assert r.status_code == 200 and r.data["state"] == "info_requested"
    r = as_physician.post(f"{BASE}{pk}/answer-info/", {"answer": "None."}, format="json")
    assert r.data["state"] == "accepted"
    r = as_specialist.put(
        f"{BASE}{pk}/report/",
        {"findings": "No haemorrhage.", "impression": "Normal.", "agreement": "agree", "patient_summary": "All fine."},
        format="json",
    )
    assert r.status_code == 200 and r.data["signed"] is False
    # The draft is the specialist's alone.
    assert as_physician.get(f"{BASE}{pk}/report/").status_code == 404
    assert auth_client(patient_user).get(f"{BASE}{pk}/report/").status_code == 404
    r = as_specialist.post(f"{BASE}{pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 200, r.data
    assert r.data["signed"] and len(r.data["content_sha256"]) == 64
    assert auth_client(patient_user).get(f"{BASE}{pk}/report/").data["impression"] == "Normal."
    assert as_physician.post(f"{BASE}{pk}/close/").data["state"] == "closed"
    events = [e["kind"] for e in as_physician.get(f"{BASE}{pk}/events/").data]
    assert events == [
        "submitted",
        "offered",
        "accepted",
        "info_requested",
        "info_answered",
        "reported",
        "closed",
    ]


def test_signing_needs_the_right_password(as_specialist, accepted):
    as_specialist.put(f"{BASE}{accepted.pk}/report/", {"findings": "F", "impression": "I"}, format="json")
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {}, format="json")
    assert r.status_code == 400 and "password" in r.data
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"password": "wrong"}, format="json")
    assert r.status_code == 400 and r.data["password"][0].startswith("The password or code is wrong.")
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"code": "123456"}, format="json")
    assert r.status_code == 400 and "code" in r.data
    assert not Report.objects.filter(consult=accepted, signed_at__isnull=False).exists()


def test_signing_pauses_after_five_wrong_passwords_and_never_checks_more(
    as_specialist, accepted, specialist, password, monkeypatch
):
    """Counted before checked: a right password after the limit is not even checked."""
    from concurrent.futures import ThreadPoolExecutor

    from consultations import reports

    as_specialist.put(f"{BASE}{accepted.pk}/report/", {"findings": "F", "impression": "I"}, format="json")
    checked = []
    real_check = type(specialist).check_password

    def counting_check(user, raw):
        checked.append(raw)
        return real_check(user, raw)

    monkeypatch.setattr(type(specialist), "check_password", counting_check)
    # Twenty simultaneous wrong guesses: at most the limit is checked.
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(
            pool.map(
                lambda n: reports_check(reports, specialist, f"guess-{n}"),
                range(20),
            )
        )
    assert len(checked) == reports.REAUTH_FAILURE_LIMIT
    assert outcomes.count(429) == 20 - reports.REAUTH_FAILURE_LIMIT
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 429 and r.data["code"] == "reauthentication_locked"
    assert len(checked) == reports.REAUTH_FAILURE_LIMIT  # the right one was not checked either
    assert not Report.objects.filter(consult=accepted, signed_at__isnull=False).exists()


def reports_check(reports, user, guess: str) -> int:
    from consultations.errors import ReauthenticationError

    try:
        reports.check_reauthentication(user, password=guess)
    except ReauthenticationError as exc:
        return exc.status
    return 200


def test_a_right_password_gives_its_try_back(specialist, password):
    from consultations import reports
    from consultations.errors import ReauthenticationError

    for _ in range(reports.REAUTH_FAILURE_LIMIT - 1):
        with pytest.raises(ReauthenticationError):
            reports.check_reauthentication(specialist, password="wrong")
    for _ in range(3):
        reports.check_reauthentication(specialist, password=password)  # never counted against them
    with pytest.raises(ReauthenticationError, match="Signing is now paused"):
        reports.check_reauthentication(specialist, password="wrong")


def test_signing_needs_findings_and_impression(as_specialist, accepted, password):
    as_specialist.put(f"{BASE}{accepted.pk}/report/", {"findings": "", "impression": ""}, format="json")
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 409
    assert "findings" in r.data["detail"] and r.data["fields"] == ["findings", "impression"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agreement": "maybe"}, "agreement"),
        ({"findings": "x" * 50001}, "findings"),
        ({"impression": 12}, None),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_report_draft_fields_are_validated(as_specialist, accepted, body, field):
    r = as_specialist.put(f"{BASE}{accepted.pk}/report/", body, format="json")
    if field is None:
        assert r.status_code == 200  # numbers are coerced to text
    else:
        assert r.status_code == 400 and field in r.data


def test_only_the_assignee_writes_the_report(as_physician, accepted):
    r = as_physician.put(f"{BASE}{accepted.pk}/report/", {"findings": "x"}, format="json")
    assert r.status_code == 403


def test_signed_report_is_immutable_and_addendum_is_a_new_version(
    as_specialist, as_physician, accepted, password, auth_client, patient_user
):
    pk = accepted.pk
    as_specialist.put(f"{BASE}{pk}/report/", {"findings": "F1", "impression": "I1"}, format="json")
    as_specialist.post(f"{BASE}{pk}/report/sign/", {"password": password}, format="json")
    first = Report.objects.get(consult=accepted, version=1)
    r = as_specialist.put(f"{BASE}{pk}/report/", {"findings": "changed"}, format="json")
    assert r.status_code == 409 and "addendum" in r.data["detail"]
    assert as_specialist.post(f"{BASE}{pk}/report/addendum/", {}, format="json").status_code == 400
    r = as_specialist.post(f"{BASE}{pk}/report/addendum/", {"reason": "Missed a fracture."}, format="json")
    assert r.status_code == 201 and r.data["version"] == 2 and r.data["findings"] == "F1"
    as_specialist.put(f"{BASE}{pk}/report/", {"findings": "F1 plus a skull fracture."}, format="json")
    # The patient still reads version 1 until the addendum is signed.
    assert auth_client(patient_user).get(f"{BASE}{pk}/report/").data["version"] == 1
    r = as_specialist.post(f"{BASE}{pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 200 and r.data["version"] == 2
    versions = as_physician.get(f"{BASE}{pk}/report/versions/").data
    assert [v["version"] for v in versions] == [1, 2]
    first.refresh_from_db()
    assert first.findings == "F1" and first.verify_hash()
    assert accepted.events.filter(kind="addendum").exists()


def test_addendum_before_report_is_illegal(as_specialist, accepted):
    r = as_specialist.post(f"{BASE}{accepted.pk}/report/addendum/", {"reason": "x"}, format="json")
    assert r.status_code == 409


def test_attachments_are_checked_by_content(as_physician, consult, settings, client, physician, outsider):
    url = f"{BASE}{consult.pk}/attachments/"
    r = as_physician.post(url, {"file": SimpleUploadedFile("scan.png", png_bytes(), "image/png")})
    assert r.status_code == 201 and r.data["kind"] == "png"
    r = as_physician.post(url, {"file": SimpleUploadedFile("letter.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")})
    assert r.status_code == 201 and r.data["kind"] == "pdf"
    client.force_login(physician)
    download = client.get(r.data["url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    client.force_login(outsider)
    assert client.get(r.data["url"]).status_code == 404
    api_download = as_physician.get(f"{url}{r.data['id']}/")
    assert api_download.status_code == 200 and b"".join(api_download.streaming_content).startswith(b"%PDF-")
    assert as_physician.get(f"{url}999999/").status_code == 404
    r = as_physician.post(url, {"file": SimpleUploadedFile("evil.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")})
    assert r.status_code == 400 and "file" in r.data and "PDF, PNG or JPEG" in r.data["file"][0]
    r = as_physician.post(url, {"file": SimpleUploadedFile("broken.png", b"\x89PNG\r\n\x1a\nxx", "image/png")})
    assert r.status_code == 400 and "damaged" in r.data["file"][0]
    settings.TELECONSULT_ATTACHMENT_MAX_SIZE = 10
    r = as_physician.post(url, {"file": SimpleUploadedFile("big.png", png_bytes(), "image/png")})
    assert r.status_code == 400 and "at most 10 bytes" in r.data["file"][0]
    r = as_physician.post(url, {})
    assert r.status_code == 400 and "file" in r.data


def test_participants_via_api_join_once_they_accept(as_physician, consult, colleague, auth_client):
    url = f"{BASE}{consult.pk}/participants/"
    assert as_physician.post(url, {"email": "not-an-email"}, format="json").data["email"]
    r = as_physician.post(url, {"email": colleague.email}, format="json")
    assert r.status_code == 202 and r.data["status"] == "invited"
    assert auth_client(colleague).get(f"{BASE}{consult.pk}/").status_code == 404  # not before accepting
    answer = auth_client(colleague).post(f"/api/v1/colleague-invitations/{r.data['invitation_id']}/accept/")
    assert answer.status_code == 200 and answer.data == {"status": "joined"}
    assert as_physician.get(f"{BASE}{consult.pk}/").data["participants"][0]["id"] == colleague.pk
    assert auth_client(colleague).get(f"{BASE}{consult.pk}/").status_code == 200
    r = as_physician.delete(f"{url}{colleague.pk}/")
    assert r.status_code == 200 and r.data["participants"] == []
    assert auth_client(colleague).get(f"{BASE}{consult.pk}/").status_code == 404


def test_patient_sees_own_consults_but_not_drafts(auth_client, patient_user, physician, consult, study):
    as_patient = auth_client(patient_user)
    assert as_patient.get(f"{BASE}{consult.pk}/").status_code == 200
    draft = ConsultRequest.objects.create(
        study=study, requester=physician, question="Draft q", specialty="chest", jurisdiction="US"
    )
    assert as_patient.get(f"{BASE}{draft.pk}/").status_code == 404
    other = make_study(uploader=physician)
    theirs = ConsultRequest.objects.create(
        study=other, requester=physician, question="Other", specialty="chest", jurisdiction="US", state=State.SUBMITTED
    )
    assert as_patient.get(f"{BASE}{theirs.pk}/").status_code == 404


def test_pool_specialist_not_offered_gets_404(auth_client, consult):
    cardio = SpecialistFactory(email="cardio@example.com", profile__specialties=["cardiac"])
    assert auth_client(cardio).get(f"{BASE}{consult.pk}/").status_code == 404


def test_report_templates_are_seeded(as_specialist):
    names = {t["name"] for t in as_specialist.get("/api/v1/report-templates/").data}
    assert {"CT head", "Chest radiograph", "MRI knee", "Skin photo"} <= names


def test_draft_starts_from_the_matching_template(as_specialist, accepted):
    r = as_specialist.put(f"{BASE}{accepted.pk}/report/", {"agreement": "minor"}, format="json")
    assert r.data["template"] == "CT head"
    assert "Midline shift" in r.data["findings"]


def test_notifications_api(auth_client, physician, accepted):
    client = auth_client(physician)
    body = client.get("/api/v1/notifications/").data
    assert body["unread"] == 1 and body["results"][0]["kind"] == "accepted"
    assert client.get("/api/v1/notifications/?unread=maybe").status_code == 400
    assert client.post("/api/v1/notifications/read/", {"ids": ["x"]}, format="json").status_code == 400
    r = client.post("/api/v1/notifications/read/", {}, format="json")
    assert r.data == {"marked": 1, "unread": 0}


def test_schema_renders_without_warnings(as_physician, capsys):
    from drf_spectacular.generators import SchemaGenerator

    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    paths = schema["paths"]
    for path in [
        "/api/v1/consults/",
        "/api/v1/consults/{id}/",
        "/api/v1/consults/{id}/events/",
        "/api/v1/consults/{id}/accept/",
        "/api/v1/consults/{id}/request-info/",
        "/api/v1/consults/{id}/report/",
        "/api/v1/consults/{id}/report/sign/",
        "/api/v1/consults/{id}/report/addendum/",
        "/api/v1/consults/{id}/report/pdf/",
        "/api/v1/notifications/",
    ]:
        assert path in paths, path
    captured = capsys.readouterr()
    consult_warnings = [
        line for line in (captured.err + captured.out).splitlines() if "consultations" in line or "Consult" in line
    ]
    assert consult_warnings == []
    assert as_physician.get("/api/v1/schema/").status_code == 200


def test_signing_with_a_totp_code(as_specialist, specialist, accepted):
    import time

    from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
    from django.core.cache import cache

    cache.clear()  # allauth remembers used codes in the cache
    secret = generate_totp_secret()
    TOTP.activate(specialist, secret)
    now = time.time()
    code = format_hotp_value(hotp_value(secret, int(now) // 30))
    with time_machine.travel(now, tick=False):
        as_specialist.put(f"{BASE}{accepted.pk}/report/", {"findings": "F", "impression": "I"}, format="json")
        r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"code": code}, format="json")
        assert r.status_code == 200, r.data
        assert r.data["signed_by"]["id"] == specialist.pk
        # The same code does not sign twice.
        as_specialist.post(f"{BASE}{accepted.pk}/report/addendum/", {"reason": "More"}, format="json")
        r = as_specialist.post(f"{BASE}{accepted.pk}/report/sign/", {"code": code}, format="json")
        assert r.status_code == 400 and "code" in r.data


def test_scope_mine_includes_consults_shared_with_a_colleague(as_physician, auth_client, consult, colleague, physician):
    from consultations import actions

    actions.add_participant(consult, by=physician, user=colleague)
    as_colleague = auth_client(colleague)
    assert [c["id"] for c in as_colleague.get(f"{BASE}?scope=mine").data["results"]] == [consult.pk]
    assert [c["id"] for c in as_physician.get(f"{BASE}?scope=mine&priority=routine").data["results"]] == [consult.pk]
    assert as_physician.get(f"{BASE}?scope=mine&priority=stat").data["results"] == []
