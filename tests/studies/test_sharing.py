"""Share links: the API that makes, lists and revokes them, and what the holder of one can reach."""

from __future__ import annotations

import datetime as dt
import io
import secrets
import zipfile

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studies import sharing
from studies.models import AccessEvent, ShareLink, Study
from tests.studies.test_dicomweb_helpers import store_dataset

pytestmark = pytest.mark.django_db

UNAVAILABLE = b"This link does not work"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def ct(physician):
    """Jane Doe's CT (two instances), stored by the physician."""
    ds = store_dataset(physician)
    store_dataset(
        physician, StudyInstanceUID=ds.StudyInstanceUID, SeriesInstanceUID=ds.SeriesInstanceUID, InstanceNumber=2
    )
    return ds


@pytest.fixture
def other(physician):
    return store_dataset(physician, PatientID="PID-2", PatientName="Smith^John", StudyDescription="Knee MR")


def make_link(ds, by, **options) -> str:
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    return sharing.create_share(study=study, by=by, **options).token


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- API --------------------------------------------------------------------------------------


def test_physician_makes_a_link_and_sees_the_full_url_only_once(auth_client, physician, ct):
    api = auth_client(physician)
    answer = api.post(
        "/api/v1/shares/",
        {"study_uid": ct.StudyInstanceUID, "passcode": "4711-xyz", "allow_download": True},
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    token = data["url"].removeprefix("/s/")
    assert len(token) >= 40
    assert data["has_passcode"] is True and data["allow_download"] is True and data["status"] == "active"
    link = ShareLink.objects.get(pk=data["id"])
    assert link.token_hash == sharing.hash_token(token) and token not in link.token_hash
    assert "4711-xyz" not in link.passcode_hash
    expected = timezone.now() + dt.timedelta(days=7)
    assert abs((link.expires_at - expected).total_seconds()) < 60
    listed = api.get("/api/v1/shares/").json()
    assert [row["id"] for row in listed] == [link.pk]
    assert "url" not in listed[0] and token not in str(listed)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"expires_in_days": 91}, "expires_in_days"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": "soon"}, "expires_in_days"),
        ({"passcode": "abc"}, "passcode"),
        ({"allow_download": "perhaps"}, "allow_download"),
    ],
)
def test_bad_share_requests_name_the_field(auth_client, physician, ct, payload, field):
    answer = auth_client(physician).post(
        "/api/v1/shares/", {"study_uid": ct.StudyInstanceUID, **payload}, format="json"
    )
    assert answer.status_code == 400
    assert field in answer.json()


def test_missing_study_uid_is_a_400(auth_client, physician):
    answer = auth_client(physician).post("/api/v1/shares/", {}, format="json")
    assert answer.status_code == 400
    assert "study_uid" in answer.json()


def test_outsider_cannot_share_a_study_they_cannot_see(auth_client, outsider, ct):
    answer = auth_client(outsider).post("/api/v1/shares/", {"study_uid": ct.StudyInstanceUID}, format="json")
    assert answer.status_code == 404


def test_linked_patient_may_share_but_another_patient_gets_404(auth_client, physician, patient_user, ct):
    from tests.factories import UserFactory

    Study.objects.filter(study_instance_uid=ct.StudyInstanceUID).first().patient.__class__.objects.update(
        account=patient_user
    )
    answer = auth_client(patient_user).post("/api/v1/shares/", {"study_uid": ct.StudyInstanceUID}, format="json")
    assert answer.status_code == 201
    stranger = UserFactory(role="patient", email="stranger@example.com")
    answer = auth_client(stranger).post("/api/v1/shares/", {"study_uid": ct.StudyInstanceUID}, format="json")
    assert answer.status_code == 404


def test_delete_revokes_and_only_the_maker_can(auth_client, physician, colleague, ct):
    token = make_link(ct, physician)
    link = ShareLink.objects.get()
    assert auth_client(colleague).delete(f"/api/v1/shares/{link.pk}/").status_code == 404
    assert auth_client(physician).delete(f"/api/v1/shares/{link.pk}/").status_code == 204
    link.refresh_from_db()
    assert link.status == "revoked"
    assert Client().get(f"/s/{token}/").status_code == 404


def test_sharer_sees_each_use_of_the_link(auth_client, physician, ct):
    token = make_link(ct, physician)
    Client().get(f"/s/{token}/")
    link = ShareLink.objects.get()
    listed = auth_client(physician).get("/api/v1/shares/").json()
    assert listed[0]["uses"] == 1
    detail = auth_client(physician).get(f"/api/v1/shares/{link.pk}/").json()
    assert [e["action"] for e in detail["events"]] == ["share_open"]


# --- Opening a link ---------------------------------------------------------------------------


def test_link_without_passcode_opens_the_read_only_viewer_on_the_share_root(physician, ct):
    token = make_link(ct, physician)
    response = Client().get(f"/s/{token}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-dicomweb-root="/s/{token}/dicomweb"' in html
    assert 'data-read-only="true"' in html
    assert "Download" not in html
    assert response["Cache-Control"].startswith("private") or "no-store" in response["Cache-Control"]
    assert AccessEvent.objects.filter(action="share_open", share_link__isnull=False).count() == 1


def test_link_path_without_trailing_slash_works_too(physician, ct):
    token = make_link(ct, physician)
    assert Client().get(f"/s/{token}").status_code == 200


@pytest.mark.parametrize("state", ["expired", "revoked", "locked", "unknown"])
def test_unusable_links_all_show_the_same_page_revealing_nothing(physician, ct, state):
    token = make_link(ct, physician)
    link = ShareLink.objects.get()
    if state == "expired":
        ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    elif state == "revoked":
        link.revoke(by=physician)
    elif state == "locked":
        ShareLink.objects.filter(pk=link.pk).update(locked_at=timezone.now(), failed_attempts=5)
    else:
        token = secrets.token_urlsafe(32)
    response = Client().get(f"/s/{token}/")
    assert response.status_code == 404
    assert UNAVAILABLE in response.content
    assert b"Doe" not in response.content and ct.StudyInstanceUID.encode() not in response.content
    assert Client().get(f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 404


def test_guessed_tokens_get_the_same_page_as_a_revoked_link(physician, ct):
    token = make_link(ct, physician)
    ShareLink.objects.get().revoke(by=physician)
    revoked = Client().get(f"/s/{token}/")
    for guess in ("a", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 300, "%2e%2e"):
        guessed = Client().get(f"/s/{guess}/")
        assert guessed.status_code == revoked.status_code == 404
        assert guessed.content == revoked.content


def test_passcode_form_then_viewer_and_session_remembers(physician, ct):
    token = make_link(ct, physician, passcode="open-sesame")
    browser = Client()
    form = browser.get(f"/s/{token}/")
    assert form.status_code == 200
    assert b"Enter the passcode" in form.content
    assert b"data-viewer" not in form.content
    assert browser.get(f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 404
    answer = browser.post(f"/s/{token}/", {"passcode": "open-sesame"})
    assert answer.status_code == 302
    assert b"data-viewer" in browser.get(f"/s/{token}/").content
    assert browser.get(f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 200
    # Another browser still has to enter it.
    assert b"Enter the passcode" in Client().get(f"/s/{token}/").content


def test_five_wrong_passcodes_lock_the_link_for_everyone(physician, ct):
    token = make_link(ct, physician, passcode="open-sesame")
    browser = Client()
    for attempt in range(1, 5):
        answer = browser.post(f"/s/{token}/", {"passcode": f"wrong-{attempt}"})
        assert answer.status_code == 400
        assert b"That passcode is wrong" in answer.content
    fifth = browser.post(f"/s/{token}/", {"passcode": "wrong-5"})
    assert fifth.status_code == 404
    assert UNAVAILABLE in fifth.content
    link = ShareLink.objects.get()
    assert link.status == "locked" and link.failed_attempts == 5
    assert Client().post(f"/s/{token}/", {"passcode": "open-sesame"}).status_code == 404


def test_empty_passcode_asks_for_one_without_counting_a_try(physician, ct):
    token = make_link(ct, physician, passcode="open-sesame")
    answer = Client().post(f"/s/{token}/", {})
    assert answer.status_code == 400
    assert b"Enter the passcode you were given with the link." in answer.content
    assert ShareLink.objects.get().failed_attempts == 0


def test_revoking_an_unlocked_link_stops_it_at_once(physician, ct):
    token = make_link(ct, physician, passcode="open-sesame")
    browser = Client()
    browser.post(f"/s/{token}/", {"passcode": "open-sesame"})
    ShareLink.objects.get().revoke(by=physician)
    assert browser.get(f"/s/{token}/").status_code == 404
    assert browser.get(f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 404


# --- DICOMweb through a link ------------------------------------------------------------------


def test_share_root_reaches_its_study_and_nothing_else(physician, ct, other):
    token = make_link(ct, physician)
    root = f"/s/{token}/dicomweb"
    browser = Client()
    metadata = browser.get(f"{root}/studies/{ct.StudyInstanceUID}/metadata")
    assert metadata.status_code == 200
    assert len(metadata.json()) == 2
    assert f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}" in metadata.content.decode()
    assert browser.get(f"{root}/studies/{other.StudyInstanceUID}/metadata").status_code == 404
    assert browser.get(f"{root}/studies/{other.StudyInstanceUID}").status_code == 404
    found = browser.get(f"{root}/studies")
    assert [s["0020000D"]["Value"][0] for s in found.json()] == [ct.StudyInstanceUID]
    instances = browser.get(f"{root}/instances").json()
    assert {i["0020000D"]["Value"][0] for i in instances} == {ct.StudyInstanceUID}
    frame = browser.get(
        f"{root}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/frames/1"
    )
    assert frame.status_code == 200
    body(frame)


def test_share_root_refuses_writes(physician, ct):
    token = make_link(ct, physician)
    answer = Client().post(f"/s/{token}/dicomweb/studies", b"", content_type="multipart/related; boundary=x")
    assert answer.status_code == 405


def test_an_api_token_does_not_widen_a_share_root(physician, ct, other):
    from tests.studies.test_dicomweb_helpers import token_for

    token = make_link(ct, physician)
    browser = Client(headers={"Authorization": f"Token {token_for(physician)}"})
    assert browser.get(f"/s/{token}/dicomweb/studies/{other.StudyInstanceUID}/metadata").status_code == 404


def test_share_holder_downloads_zip_only_when_allowed(physician, ct):
    closed = make_link(ct, physician)
    assert Client().get(f"/s/{closed}/download/").status_code == 403
    token = make_link(ct, physician, allow_download=True)
    page = Client().get(f"/s/{token}/")
    assert f"/s/{token}/download/".encode() in page.content
    response = Client().get(f"/s/{token}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    names = archive.namelist()
    assert names[0] == "index.html"
    assert len([n for n in names if n.endswith(".dcm")]) == 2
    assert b"Doe Jane" in archive.read("index.html")
    assert AccessEvent.objects.filter(action="download", share_link__isnull=False).count() == 1


def test_share_page_of_another_route_needs_no_account(physician, ct):
    token = make_link(ct, physician)
    assert Client().get(reverse("sharing:open", args=[token])).status_code == 200


def test_admin_revokes_links_from_the_admin_list(client, admin_user, physician, ct):
    token = make_link(ct, physician)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:studies_sharelink_changelist"),
        {"action": "revoke_links", "_selected_action": [ShareLink.objects.get().pk]},
    )
    assert response.status_code == 302
    assert ShareLink.objects.get().status == "revoked"
    assert Client().get(f"/s/{token}/").status_code == 404
