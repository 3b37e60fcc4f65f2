"""A study whose images name more than one patient (studies.identity): counted at ingest and by the
migration for studies stored before, flagged on every page that shows the study and over the
image in the viewer, and confirmed explicitly before a consult on it is signed."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from pydicom.uid import generate_uid

from consultations import actions
from consultations import identity as consult_identity
from consultations.models import Report
from studies import identity, sharing
from studies.ingest import IngestBatch, ingest_file
from studies.models import Patient, Study
from studies.viewer import viewer_context
from tests.browser import (  # noqa: F401  (fixtures)
    allow_orm_beside_playwright_fixture,
    browser_fixture,
    playwright_driver_fixture,
)
from tests.factories import ConsultFactory
from tests.studies.test_dicomweb_helpers import make_dicom, store_dataset
from tests.studies.test_ingest_batch import pending

WARNING = "More than one patient in these images"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def mixed(physician, patient_user):
    """A study of three instances under one PatientID: Jane Doe, Richard Roe, and Jane Doe again
    (so the latest image agrees with the record); the record is linked to the patient's portal account."""
    first = store_dataset(physician, PatientID="MIX-1", PatientName="Doe^Jane", StudyDescription="Mixed CT")
    store_dataset(
        physician,
        PatientID="MIX-1",
        PatientName="Roe^Richard",
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
        InstanceNumber=2,
    )
    store_dataset(
        physician,
        PatientID="MIX-1",
        PatientName="Doe^Jane",
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
        InstanceNumber=3,
    )
    Patient.objects.filter(patient_id="MIX-1").update(account=patient_user)
    return Study.objects.get(study_instance_uid=first.StudyInstanceUID)


# --- the rule ---------------------------------------------------------------------------------


def test_names_compare_without_case_spacing_or_other_groups_and_blanks_do_not_count():
    same = identity.Patients()
    for name in ("Doe^Jane", "DOE^JANE", " doe^  jane ", {"Alphabetic": "Doe^Jane"}, "Doe^Jane=ドウ^ジェーン", ""):
        same.add("P1", name)
    same.add("", "Doe^Jane")
    assert (same.count, same.mixed) == (1, False)

    two_names = identity.Patients()
    two_names.add("P1", "Doe^Jane")
    two_names.add("P1", '{"Alphabetic": "Roe^Richard"}')  # as the database hands a PN value back
    assert (two_names.count, two_names.mixed) == (2, True)
    assert two_names.describe() == "2 patients: Doe Jane; Roe Richard; PatientID P1"

    two_ids = identity.Patients()
    two_ids.add("P1", "Doe^Jane")
    two_ids.add("P2 ", "Doe^Jane")
    assert two_ids.count == 2


def test_a_header_value_outside_eight_hex_digits_is_refused():
    with pytest.raises(ValueError, match="not a DICOM tag"):
        identity.HeaderValue("0010,0010")


# --- ingest -----------------------------------------------------------------------------------


def test_one_batch_with_two_names_under_one_patient_id_flags_its_study(physician):
    study_uid = generate_uid()
    with IngestBatch(physician) as ingest:
        for name in ("Doe^Jane", "Roe^Richard", "DOE^ Jane"):
            ingest.add(pending(make_dicom(StudyInstanceUID=study_uid, PatientID="B-1", PatientName=name)))
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.identities, study.mixed_identity) == (2, True)


def test_the_same_name_spelt_otherwise_is_one_patient(physician):
    first = store_dataset(physician, PatientID="S-1", PatientName="Doe^Jane")
    store_dataset(physician, PatientID="S-1", PatientName="DOE^JANE", StudyInstanceUID=first.StudyInstanceUID)
    assert Study.objects.get(study_instance_uid=first.StudyInstanceUID).identities == 1


def test_a_later_batch_naming_someone_else_flags_the_stored_study_and_another_id_is_still_refused(physician):
    first = store_dataset(physician, PatientID="L-1", PatientName="Doe^Jane")
    study = Study.objects.get(study_instance_uid=first.StudyInstanceUID)
    assert study.identities == 1
    with IngestBatch(physician) as ingest:
        refused = ingest.add(
            pending(make_dicom(StudyInstanceUID=first.StudyInstanceUID, PatientID="OTHER", PatientName="Doe^Jane"))
        )
    assert refused.code == "patient_mismatch"
    study.refresh_from_db()
    assert study.identities == 1
    store_dataset(physician, PatientID="L-1", PatientName="Roe^Richard", StudyInstanceUID=first.StudyInstanceUID)
    study.refresh_from_db()
    assert study.identities == 2


def test_objects_the_portal_files_into_the_study_do_not_count(physician):
    # A report PDF filed after the record was renamed carries the record's new name, not a patient.
    single = store_dataset(physician, PatientID="F-1", PatientName="Doe^Jane")
    pdf = make_dicom(
        StudyInstanceUID=single.StudyInstanceUID, PatientID="F-1", PatientName="Renamed^Jane", Modality="DOC"
    )
    with IngestBatch(physician) as ingest:
        assert ingest.add(pending(pdf)).status == "stored"
    assert Study.objects.get(study_instance_uid=single.StudyInstanceUID).identities == 1


# --- the migration for studies stored before ------------------------------------------------

BEFORE = [("studies", "0013_priors_and_results_back")]


@pytest.fixture
def old_state(transactional_db):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    yield executor.loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_counts_the_patients_of_studies_stored_before(old_state):
    apps = old_state
    Organization = apps.get_model("accounts", "Organization")
    Patient = apps.get_model("studies", "Patient")
    Study = apps.get_model("studies", "Study")
    Series = apps.get_model("studies", "Series")
    Instance = apps.get_model("studies", "Instance")
    practice = Organization.objects.create(name="Old site", kind="clinic")
    record = Patient.objects.create(practice=practice, patient_id="OLD-1", name="Doe^Jane")

    def study_with(*people, modality="CT"):
        study = Study.objects.create(study_instance_uid=generate_uid(), practice=practice, patient=record)
        series = Series.objects.create(series_instance_uid=generate_uid(), study=study, modality=modality)
        for patient_id, name in people:
            header = {"00100020": {"vr": "LO", "Value": [patient_id]}, "00100010": {"vr": "PN"}}
            if name:
                header["00100010"]["Value"] = [{"Alphabetic": name}]
            Instance.objects.create(
                series=series,
                sop_instance_uid=generate_uid(),
                sop_class_uid="1.2",
                transfer_syntax_uid="1.2",
                metadata=header,
            )
        return study.study_instance_uid

    # Before the refusal existed: another PatientID in the study, and another name under one ID.
    two_ids = study_with(("OLD-1", "Doe^Jane"), ("OLD-2", "Doe^Jane"))
    two_names = study_with(("OLD-1", "Doe^Jane"), ("OLD-1", "Roe^Richard"), ("OLD-1", "ROE^RICHARD"))
    one = study_with(("OLD-1", "Doe^Jane"), ("OLD-1", "doe^jane"), ("OLD-1", None))
    empty = Study.objects.create(study_instance_uid=generate_uid(), practice=practice, patient=record)
    many = [study_with(("OLD-1", "Doe^Jane"), ("OLD-1", f"Other^{n}")) for n in range(3)]

    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from studies.models import Study as Migrated

    counts = dict(Migrated.objects.values_list("study_instance_uid", "identities"))
    assert counts[two_ids] == 2 and counts[two_names] == 2
    assert counts[one] == 1 and counts[empty.study_instance_uid] == 1
    assert [counts[uid] for uid in many] == [2, 2, 2]


def test_refresh_all_works_in_batches_and_says_how_many_are_mixed(physician, mixed):
    store_dataset(physician, PatientID="R-1", PatientName="Doe^Jane")
    Study.objects.update(identities=1)  # as the migration finds them
    assert identity.refresh_all(batch_size=1) == 1
    assert dict(Study.objects.values_list("pk", "identities"))[mixed.pk] == 2


# --- where the study is shown -----------------------------------------------------------------


def _page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_the_study_list_row_and_the_study_page_flag_it_with_the_names_for_clinicians(physician, mixed):
    plain = store_dataset(physician, PatientID="ONE-1", PatientName="Single^Sam", StudyDescription="Plain CT")
    listing = _page(physician, "/studies/")
    assert listing.count('data-mixed-identity="2"') == 1 and "More than one patient" in listing
    page = _page(physician, f"/studies/{mixed.study_instance_uid}/")
    assert "data-mixed-identity" in page and WARNING in page
    assert "Doe Jane; Roe Richard; PatientID MIX-1" in page
    assert "data-mixed-identity" not in _page(physician, f"/studies/{plain.StudyInstanceUID}/")


def test_the_viewer_page_carries_the_warning_and_a_study_of_one_patient_does_not(physician, mixed):
    page = _page(physician, f"/studies/{mixed.study_instance_uid}/view/")
    assert 'data-identity-warning="More than one patient in these images (2 patients: Doe Jane; Roe Richard' in page
    assert "data-identity-badge" in page
    plain = store_dataset(physician, PatientID="ONE-2")
    assert "data-identity-warning" not in _page(physician, f"/studies/{plain.StudyInstanceUID}/view/")


def test_the_patient_portal_and_a_share_link_flag_it_without_naming_anyone(physician, patient_user, mixed):
    home = _page(patient_user, "/portal/")
    assert 'data-mixed-identity="2"' in home
    study_page = _page(patient_user, f"/portal/studies/{mixed.study_instance_uid}/")
    assert WARNING in study_page and "2 different patients" in study_page
    assert "Roe Richard" not in study_page  # another patient's name is not the patient's to read
    context = viewer_context(patient_user, mixed)
    assert context["identity_warning"].startswith(WARNING) and "Roe" not in context["identity_warning"]

    token = sharing.create_share(study=mixed, by=physician).token
    shared = Client().get(f"/s/{token}/").content.decode()
    assert WARNING in shared and 'data-identity-warning="More than one patient' in shared
    assert "Roe Richard" not in shared


# --- consults on it ---------------------------------------------------------------------------


@pytest.fixture
def drafted(physician, specialist, mixed, auth_client, django_capture_on_commit_callbacks):
    consult = ConsultFactory(requester=physician, study=mixed)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    api = auth_client(specialist)
    saved = api.put(f"/api/v1/consults/{consult.pk}/report/", {"findings": "F", "impression": "I"}, format="json")
    assert saved.status_code == 200, saved.data
    return consult


def test_the_consult_pages_and_api_flag_it(physician, specialist, drafted, auth_client):
    assert WARNING in _page(physician, f"/consults/{drafted.pk}/")
    editor = _page(specialist, f"/consults/{drafted.pk}/report/")
    assert "data-mixed-identity" in editor and "Roe Richard" in editor
    assert auth_client(physician).get(f"/api/v1/consults/{drafted.pk}/").data["study"]["identities"] == 2


def test_signing_on_a_mixed_study_needs_the_flag_acknowledged(specialist, drafted, auth_client, password):
    changes = consult_identity.differences(drafted)
    # The latest image agrees with the record: the second patient in the study is what is flagged.
    assert [(c.label, c.where) for c in changes] == [("More than one patient", "in the images")]
    assert (
        changes[0].then == "Doe Jane (MIX-1)" and changes[0].now == "2 patients: Doe Jane; Roe Richard; PatientID MIX-1"
    )

    api = auth_client(specialist)
    refused = api.post(f"/api/v1/consults/{drafted.pk}/report/sign/", {"password": password}, format="json")
    assert refused.status_code == 409 and refused.data["code"] == "identity_changed"
    assert not Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()

    client = Client()
    client.force_login(specialist)
    editor = client.get(f"/consults/{drafted.pk}/report/").content.decode()
    assert "data-identity-changes" in editor and 'name="confirm_identity"' in editor
    client.post(f"/consults/{drafted.pk}/report/sign/", {"password": password})
    assert not Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()

    signed = api.post(
        f"/api/v1/consults/{drafted.pk}/report/sign/", {"password": password, "confirm_identity": True}, format="json"
    )
    assert signed.status_code == 200


# --- the banner over the image, in a browser ------------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_viewer_shows_the_banner_over_the_image_and_none_for_one_patient(
    browser, live_server, physician, tmp_path, allow_orm_beside_playwright
):
    from tests.viewer import dicom

    uids = {"mixed": "1.2.826.0.1.3680043.10.543.5151", "single": "1.2.826.0.1.3680043.10.543.5152"}
    for key, uid in uids.items():
        slices = dicom.ct_slices(uid, count=2, size=64)
        if key == "mixed":
            slices[1].PatientName = "Roe^Richard"  # the same PatientID: ingest stores it
        for path in dicom.write(slices, tmp_path / key):
            assert ingest_file(path, filename=path.name, user=physician).status == "stored"
    client = Client()
    client.force_login(physician)
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{live_server.url}/studies/{uids['mixed']}/view/")
        page.wait_for_selector("[data-viewer][data-state=ready]")
        badge = page.locator("[data-identity-badge]")
        assert badge.is_visible()
        assert badge.inner_text().startswith(WARNING) and "Roe Richard" in badge.inner_text()
        viewport, box = page.locator("[data-viewport]").bounding_box(), badge.bounding_box()
        assert viewport["y"] <= box["y"] < viewport["y"] + viewport["height"] / 3  # over the image, at the top
        page.keyboard.press("ArrowDown")  # the next image: still there
        assert badge.is_visible()
        assert page.locator("[data-viewer]").get_attribute("data-mixed-identity") == "true"

        page.goto(f"{live_server.url}/studies/{uids['single']}/view/")
        page.wait_for_selector("[data-viewer][data-state=ready]")
        assert page.locator("[data-identity-badge]").is_hidden()
        assert errors == []
    finally:
        context.close()
