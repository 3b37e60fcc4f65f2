"""An offer shows a specialist enough to decide and nothing of whose it is; it ends the moment
another specialist claims the consult, the requester cancels it, or the specialist declines."""

from __future__ import annotations

import io

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from PIL import Image

from consultations import actions, reports, room
from consultations.api.serializers import ConsultSerializer
from consultations.models import State
from studies.models import Series
from tests.factories import ConsultFactory, SpecialistFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/consults/"
PATIENT_NAMES = ("Doe Jane", "Doe^Jane")
HISTORY = "Fall from standing height, on anticoagulants."
ATTACHMENT_NAME = "referral-letter-doe.png"
OFFER_KEYS = {*ConsultSerializer.OFFER_FIELDS, "offer_only"}
HIDDEN_FROM_OFFERS = ("requester", "clinical_history", "attachments", "participants", "assignee", "outside_report")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def offered(consult, physician, specialist, other_specialist):
    """The submitted consult, offered to both specialists, with the requester's attachment and a
    body part on its series."""
    consult.offers.get_or_create(specialist=other_specialist, defaults={"reason": "matching"})
    assert consult.has_open_offer(specialist) and consult.has_open_offer(other_specialist)
    consult.attachment = actions.add_attachment(
        consult, by=physician, upload=SimpleUploadedFile(ATTACHMENT_NAME, png_bytes(), "image/png")
    )
    Series.objects.filter(study=consult.study).update(body_part="HEAD")
    return consult


def page_of(client, user, path: str):
    client.force_login(user)
    return client.get(path)


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def assert_no_patient(text: str) -> None:
    for name in PATIENT_NAMES:
        assert name not in text
    assert "anticoagulants" not in text
    assert ATTACHMENT_NAME not in text


def assert_offer_has_ended(client, auth_client, user, consult) -> None:
    """``user`` no longer sees ``consult`` anywhere: its page, the API, their worklist."""
    assert page_of(client, user, f"/consults/{consult.pk}/").status_code == 404
    api = auth_client(user)
    assert api.get(f"{API}{consult.pk}/").status_code == 404
    assert api.get(f"{API}?scope=worklist").data["results"] == []
    assert api.get(API).data["results"] == []
    worklist = page_of(client, user, "/worklist/")
    assert worklist.status_code == 200
    assert f"/consults/{consult.pk}/" not in worklist.content.decode()
    assert worklist.context["consults"] == []


# -- what an offer shows -------------------------------------------------------------------------


def test_offer_page_shows_the_question_without_patient_history_or_attachments(client, offered, specialist, physician):
    page = page_of(client, specialist, f"/consults/{offered.pk}/")
    assert page.status_code == 200
    assert "consultations/offer.html" in [t.name for t in page.templates]
    text = page.content.decode()
    assert "Offered to you" in text
    assert offered.question in text
    assert "Head" in text and "HEAD" not in text and "CT" in text
    assert f"/consults/{offered.pk}/do/accept/" in text
    assert_no_patient(text)
    assert physician.display_name not in text
    assert offered.study.patient.patient_id not in text
    assert offered.study.study_instance_uid not in text  # no images before accepting
    # The requester's own page names the patient and shows the history and the attachment.
    own = page_of(client, physician, f"/consults/{offered.pk}/").content.decode()
    assert "Doe Jane" in own and "anticoagulants" in own and ATTACHMENT_NAME in own


def test_offer_over_the_api_is_offer_only_without_patient_requester_or_history(auth_client, offered, specialist):
    answer = auth_client(specialist).get(f"{API}{offered.pk}/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["offer_only"] is True
    assert set(body) == OFFER_KEYS
    for hidden in HIDDEN_FROM_OFFERS:
        assert hidden not in body
    assert body["study"] == {"modalities": ["CT"], "body_parts": ["HEAD"]}
    assert "patient_name" not in body["study"]
    assert set(body["actions"]) == {"accept", "decline"}
    assert_no_patient(answer.content.decode())
    # The worklist listing is reduced the same way.
    (listed,) = auth_client(specialist).get(f"{API}?scope=worklist").json()["results"]
    assert listed["offer_only"] is True and set(listed) == OFFER_KEYS
    assert_no_patient(auth_client(specialist).get(f"{API}?scope=worklist").content.decode())


def test_requester_still_gets_the_whole_consult_over_the_api(auth_client, offered, physician):
    body = auth_client(physician).get(f"{API}{offered.pk}/").json()
    assert "offer_only" not in body
    assert body["study"]["patient_name"] == "Doe Jane"
    assert body["clinical_history"] == HISTORY
    assert [a["name"] for a in body["attachments"]] == [ATTACHMENT_NAME]


def test_offered_specialist_gets_404_on_attachments_report_messages_annotations_and_room(
    client, auth_client, offered, specialist, physician
):
    pk, attachment = offered.pk, offered.attachment
    client.force_login(specialist)
    for path in (
        f"/consults/{pk}/attachments/{attachment.pk}/",
        f"/consults/{pk}/report.pdf",
        f"/consults/{pk}/report/",
        f"/studies/{offered.study.study_instance_uid}/",
        f"/dicomweb/studies/{offered.study.study_instance_uid}/metadata",
    ):
        assert client.get(path).status_code == 404, path
    api = auth_client(specialist)
    for path in (
        f"{API}{pk}/attachments/{attachment.pk}/",
        f"{API}{pk}/report/",
        f"{API}{pk}/report/pdf/",
        f"{API}{pk}/report/versions/",
        f"{API}{pk}/events/",
        f"{API}{pk}/messages/",
        f"{API}{pk}/annotations/",
    ):
        assert api.get(path).status_code == 404, path
    assert api.post(f"{API}{pk}/messages/", {"text": "Who is this?"}, format="json").status_code == 404
    assert api.post(f"{API}{pk}/participants/", {"email": "x@example.com"}, format="json").status_code == 404
    with pytest.raises(Http404):
        room.get_room_for_user(specialist, pk)
    assert not room.may_join(specialist, offered)
    # The requester opens the same attachment.
    client.force_login(physician)
    assert client.get(f"/consults/{pk}/attachments/{attachment.pk}/").status_code == 200


def test_named_specialist_sees_only_the_offer_until_they_accept(client, auth_client, physician, study, specialist):
    consult = ConsultFactory(requester=physician, study=study, target_specialist=specialist)
    actions.submit_consult(consult, by=physician)
    page = page_of(client, specialist, f"/consults/{consult.pk}/")
    assert page.status_code == 200 and "consultations/offer.html" in [t.name for t in page.templates]
    assert_no_patient(page.content.decode())
    assert auth_client(specialist).get(f"{API}{consult.pk}/").json()["offer_only"] is True
    with pytest.raises(Http404):
        room.get_room_for_user(specialist, consult.pk)
    assert auth_client(specialist).post(f"{API}{consult.pk}/accept/").status_code == 200
    page = page_of(client, specialist, f"/consults/{consult.pk}/")
    assert "consultations/detail.html" in [t.name for t in page.templates]
    assert "Doe Jane" in page.content.decode()
    assert room.get_room_for_user(specialist, consult.pk) == consult


def test_worklist_page_does_not_name_the_patient_of_an_offered_consult(client, auth_client, offered, specialist):
    worklist = page_of(client, specialist, "/worklist/")
    text = worklist.content.decode()
    assert f"/consults/{offered.pk}/" in text
    assert "Named once you accept" in text
    assert_no_patient(text)
    assert offered.study.description not in text
    # Once accepted, the consult is theirs and the worklist names the patient.
    assert auth_client(specialist).post(f"{API}{offered.pk}/accept/").status_code == 200
    text = page_of(client, specialist, "/worklist/").content.decode()
    assert "Doe Jane" in text and "Named once you accept" not in text


# -- when offers end -------------------------------------------------------------------------------


def test_when_another_specialist_accepts_the_first_loses_the_offer_at_once(
    client, auth_client, offered, specialist, other_specialist, physician, password
):
    pk = offered.pk
    assert page_of(client, specialist, f"/consults/{pk}/").status_code == 200
    assert auth_client(other_specialist).post(f"{API}{pk}/accept/").status_code == 200

    assert_offer_has_ended(client, auth_client, specialist, offered)
    claim = auth_client(specialist).post(f"{API}{pk}/accept/")
    assert claim.status_code == 409
    assert claim.data["detail"] == "Dr Second already accepted this consult."
    assert claim.data["code"] == "already_taken"
    assert claim.data["taken_by"] == {"id": other_specialist.pk, "name": "Dr Second"}
    # From the offer page a moment too late: back to the worklist, told who took it.
    client.force_login(specialist)
    late = client.post(f"/consults/{pk}/do/accept/")
    assert late.status_code == 302 and late["Location"] == "/worklist/"
    assert flashed(late) == ["Dr Second already accepted this consult."]
    offered.refresh_from_db()
    assert offered.state == State.ACCEPTED and offered.assignee == other_specialist

    # The winner sees the whole consult; their signed report stays out of the loser's reach.
    winner_page = page_of(client, other_specialist, f"/consults/{pk}/").content.decode()
    assert "Doe Jane" in winner_page and ATTACHMENT_NAME in winner_page
    reports.save_draft(offered, by=other_specialist, findings="No bleed.", impression="Normal.")
    reports.sign_report(offered, by=other_specialist, password=password)
    client.force_login(physician)
    assert client.get(f"/consults/{pk}/report.pdf").status_code == 200
    client.force_login(specialist)
    assert client.get(f"/consults/{pk}/report.pdf").status_code == 404
    assert client.get(f"/consults/{pk}/attachments/{offered.attachment.pk}/").status_code == 404
    assert auth_client(specialist).get(f"{API}{pk}/report/pdf/").status_code == 404
    assert auth_client(specialist).get(f"{API}{pk}/messages/").status_code == 404
    with pytest.raises(Http404):
        room.get_room_for_user(specialist, pk)


def test_when_the_requester_cancels_offered_specialists_get_404(
    client, auth_client, offered, specialist, other_specialist, physician
):
    answer = auth_client(physician).post(f"{API}{offered.pk}/cancel/", {"reason": "Asked locally."}, format="json")
    assert answer.status_code == 200 and answer.data["state"] == State.CANCELLED
    for user in (specialist, other_specialist):
        assert_offer_has_ended(client, auth_client, user, offered)
        with pytest.raises(Http404):
            room.get_room_for_user(user, offered.pk)
        claim = auth_client(user).post(f"{API}{offered.pk}/accept/")
        assert claim.status_code == 409
    offered.refresh_from_db()
    assert offered.state == State.CANCELLED and offered.assignee is None


def test_a_declined_offer_is_404_while_the_other_offers_stand(
    client, auth_client, offered, specialist, other_specialist
):
    client.force_login(specialist)
    answer = client.post(f"/consults/{offered.pk}/do/decline/", {"reason": "Outside my expertise."})
    assert answer.status_code == 302 and answer["Location"] == "/worklist/"
    offered.refresh_from_db()
    assert offered.state == State.SUBMITTED

    assert_offer_has_ended(client, auth_client, specialist, offered)
    claim = auth_client(specialist).post(f"{API}{offered.pk}/accept/")
    assert claim.status_code == 403
    assert claim.data["detail"] == "This consult was not offered to you."
    # The other specialist's offer stands.
    other = auth_client(other_specialist).get(f"{API}{offered.pk}/")
    assert other.status_code == 200 and other.json()["offer_only"] is True


def test_a_specialist_the_consult_was_never_offered_to_learns_nothing(client, auth_client, offered):
    cardio = SpecialistFactory(email="cardio@example.com", name="Dr Cardio", profile__specialties=["cardiac"])
    assert page_of(client, cardio, f"/consults/{offered.pk}/").status_code == 404
    assert auth_client(cardio).get(f"{API}{offered.pk}/").status_code == 404
    assert auth_client(cardio).post(f"{API}{offered.pk}/accept/").status_code == 404
