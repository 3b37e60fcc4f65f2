"""What consultations adds to studies' pages through studies.panels: the study's consults, "Ask for a
second opinion" on the study page, the home page's latest studies and the patient page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from consultations import actions
from studies.models import AccessGrant
from studies.permissions import grant_access
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def page(client, user, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def study_url(study) -> str:
    return reverse("studies:detail", args=[study.study_instance_uid])


def ask_url(study) -> str:
    return reverse("consultations:new", args=[study.study_instance_uid])


def test_study_page_lists_its_consults_with_state_specialist_and_due(client, physician, accepted, specialist):
    html = page(client, physician, study_url(accepted.study))
    assert 'data-panel="consultations"' in html
    assert f'href="/consults/{accepted.pk}/"' in html
    assert accepted.get_state_display() in html
    assert specialist.display_name in html
    assert "due <time" in html


def test_study_page_says_a_submitted_consult_is_not_taken_yet(client, physician, consult):
    html = page(client, physician, study_url(consult.study))
    assert f'href="/consults/{consult.pk}/"' in html
    assert "Not taken yet" in html


def test_study_page_shows_the_ask_button_to_the_physician(client, physician, study):
    html = page(client, physician, study_url(study))
    assert f'href="{ask_url(study)}" data-study-action="second-opinion"' in html
    assert "Ask for a second opinion" in html


def test_study_page_shows_the_ask_button_to_an_administrator(client, admin_user, study):
    assert f'href="{ask_url(study)}"' in page(client, admin_user, study_url(study))


def test_patient_never_sees_the_ask_button(client, patient_user, consult):
    html = page(client, patient_user, study_url(consult.study))
    assert ask_url(consult.study) not in html
    assert "Ask for a second opinion" not in html
    # The patient sees the submitted consult on their own study.
    assert f'href="/consults/{consult.pk}/"' in html


def test_patient_does_not_see_a_draft_consult_on_their_study(client, patient_user, draft):
    html = page(client, patient_user, study_url(draft.study))
    assert f"/consults/{draft.pk}/" not in html


def test_specialist_without_a_consult_sees_no_panel_and_no_ask(client, specialist, study):
    grant_access(user=specialist, study=study, reason=AccessGrant.Reason.ADMIN)
    html = page(client, specialist, study_url(study))
    assert 'data-panel="consultations"' not in html
    assert "Ask for a second opinion" not in html


def test_clinician_with_no_practice_cannot_ask(client, study):
    newcomer = UserFactory(role="physician", email="new@example.com", practice=False)
    grant_access(user=newcomer, study=study, reason=AccessGrant.Reason.ADMIN)
    html = page(client, newcomer, study_url(study))
    assert "Ask for a second opinion" not in html


def test_colleague_sees_only_the_consults_they_may_see(client, physician, colleague, consult):
    """A physician who may see the study but is not on the consult's care team does not see it listed."""
    grant_access(user=colleague, study=consult.study, reason=AccessGrant.Reason.ADMIN)
    html = page(client, colleague, study_url(consult.study))
    assert f"/consults/{consult.pk}/" not in html
    assert "No consults on this study yet." in html
    # ...until they are added to it.
    actions.add_participant(consult, by=physician, user=colleague)
    assert f"/consults/{consult.pk}/" in page(client, colleague, study_url(consult.study))


def test_outsider_gets_404_for_the_study_page_as_before(client, outsider, consult):
    client.force_login(outsider)
    assert client.get(study_url(consult.study)).status_code == 404


def test_home_page_latest_studies_offer_to_ask(client, physician, study):
    html = page(client, physician, reverse("home"))
    assert f'href="{ask_url(study)}"' in html
    assert f'href="{reverse("studies:upload")}?then=second-opinion"' in html


def test_patient_page_lists_the_consults_on_the_patients_studies(client, physician, consult):
    html = page(client, physician, reverse("studies:patient", args=[consult.study.patient_id]))
    assert 'data-panel="consultations"' in html
    assert f'href="/consults/{consult.pk}/"' in html
    assert f'href="{ask_url(consult.study)}"' in html


def test_patient_page_shows_no_consult_panel_without_consults(client, physician, study):
    html = page(client, physician, reverse("studies:patient", args=[study.patient_id]))
    assert 'data-panel="consultations"' not in html
