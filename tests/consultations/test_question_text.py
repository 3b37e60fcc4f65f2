"""A patient's question and the care team's answer are free text: line breaks and tabs stay, but
NUL and other control characters are refused with a message naming them (API and pages), before
anything is saved or posted to the chat."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from consultations.models import ChatMessage, PatientQuestion
from tests.consultations.conftest import *  # noqa: F403 (the consult fixtures)
from tests.consultations.test_patient_results import signed  # noqa: F401

pytestmark = pytest.mark.django_db

API = "/api/v1/consults"


@pytest.mark.parametrize(("text", "found"), [("Can I\x1b[2J drive?", "U+001B"), ("Can I drive?\x07", "U+0007")])
def test_a_question_with_control_characters_is_a_400_naming_them(signed, patient_user, auth_client, text, found):  # noqa: F811
    messages = ChatMessage.objects.count()
    answer = auth_client(patient_user).post(f"{API}/{signed.pk}/questions/", {"text": text}, format="json")
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_question"
    assert found in answer.json()["text"][0]
    assert not PatientQuestion.objects.exists() and ChatMessage.objects.count() == messages


def test_a_question_keeps_its_line_breaks_and_tabs_but_not_other_control_characters(
    signed,  # noqa: F811
    patient_user,
    auth_client,
):
    api = auth_client(patient_user)
    refused = api.post(f"{API}/{signed.pk}/questions/", {"text": "Two things:\x0b1. driving"}, format="json")
    assert refused.status_code == 400 and "U+000B" in refused.json()["text"][0]
    answer = api.post(
        f"{API}/{signed.pk}/questions/", {"text": "Two things:\n\t1. driving\r\n\t2. work"}, format="json"
    )
    assert answer.status_code == 201
    assert PatientQuestion.objects.get().text == "Two things:\n\t1. driving\r\n\t2. work"


def test_an_answer_with_control_characters_is_refused_on_the_page(signed, patient_user, specialist):  # noqa: F811
    question = PatientQuestion.objects.create(consult=signed, asked_by=patient_user, text="Can I drive?")
    team = Client()
    team.force_login(specialist)
    url = reverse("consultations:answer-patient-question", args=[signed.pk, question.pk])
    page = team.post(url, {"text": "Yes\x1b[31m"}, follow=True)
    assert page.status_code == 200
    assert "U+001B" in page.content.decode()
    question.refresh_from_db()
    assert not question.is_answered


def test_a_question_with_control_characters_is_refused_on_the_portal(signed, patient_user):  # noqa: F811
    patient = Client()
    patient.force_login(patient_user)
    page = patient.post(reverse("portal:ask-question", args=[signed.pk]), {"text": "Can I\x1b drive?"})
    assert page.status_code == 400  # the page again, the message beside the field
    assert "U+001B" in page.content.decode()
    assert not PatientQuestion.objects.exists()
