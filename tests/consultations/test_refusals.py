"""One error type: a refused consult change answers the same reason on a page (flash and back to
where the view said), in the API (status, ``detail``, ``code``) and is a PortalError everywhere."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from consultations import actions
from consultations.annotations import AnnotationError
from consultations.errors import AlreadyTakenError, AttachmentRefusedError, ConsultError, NotAllowedError
from consultations.models import ConsultOffer
from consultations.room import RoomError
from teleconsult.errors import PortalError, error_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def raced(consult, specialist, other_specialist):
    """Offered to two specialists; the first took it."""
    ConsultOffer.objects.get_or_create(consult=consult, specialist=other_specialist, defaults={"reason": "matching"})
    actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_refused_page_post_flashes_the_reason_and_redirects_to_the_consult(client, consult, physician):
    client.force_login(physician)
    response = client.post(f"/consults/{consult.pk}/do/close/")
    assert response.status_code == 302 and response.url == f"/consults/{consult.pk}/"
    assert flashed(response) == ["Cannot close a consult that is waiting for a specialist (only when reported)."]


def test_refused_page_post_by_the_wrong_person_flashes_and_redirects(client, accepted, physician):
    client.force_login(physician)
    response = client.post(f"/consults/{accepted.pk}/do/request-info/", {"question": "Anything?"})
    assert response.status_code == 302 and response.url == f"/consults/{accepted.pk}/"
    assert flashed(response) == ["Only the specialist who accepted this consult may request information on it."]


def test_a_specialist_too_late_to_claim_is_sent_to_the_worklist(client, raced, other_specialist):
    client.force_login(other_specialist)
    response = client.post(f"/consults/{raced.pk}/do/accept/")
    assert response.status_code == 302 and response.url == "/worklist/"
    assert flashed(response) == ["Dr Specialist already accepted this consult."]


def test_refused_report_signing_goes_back_to_the_editor(client, accepted, specialist):
    client.force_login(specialist)
    response = client.post(f"/consults/{accepted.pk}/report/sign/", {"password": "wrong"})
    assert response.status_code == 302 and response.url == f"/consults/{accepted.pk}/report/"
    assert flashed(response)


def test_api_answers_a_refusal_with_its_status_detail_code_and_data(auth_client, raced, other_specialist):
    response = auth_client(other_specialist).post(f"/api/v1/consults/{raced.pk}/accept/")
    assert response.status_code == 409
    assert response.data == {
        "detail": "Dr Specialist already accepted this consult.",
        "code": "already_taken",
        "taken_by": {"id": raced.assignee_id, "name": "Dr Specialist"},
    }


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConsultError("x"), 409, "conflict"),
        (NotAllowedError("x"), 403, "not_allowed"),
        (AlreadyTakenError("x"), 409, "already_taken"),
        (AttachmentRefusedError("x"), 400, "attachment_refused"),
        (AnnotationError("x", status=404), 404, "annotation_refused"),
        (RoomError("too_long", "x"), 400, "too_long"),
    ],
)
def test_every_refusal_of_the_app_is_a_portal_error(error, status, code):
    assert isinstance(error, PortalError)
    assert (error.status, error.code, error.message) == (status, code, "x")
    assert error_frame(error) == {"type": "error", "code": code, "message": "x"}


def test_a_field_refusal_names_its_field_in_the_body():
    assert AttachmentRefusedError("Too big.").as_json() == {
        "detail": "Too big.",
        "code": "attachment_refused",
        "file": ["Too big."],
    }
