"""What leaving a practice ends, the last admin under simultaneous changes, the study list's page
numbers, and the smaller rules around practices."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.http import Http404
from django.urls import reverse

from accounts import practices
from accounts.models import Membership, Organization
from consultations import actions
from consultations.models import NotAllowedError
from studies.models import AccessEvent
from studies.permissions import can_view_study
from tests.concurrency import run_together
from tests.factories import ConsultFactory, UserFactory, make_study


@pytest.fixture
def team(physician):
    """A practice run by the physician, with a colleague who requested a consult there."""
    practice = physician.default_practice
    colleague = UserFactory(role="physician", practice=practice, email="leaver@example.com")
    study = make_study(uploader=colleague, practice=practice)
    consult = ConsultFactory(requester=colleague, study=study)
    return practice, colleague, study, consult


def test_a_member_who_leaves_loses_the_practices_studies_consults_and_history(client, physician, team):
    practice, colleague, study, consult = team
    AccessEvent.objects.create(
        user=physician, actor=physician.email, action="study_view", study=study, study_uid=study.study_instance_uid
    )
    practices.remove_member(Membership.objects.get(practice=practice, user=colleague), by=physician)
    colleague.forget_practices()
    assert not can_view_study(colleague, study)
    client.force_login(colleague)
    assert client.get(f"/consults/{consult.pk}/").status_code == 404
    assert client.post(f"/consults/{consult.pk}/participants/", {"email": "friend@example.com"}).status_code == 404
    assert client.get("/api/v1/access-events/").json()["results"] == []


def test_a_clinician_outside_any_practice_requests_no_consult(db):
    pending = UserFactory(role="physician", practice=False)
    study = make_study()
    with pytest.raises(NotAllowedError, match="not a member of a practice"):
        actions.create_consult(by=pending, study=study, question="?", specialty="chest", jurisdiction="US")


@pytest.mark.django_db(transaction=True)
def test_two_admins_removing_each_other_at_once_leave_one_admin(postgres):
    founder = UserFactory(role="physician", email="race-founder@example.com")
    practice = founder.default_practice
    partner = UserFactory(role="physician", practice=practice, email="race-partner@example.com")
    Membership.objects.filter(user=partner).update(role="admin")

    def remove(actor, target):
        def job():
            try:
                practices.remove_member(Membership.objects.get(practice=practice, user=target), by=actor)
                return "removed"
            except (practices.PracticeError, Http404):  # the last admin stays, or the actor left already
                return "refused"

        return job

    results = run_together([remove(founder, partner), remove(partner, founder)])
    assert sorted(results) == ["refused", "removed"]
    assert Membership.objects.filter(practice=practice, role="admin").count() == 1


def test_the_last_active_admin_stays_even_beside_a_deactivated_one(physician):
    practice = physician.default_practice
    former = UserFactory(role="physician", practice=practice, email="gone@example.com")
    Membership.objects.filter(user=former).update(role="admin")
    type(former).objects.filter(pk=former.pk).update(is_active=False)
    with pytest.raises(practices.PracticeError, match="last admin"):
        practices.remove_member(Membership.objects.get(practice=practice, user=physician), by=physician)


@pytest.mark.parametrize("page", ["0", "-1", "abc", "99999999999999999999999", "1e5", "40000"])
def test_any_page_number_gives_a_page_never_an_error(client, physician, page):
    for _ in range(3):
        make_study(uploader=physician)
    client.force_login(physician)
    response = client.get(reverse("studies:list"), {"page": page})
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 3


def test_a_patient_reads_no_other_accounts_link_events(client, physician, patient_user):
    from studies import invitations

    study = make_study(uploader=physician, patient_account=None)
    record = study.patient
    earlier = UserFactory(role="patient", email="earlier@example.com")
    invitations.record_event(None, AccessEvent.Action.LINK_ACCEPTED, record, user=earlier, obj=earlier.email)
    type(record).objects.filter(pk=record.pk).update(account=patient_user)
    client.force_login(patient_user)
    events = client.get("/api/v1/access-events/").json()["results"]
    assert not [e for e in events if "earlier@example.com" in str(e)]


def test_import_without_a_user_takes_the_only_practice_and_names_the_choice_otherwise(db, tmp_path, settings):
    from tests.studies import dicom_factory as f

    settings.MEDIA_ROOT = tmp_path / "media"
    only = Organization.objects.create(name="Only Clinic")
    path = tmp_path / "one.dcm"
    f.make_ct(path)
    call_command("import_dicom", str(path), stdout=io.StringIO())
    from studies.models import Study

    assert Study.objects.get().practice == only
    Organization.objects.create(name="Second Clinic")
    with pytest.raises(CommandError, match="--practice ID"):
        call_command("import_dicom", str(path))


def test_an_administrator_chooses_among_all_practices_on_the_upload_page(client, admin_user, physician):
    client.force_login(admin_user)
    page = client.get(reverse("studies:upload")).content.decode()
    assert 'id="upload-practice"' in page and physician.default_practice.name in page


def test_a_clinician_outside_any_practice_is_offered_no_upload_in_the_menu(db, physician):
    from studies.navigation import nav_items

    pending = UserFactory(role="physician", practice=False, email="waiting@example.com")
    assert "Upload" not in [item["label"] for item in nav_items(pending)]
    assert "Upload" in [item["label"] for item in nav_items(physician)]
