"""The registry through which apps above studies add to its pages (studies.panels)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from studies import panels
from studies.navigation import nav_items
from tests.studies.test_pages import make_patient, make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(monkeypatch):
    """An empty registry for the test: what the apps registered at start-up is put back after."""
    monkeypatch.setattr(panels, "_study_panels", {})
    monkeypatch.setattr(panels, "_links", {})
    return panels


@pytest.fixture
def panel_templates(settings, tmp_path):
    (tmp_path / "panels").mkdir()
    (tmp_path / "panels" / "second.html").write_text('<section data-panel="second">{{ panel.words }}</section>')
    (tmp_path / "panels" / "first.html").write_text('<section data-panel="first">first for {{ panel.uid }}</section>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}]


def study_page(client, user, study) -> str:
    client.force_login(user)
    response = client.get(reverse("studies:detail", args=[study.study_instance_uid]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_registered_panel_shows_on_the_study_page_with_its_context_in_order(
    client, physician, registry, panel_templates
):
    study = make_study(physician)
    registry.register_study_panel("second", "panels/second.html", lambda request, s: {"words": "Hello"}, order=20)
    registry.register_study_panel(
        "first", "panels/first.html", lambda request, s: {"uid": s.study_instance_uid}, order=10
    )
    html = study_page(client, physician, study)
    assert f'<section data-panel="first">first for {study.study_instance_uid}</section>' in html
    assert '<section data-panel="second">Hello</section>' in html
    assert html.index('data-panel="first"') < html.index('data-panel="second"')


def test_a_panel_whose_context_is_none_is_not_shown_to_that_user(client, physician, registry, panel_templates):
    study = make_study(physician)
    registry.register_study_panel("second", "panels/second.html", lambda request, s: None)
    assert 'data-panel="second"' not in study_page(client, physician, study)


def test_the_study_page_works_with_nothing_registered(client, physician, registry):
    study = make_study(physician)
    html = study_page(client, physician, study)
    assert "data-panel" not in html
    assert study.description in html


def test_with_no_portal_registered_a_patient_is_sent_to_the_studies_pages(client, patient_user, registry):
    assert nav_items(patient_user)[0] == {"label": "My images", "url": reverse("studies:list"), "key": "studies"}
    study = make_study(patient=make_patient(account=patient_user))
    client.force_login(patient_user)
    page = client.get(reverse("studies:add-photo", args=[study.study_instance_uid]))
    assert page.status_code == 200
    assert page.context["back_url"] == reverse("studies:detail", args=[study.study_instance_uid])
    records = client.get(reverse("studies:link-requests"))
    assert records.context["home_url"] == reverse("studies:list")


def test_the_patient_portal_registers_its_pages_for_patients(client, patient_user):
    """consultations offers its portal in AppConfig.ready(): the patient's home and study page."""
    assert nav_items(patient_user)[0]["url"] == reverse("portal:home")
    study = make_study(patient=make_patient(account=patient_user))
    client.force_login(patient_user)
    page = client.get(reverse("studies:add-photo", args=[study.study_instance_uid]))
    assert page.context["back_url"] == reverse("portal:study", args=[study.study_instance_uid])
    access = client.get(reverse("studies:access", args=[study.study_instance_uid]))
    assert f'href="{reverse("portal:study", args=[study.study_instance_uid])}"' in access.content.decode()
