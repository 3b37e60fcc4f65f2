"""Report templates by modality and body part: which one a draft starts from, which ones the
editor offers, the migration that ships them, and switching before and after the first edit."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from consultations import reports
from consultations.models import ReportTemplate
from studies.models import Series
from tests.factories import ConsultFactory, make_study

BASE = "/api/v1/consults/"
STANDARD = {
    "CT chest",
    "CT head",
    "MR brain",
    "MRI knee",
    "MR musculoskeletal",
    "Chest radiograph",
    "US abdomen",
    "Skin photo",
    "Generic",
}


def consult_on(physician, *, modality: str, body_part: str = "", description: str = "", specialty="neuroradiology"):
    study = make_study(uploader=physician, modalities=modality)
    study.description = description
    study.save(update_fields=["description"])
    Series.objects.filter(study=study).update(body_part=body_part)
    return ConsultFactory(requester=physician, study=study, specialty=specialty)


def first_template(consult) -> str:
    return reports.templates_for(consult)[0].name


@pytest.mark.parametrize(
    ("modality", "body_part", "description", "expected"),
    [
        ("CT", "CHEST", "", "CT chest"),
        ("CT", "HEAD", "", "CT head"),
        ("CT", "", "CT Thorax w/o contrast", "CT chest"),  # no BodyPartExamined: the description
        ("CT", "", "CT head", "CT head"),
        ("MR", "BRAIN", "", "MR brain"),
        ("MR", "KNEE", "", "MRI knee"),
        ("MR", "SHOULDER", "", "MR musculoskeletal"),
        ("DX", "CHEST", "", "Chest radiograph"),
        ("CR", "", "Chest PA", "Chest radiograph"),
        ("US", "ABDOMEN", "", "US abdomen"),
        ("XC", "ARM", "", "Skin photo"),
    ],
)
def test_the_template_fits_modality_and_body_part(physician, modality, body_part, description, expected):
    assert first_template(consult_on(physician, modality=modality, body_part=body_part, description=description)) == (
        expected
    )


def test_mr_knee_gets_the_musculoskeletal_template(physician):
    template = reports.templates_for(consult_on(physician, modality="MR", body_part="KNEE"))[0]
    assert template.specialty == "musculoskeletal"


def test_chest_ct_is_never_offered_the_head_template_even_for_a_neuroradiology_consult(physician):
    consult = consult_on(physician, modality="CT", body_part="CHEST", specialty="neuroradiology")
    names = [t.name for t in reports.templates_for(consult)]
    assert names[0] == "CT chest"
    assert "CT head" not in names and "MR brain" not in names


@pytest.mark.parametrize(("modality", "body_part"), [("CT", "PELVIS"), ("CT", ""), ("MR", "SPINE"), ("OT", "")])
def test_an_unknown_body_part_gets_the_generic_template_never_another_body_parts(physician, modality, body_part):
    consult = consult_on(physician, modality=modality, body_part=body_part, description="Study")
    names = [t.name for t in reports.templates_for(consult)]
    assert names == ["Generic"]


def test_the_first_series_decides_between_two_fitting_templates(physician):
    consult = consult_on(physician, modality="CT", body_part="HEAD")
    Series.objects.create(
        series_instance_uid=f"{consult.study.study_instance_uid}.2",
        study=consult.study,
        modality="MR",
        series_number=2,
        body_part="BRAIN",
    )
    Series.objects.filter(study=consult.study, modality="CT").update(series_number=1)
    assert [t.name for t in reports.templates_for(consult)][:3] == ["CT head", "MR brain", "Generic"]


def test_a_chest_ct_draft_starts_from_the_chest_template(
    auth_client, physician, specialist, django_capture_on_commit_callbacks
):
    from consultations import actions

    consult = consult_on(physician, modality="CT", body_part="CHEST", specialty="neuroradiology")
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    r = auth_client(specialist).put(f"{BASE}{consult.pk}/report/", {"agreement": "minor"}, format="json")
    assert r.status_code == 200, r.content
    assert r.data["template"] == "CT chest"
    assert "Pleura" in r.data["findings"] and "Midline shift" not in r.data["findings"]


# -- the migration -----------------------------------------------------------------------------


def test_the_migration_ships_the_standard_templates(db):
    templates = {t.name: t for t in ReportTemplate.objects.all()}
    assert set(templates) >= STANDARD
    assert "CHEST" in templates["CT chest"].body_parts and templates["CT chest"].modality == "CT"
    assert templates["Generic"].modality == "" and templates["Generic"].body_parts == []
    assert "KNEE" in templates["MRI knee"].body_parts  # a template of 0002, given its body part


def test_seeding_again_restores_missing_templates_and_keeps_edited_ones(db):
    migration = importlib.import_module("consultations.migrations.0006_report_templates_by_body_part")
    ReportTemplate.objects.filter(name="CT chest").delete()
    ReportTemplate.objects.filter(name="CT head").update(findings="Our own head CT text")
    migration.seed(apps, None)
    assert ReportTemplate.objects.get(name="CT head").findings == "Our own head CT text"
    assert ReportTemplate.objects.filter(name="CT chest").exists()
    assert ReportTemplate.objects.filter(name__in=STANDARD).count() == len(STANDARD)


def test_the_demo_seed_restores_the_templates_after_a_flush(physician, specialist):
    from consultations.demo import ensure_report_templates, seed_demo_consult

    ReportTemplate.objects.all().delete()
    ensure_report_templates()
    assert set(ReportTemplate.objects.values_list("name", flat=True)) == STANDARD
    assert seed_demo_consult(physician, specialist, None) is None


# -- the editor's template switch ----------------------------------------------------------------


@pytest.fixture
def chest_consult(physician, specialist, django_capture_on_commit_callbacks):
    from consultations import actions

    consult = consult_on(physician, modality="CT", body_part="CHEST")
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    return consult


def test_the_editor_offers_the_fitting_templates_first(client, specialist, chest_consult):
    client.force_login(specialist)
    page = client.get(f"/consults/{chest_consult.pk}/report/")
    html = page.content.decode()
    fitting, others = html.split('<optgroup label="For this study">')[1].split('<optgroup label="Other templates">')
    assert "CT chest" in fitting and "Generic" in fitting and "CT head" not in fitting
    assert "CT head" in others
    assert [t.name for t in page.context["templates"]] == ["CT chest", "Generic"]
    assert page.context["edited"] is False


def test_switching_before_the_first_edit_needs_no_confirmation(client, specialist, chest_consult):
    client.force_login(specialist)
    client.get(f"/consults/{chest_consult.pk}/report/")
    generic = ReportTemplate.objects.get(name="Generic")
    client.post(f"/consults/{chest_consult.pk}/report/template/", {"template": generic.pk})
    draft = chest_consult.reports.get()
    assert draft.template == generic and draft.findings == generic.findings


def test_switching_after_an_edit_asks_to_replace_the_text(client, specialist, chest_consult):
    client.force_login(specialist)
    client.get(f"/consults/{chest_consult.pk}/report/")
    reports.save_draft(chest_consult, by=specialist, findings="Spiculated nodule in the right upper lobe.")
    generic = ReportTemplate.objects.get(name="Generic")
    url = f"/consults/{chest_consult.pk}/report/template/"

    response = client.post(url, {"template": generic.pk}, follow=True)
    assert "tick “Replace my text”" in response.content.decode()
    assert response.context["edited"] is True
    draft = chest_consult.reports.get()
    assert draft.template.name == "CT chest" and draft.findings.startswith("Spiculated nodule")

    client.post(url, {"template": generic.pk, "replace": "1"})
    draft.refresh_from_db()
    assert draft.template == generic and draft.findings == generic.findings


def test_text_posted_by_a_browser_with_crlf_is_not_an_edit(specialist, chest_consult):
    draft = reports.get_or_start_draft(chest_consult, by=specialist)
    draft.update_draft(by=specialist, findings=draft.findings.replace("\n", "\r\n").strip())
    assert reports.is_edited(draft) is False


def test_templates_api_gives_the_fitting_ones_for_a_consult(auth_client, specialist, outsider, chest_consult):
    body = auth_client(specialist).get(f"/api/v1/report-templates/?consult={chest_consult.pk}").data
    assert [t["name"] for t in body] == ["CT chest", "Generic"]
    assert auth_client(outsider).get(f"/api/v1/report-templates/?consult={chest_consult.pk}").status_code == 404
    bad = auth_client(specialist).get("/api/v1/report-templates/?consult=chest")
    assert bad.status_code == 400 and bad.data["consult"] == ["consult: give a consult's number."]
