"""Two specialists accept the same consult at the same moment, through the real API on
PostgreSQL with separate connections: exactly one wins, the other gets 409 naming the winner."""

from __future__ import annotations

import pytest

from consultations import actions
from consultations.models import ConsultRequest, State
from studies.models import AccessGrant
from tests.concurrency import run_together
from tests.factories import ConsultFactory, SpecialistFactory, UserFactory, make_study


def _accept_at_once(consult_pk: int, users) -> list:
    from rest_framework.test import APIClient

    def accept(user) -> tuple[int, dict]:
        client = APIClient()
        client.force_authenticate(user=user)
        response = client.post(f"/api/v1/consults/{consult_pk}/accept/")
        return response.status_code, response.json()

    return run_together([lambda user=user: accept(user) for user in users])


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_two_concurrent_accepts_wins(postgres):
    physician = UserFactory(role="physician", email="race-owner@example.com")
    first = SpecialistFactory(email="race-a@example.com", name="Dr A")
    second = SpecialistFactory(email="race-b@example.com", name="Dr B")
    names = {first.pk: "Dr A", second.pk: "Dr B"}
    for round_number in range(10):
        study = make_study(uploader=physician)
        consult = ConsultFactory(requester=physician, study=study)
        actions.submit_consult(consult, by=physician)
        assert consult.offers.count() == 2

        results = _accept_at_once(consult.pk, [first, second])

        codes = sorted(code for code, _ in results)
        assert codes == [200, 409], (round_number, results)
        consult = ConsultRequest.objects.get(pk=consult.pk)
        assert consult.state == State.ACCEPTED
        winner = names[consult.assignee_id]
        loser_body = next(body for code, body in results if code == 409)
        assert loser_body["detail"] == f"{winner} already accepted this consult."
        assert loser_body["taken_by"]["id"] == consult.assignee_id
        assert consult.events.filter(kind="accepted").count() == 1
        grants = AccessGrant.objects.active().filter(
            study=study, reason=AccessGrant.Reason.CONSULT, source=str(consult.pk)
        )
        assert list(grants.values_list("user_id", flat=True)) == [consult.assignee_id]
