"""Practices (tenants): nothing of one practice reaches another; clinicians outside any practice have
no clinical access; practice admins invite, promote and remove members; site administrators admit
waiting clinicians; uploads name their practice; createuser and seed_demo file accounts in practices."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.contrib.messages import get_messages
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Organization, PracticeInvitation, User
from consultations import actions
from studies.models import Patient, Study
from tests.factories import ConsultFactory, SpecialistFactory, UserFactory, make_study
from tests.studies import dicom_factory as f
from tests.studies.test_dicomweb_helpers import token_client

pytestmark = pytest.mark.django_db

UPLOADS = "/api/v1/uploads/"
BOUNDARY = "practice-b0undary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
STUDY_UID_TAG = "0020000D"
PASSWORD = "a-long-fine-password"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


# -- helpers -----------------------------------------------------------------------------------


def dicom(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/dicom")


def upload(client: Client, data: bytes, name: str = "image.dcm", **fields):
    """POST /api/v1/uploads/ with one file (and form fields such as practice)."""
    return client.post(UPLOADS, {"files": [dicom(name, data)], **fields})


def stow(user, data: bytes, query: str = ""):
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return token_client(user).generic("POST", f"/dicomweb/studies{query}", body, content_type=STOW_TYPE)


class Browser(Client):
    """A test client that drops messages no page showed before each request, so ``flashed``
    reads what that one request said."""

    def request(self, **request):
        self.cookies.pop("messages", None)
        return super().request(**request)


def signed_in(user) -> Browser:
    client = Browser()
    client.force_login(user)
    return client


def flashed(response) -> list[str]:
    """The messages a (non-followed) response of a ``Browser`` queued for the next page."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def study_uids(qido_answer) -> set[str]:
    assert qido_answer.status_code == 200, qido_answer.content
    return {item[STUDY_UID_TAG]["Value"][0] for item in qido_answer.json()}


def results(answer) -> list[dict]:
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def join_path(email: str) -> str:
    """The path of the join link in the newest practice invitation sent to ``email``."""
    sent = [message for message in mail.outbox if message.to == [email]]
    assert sent, f"no email to {email}"
    links = re.findall(r"https?://\S+/practices/join/\S+/", sent[-1].body)
    assert len(links) == 1, sent[-1].body
    return urlsplit(links[0]).path


def invite(admin, practice, email: str, role: str = "clinician"):
    # The email goes out once the invitation is committed.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return signed_in(admin).post(
            reverse("accounts:invite_member", args=[practice.pk]), {"email": email, "role": role}
        )


def member_url(membership: Membership) -> str:
    return reverse("accounts:change_member", args=[membership.practice_id, membership.pk])


def pending_physician(email: str, **fields) -> User:
    return UserFactory(role="physician", practice=False, email=email, **fields)


# -- 1. the attack: the same MRN in another practice ----------------------------------------------


def test_stranger_uploading_the_same_mrn_gets_a_record_of_their_own_and_nothing_of_the_first_practice():
    owner = UserFactory(role="physician", email="dr-a@example.com", name="Dr A")
    stranger = UserFactory(role="physician", email="stranger@example.com", name="Dr Stranger")
    assert owner.default_practice != stranger.default_practice

    answer = upload(token_client(owner), f.make_ct(PatientID="MRN-4711", PatientName="Doe^Jane"), "a.dcm")
    assert answer.status_code == 201, answer.content
    a_study = Study.objects.select_related("patient").get(uploaded_by=owner)
    a_patient = a_study.patient

    # The stranger knows (or guesses) the MRN and uploads any image under it.
    answer = upload(token_client(stranger), f.make_ct(PatientID="MRN-4711", PatientName="Intruder^Ivan"), "s.dcm")
    assert answer.status_code == 201, answer.content
    s_study = Study.objects.select_related("patient").get(uploaded_by=stranger)
    s_patient = s_study.patient
    assert s_patient.pk != a_patient.pk
    assert s_patient.practice == stranger.default_practice

    as_stranger = token_client(stranger)
    assert as_stranger.get(f"/api/v1/patients/{a_patient.pk}/").status_code == 404
    assert signed_in(stranger).get(f"/patients/{a_patient.pk}/").status_code == 404
    listed = results(as_stranger.get("/api/v1/patients/"))
    assert [(p["id"], p["name"]) for p in listed] == [(s_patient.pk, "Intruder^Ivan")]
    assert "Doe" not in as_stranger.get("/api/v1/patients/").content.decode()
    assert as_stranger.get(f"/api/v1/studies/{a_study.study_instance_uid}/").status_code == 404
    asked = as_stranger.post(
        f"/api/v1/patients/{a_patient.pk}/invite/", {"email": "accomplice@example.com"}, content_type="application/json"
    )
    assert asked.status_code == 404

    # The first practice's record is untouched: its name, its one study, no account linked.
    a_patient.refresh_from_db()
    assert a_patient.name == "Doe^Jane" and a_patient.account is None
    assert list(a_patient.studies.values_list("pk", flat=True)) == [a_study.pk]

    # A patient account the stranger controls, linked (with its consent) to the stranger's own record.
    accomplice = UserFactory(role="patient", email="accomplice@example.com", name="Accomplice")
    asked = as_stranger.post(
        f"/api/v1/patients/{s_patient.pk}/invite/", {"email": accomplice.email}, content_type="application/json"
    )
    assert asked.status_code == 201, asked.content
    as_accomplice = token_client(accomplice)
    requests = as_accomplice.get("/api/v1/link-requests/").json()
    assert [r["patient_name"] for r in requests] == ["Intruder Ivan"]
    accepted = as_accomplice.post(f"/api/v1/link-requests/{requests[0]['id']}/accept/")
    assert accepted.status_code == 200 and accepted.json()["status"] == "linked"
    assert Patient.objects.get(pk=s_patient.pk).account == accomplice
    assert Patient.objects.get(pk=a_patient.pk).account is None

    a_uid = a_study.study_instance_uid
    assert as_accomplice.get(f"/dicomweb/studies/{a_uid}").status_code == 404
    assert as_accomplice.get(f"/dicomweb/studies/{a_uid}/metadata").status_code == 404
    assert study_uids(as_accomplice.get("/dicomweb/studies")) == {s_study.study_instance_uid}
    assert study_uids(as_accomplice.get("/dicomweb/studies", {"PatientID": "MRN-4711"})) == {s_study.study_instance_uid}
    assert [p["id"] for p in results(as_accomplice.get("/api/v1/patients/"))] == [s_patient.pk]


def test_stranger_cannot_file_images_into_another_practices_study_by_its_uid():
    owner = UserFactory(role="physician", email="dr-a@example.com")
    stranger = UserFactory(role="physician", email="stranger@example.com")
    assert upload(token_client(owner), f.make_ct(PatientID="MRN-4711")).status_code == 201
    a_study = Study.objects.get(uploaded_by=owner)

    sneaked = f.make_ct(PatientID="MRN-4711", StudyInstanceUID=a_study.study_instance_uid)
    answer = upload(token_client(stranger), sneaked)
    assert answer.status_code == 400
    assert answer.json()["results"][0]["code"] == "forbidden_study"
    a_study.refresh_from_db()
    assert a_study.num_instances == 1
    assert token_client(stranger).get(f"/dicomweb/studies/{a_study.study_instance_uid}").status_code == 404


# -- 2. a self-registered physician no practice has admitted ------------------------------------


def test_pending_physician_may_not_upload_over_the_api_and_is_told_why():
    pending = pending_physician("pending@example.com")
    assert pending.awaiting_practice and not pending.has_clinical_access
    answer = upload(token_client(pending), f.make_ct())
    assert answer.status_code == 403
    assert "not a member of a practice" in answer.json()["detail"]
    assert not Study.objects.exists()


def test_pending_physician_sees_no_studies_or_patients(physician):
    study = make_study(uploader=physician)
    pending = pending_physician("pending@example.com")
    api = token_client(pending)
    assert results(api.get("/api/v1/studies/")) == []
    assert results(api.get("/api/v1/patients/")) == []
    assert study_uids(api.get("/dicomweb/studies")) == set()
    assert api.get(f"/api/v1/patients/{study.patient_id}/").status_code == 404
    assert api.get(f"/dicomweb/studies/{study.study_instance_uid}/metadata").status_code == 404
    browser = signed_in(pending)
    assert list(browser.get("/studies/").context["page"].object_list) == []
    assert browser.get(f"/patients/{study.patient_id}/").status_code == 404
    assert browser.get(f"/studies/{study.study_instance_uid}/").status_code == 404


def test_pending_physician_upload_page_says_why_and_home_asks_to_join_a_practice(physician):
    browser = signed_in(pending_physician("pending@example.com"))
    page = browser.get(reverse("studies:upload"))
    assert page.status_code == 403
    assert "not a member of a practice" in page.content.decode()
    home = browser.get("/")
    assert home.status_code == 200
    assert "Join your practice first" in home.content.decode()
    assert "data-awaiting-practice" in home.content.decode()
    # A member is not asked.
    assert "Join your practice first" not in signed_in(physician).get("/").content.decode()


def test_pending_physician_stow_of_a_new_study_is_refused_with_a_failed_sop_sequence():
    pending = pending_physician("pending@example.com")
    answer = stow(pending, f.make_ct())
    assert answer.status_code == 409, answer.content
    assert answer["Content-Type"] == "application/dicom+json"
    body = answer.json()
    assert REFERENCED_SOP_SEQUENCE not in body
    (failed,) = body[FAILED_SOP_SEQUENCE]["Value"]
    assert failed["00081197"]["Value"] == [0x0110]
    assert "not a member of a practice" in failed["0040A160"]["Value"][0]
    assert not Study.objects.exists()


def test_pending_specialist_is_offered_no_consult_and_cannot_take_one(physician):
    pending = SpecialistFactory(email="pending-specialist@example.com", practice=False)
    assert pending.awaiting_practice and not pending.has_clinical_access
    study = make_study(uploader=physician)
    consult = ConsultFactory(requester=physician, study=study)
    actions.submit_consult(consult, by=physician)
    assert not consult.offers.filter(specialist=pending).exists()
    claim = token_client(pending).post(f"/api/v1/consults/{consult.pk}/accept/")
    assert claim.status_code in (403, 404)
    assert token_client(pending).get(f"/api/v1/patients/{study.patient_id}/").status_code == 404


# -- 3. practice pages ------------------------------------------------------------------------------


def test_practice_admin_invites_and_the_invited_clinician_joins_by_the_emailed_link(physician):
    practice = physician.default_practice
    newcomer = pending_physician("newcomer@example.com", name="Dr Newcomer")

    sent = invite(physician, practice, "Newcomer@Example.com")
    assert sent.status_code == 302 and sent["Location"] == reverse("accounts:practice", args=[practice.pk])
    assert flashed(sent) == [
        "Invitation sent to newcomer@example.com. If the address can join, the email tells them how."
    ]
    path = join_path("newcomer@example.com")
    token = path.rstrip("/").rsplit("/", 1)[-1]
    invitation = PracticeInvitation.objects.get(practice=practice)
    assert invitation.status == "pending" and invitation.token_hash != token  # only a hash is kept

    browser = signed_in(newcomer)
    page = browser.get(path)
    assert page.status_code == 200
    assert practice.name in page.content.decode()
    joined = browser.post(path)
    assert joined.status_code == 302 and joined["Location"] == "/"
    assert flashed(joined) == [f"Welcome to {practice.name}."]
    membership = Membership.objects.get(practice=practice, user=newcomer)
    assert membership.role == "clinician" and membership.added_by == physician
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.accepted_by == newcomer
    newcomer.refresh_from_db()
    assert newcomer.default_practice == practice

    # From the next request on, the newcomer works in the practice.
    assert browser.get(reverse("studies:upload")).status_code == 200
    assert "Join your practice first" not in browser.get("/").content.decode()
    # The link is spent.
    again = browser.post(path)
    assert again.status_code == 200
    assert flashed(again) == ["This invitation is accepted: ask the practice for a new one."]


def test_accepting_an_older_invitation_never_demotes_the_practices_last_admin(admin_user):
    practice = Organization.objects.create(name="New Clinic")
    doctor = pending_physician("doctor@example.com")
    invite(admin_user, practice, doctor.email, role="clinician")
    # Meanwhile a site administrator admits them as the practice's admin.
    admitted = signed_in(admin_user).post(
        reverse("accounts:admit", args=[doctor.pk]), {"practice": practice.pk, "role": "admin"}
    )
    assert admitted.status_code == 302
    assert Membership.objects.get(user=doctor).is_admin
    # Then they follow the link of the email that came first.
    signed_in(doctor).post(join_path(doctor.email))
    assert practice.memberships.filter(role=Membership.Role.ADMIN).exists()
    assert Membership.objects.get(user=doctor).is_admin


def test_inviting_answers_the_same_whoever_owns_the_address(physician, patient_user, outsider):
    practice = physician.default_practice
    member = UserFactory(role="physician", practice=practice, email="member@example.com")
    addresses = ["nobody-yet@example.com", patient_user.email, outsider.email, member.email]
    answers = set()
    for email in addresses:
        response = invite(physician, practice, email)
        assert response.status_code == 302
        (message,) = flashed(response)
        answers.add(message.replace(email, "<address>"))
    assert answers == {"Invitation sent to <address>. If the address can join, the email tells them how."}
    # What differs goes by email, to the address alone: a patient's account cannot join.
    (to_patient,) = [m for m in mail.outbox if m.to == [patient_user.email]]
    assert "/practices/join/" not in to_patient.body and "not a clinician's account" in to_patient.body
    for email in ("nobody-yet@example.com", outsider.email, member.email):
        assert join_path(email)


def test_join_link_opened_by_the_wrong_account_is_refused_and_joins_nobody(physician):
    practice = physician.default_practice
    invited = pending_physician("invited@example.com")
    invite(physician, practice, invited.email)
    path = join_path(invited.email)

    wrong = pending_physician("wrong@example.com")
    refused = signed_in(wrong).post(path)
    assert refused.status_code == 200
    (message,) = flashed(refused)
    assert "sent to another email address" in message
    assert not Membership.objects.filter(user=wrong).exists()

    # The account of the invited address is refused too until it has confirmed the address.
    unconfirmed = pending_physician("unconfirmed@example.com")
    EmailAddress.objects.filter(user=unconfirmed).update(verified=False)
    invite(physician, practice, unconfirmed.email)
    refused = signed_in(unconfirmed).post(join_path(unconfirmed.email))
    assert "confirm that address first" in flashed(refused)[0]
    assert not Membership.objects.filter(user=unconfirmed).exists()

    # A patient account cannot join a practice even with the invited address confirmed.
    patient = UserFactory(role="patient", email="patient-invited@example.com")
    invite(physician, practice, patient.email)
    assert not [m for m in mail.outbox if m.to == [patient.email] and "/practices/join/" in m.body]
    assert PracticeInvitation.objects.get(email=patient.email).status == "pending"

    assert PracticeInvitation.objects.get(email=invited.email).status == "pending"
    assert Membership.objects.filter(practice=practice).count() == 1


def test_revoked_and_expired_invitations_cannot_be_used(physician):
    practice = physician.default_practice
    revoked_user = pending_physician("revoked@example.com")
    expired_user = pending_physician("expired@example.com")
    invite(physician, practice, revoked_user.email)
    invite(physician, practice, expired_user.email)
    revoked_path, expired_path = join_path(revoked_user.email), join_path(expired_user.email)

    revoked = PracticeInvitation.objects.get(email=revoked_user.email)
    answer = signed_in(physician).post(reverse("accounts:revoke_invitation", args=[practice.pk, revoked.pk]))
    assert answer.status_code == 302
    assert flashed(answer) == [f"The invitation to {revoked_user.email} no longer works."]
    revoked.refresh_from_db()
    assert revoked.status == "revoked"

    PracticeInvitation.objects.filter(email=expired_user.email).update(
        created_at=timezone.now() - PracticeInvitation.lifetime() - dt.timedelta(seconds=1)
    )
    for user, path, status in ((revoked_user, revoked_path, "revoked"), (expired_user, expired_path, "expired")):
        browser = signed_in(user)
        page = browser.get(path)
        assert page.status_code == 200 and f"This invitation is {status}" in page.content.decode()
        answer = browser.post(path)
        assert answer.status_code == 200
        assert flashed(answer) == [f"This invitation is {status}: ask the practice for a new one."]
        assert not Membership.objects.filter(user=user).exists()
    assert signed_in(revoked_user).get("/practices/join/not-a-real-token/").status_code == 404


def test_members_are_made_admin_and_removed_but_the_last_admin_stays(physician):
    practice = physician.default_practice
    founder = Membership.objects.get(practice=practice, user=physician)
    assert founder.is_admin
    partner = UserFactory(role="physician", practice=practice, email="partner@example.com", name="Dr Partner")
    partnership = Membership.objects.get(practice=practice, user=partner)
    as_founder = signed_in(physician)

    # The only admin can neither step down nor leave.
    for data in ({"role": "clinician"}, {"remove": "1"}):
        answer = as_founder.post(member_url(founder), data)
        assert answer.status_code == 302
        assert flashed(answer) == ["This is the practice's last admin: make someone else admin first."]
        founder.refresh_from_db()
        assert founder.is_admin

    answer = as_founder.post(member_url(partnership), {"role": "admin"})
    assert answer.status_code == 302
    assert flashed(answer) == ["Dr Partner is now Practice admin."]
    partnership.refresh_from_db()
    assert partnership.is_admin
    as_partner = signed_in(partner)
    assert as_partner.get(reverse("accounts:practice", args=[practice.pk])).status_code == 200

    # With two admins, one may demote and remove the other.
    assert as_partner.post(member_url(founder), {"role": "clinician"}).status_code == 302
    founder.refresh_from_db()
    assert not founder.is_admin
    assert as_founder.get(reverse("accounts:practice", args=[practice.pk])).status_code == 404
    answer = as_partner.post(member_url(founder), {"remove": "1"})
    assert flashed(answer) == [f"{physician.display_name} is no longer a member of {practice.name}."]
    assert not Membership.objects.filter(pk=founder.pk).exists()
    physician.refresh_from_db()
    assert physician.default_practice is None and physician.awaiting_practice

    # Now the partner is the last admin.
    for data in ({"role": "clinician"}, {"remove": "1"}):
        answer = as_partner.post(member_url(partnership), data)
        assert "last admin" in flashed(answer)[0]
    partnership.refresh_from_db()
    assert partnership.is_admin


def test_non_admin_member_and_outsider_get_404_on_practice_pages(physician, outsider, patient_user):
    practice = physician.default_practice
    clinician = UserFactory(role="physician", practice=practice, email="clinician@example.com")
    founder = Membership.objects.get(practice=practice, user=physician)
    invite(physician, practice, "someone@example.com")
    invitation = PracticeInvitation.objects.get(practice=practice)
    for user in (clinician, outsider):
        browser = signed_in(user)
        assert browser.get(reverse("accounts:practice", args=[practice.pk])).status_code == 404
        assert (
            browser.post(reverse("accounts:invite_member", args=[practice.pk]), {"email": "x@example.com"}).status_code
            == 404
        )
        assert browser.post(member_url(founder), {"remove": "1"}).status_code == 404
        assert browser.post(member_url(founder), {"role": "clinician"}).status_code == 404
        assert browser.post(reverse("accounts:revoke_invitation", args=[practice.pk, invitation.pk])).status_code == 404
    assert signed_in(physician).get(reverse("accounts:practice", args=[999999])).status_code == 404
    founder.refresh_from_db()
    assert founder.is_admin
    invitation.refresh_from_db()
    assert invitation.status == "pending"
    # A clinician sees their own membership on /practices/, without the admin's link.
    mine = signed_in(clinician).get(reverse("accounts:practices"))
    assert mine.status_code == 200
    assert practice.name in mine.content.decode()
    assert reverse("accounts:practice", args=[practice.pk]) not in mine.content.decode()
    assert signed_in(patient_user).get(reverse("accounts:practices")).status_code == 404


def test_site_admin_admits_a_waiting_clinician_from_the_practices_page(admin_user, physician, patient_user):
    practice = physician.default_practice
    waiting = pending_physician("waiting@example.com", name="Dr Waiting")
    as_admin = signed_in(admin_user)
    page = as_admin.get(reverse("accounts:practices"))
    assert page.status_code == 200
    assert f'data-pending="{waiting.pk}"' in page.content.decode()

    answer = as_admin.post(reverse("accounts:admit", args=[waiting.pk]), {"practice": practice.pk, "role": "clinician"})
    assert answer.status_code == 302
    assert flashed(answer) == [f"Dr Waiting is now a member of {practice.name}."]
    assert Membership.objects.get(user=waiting).practice == practice
    assert f'data-pending="{waiting.pk}"' not in as_admin.get(reverse("accounts:practices")).content.decode()
    # Admitted once: no longer waiting.
    again = as_admin.post(reverse("accounts:admit", args=[waiting.pk]), {"practice": practice.pk, "role": "admin"})
    assert again.status_code == 404
    # Patients are not waiting clinicians; practice admins do not use the site admission.
    assert (
        as_admin.post(reverse("accounts:admit", args=[patient_user.pk]), {"practice": practice.pk}).status_code == 404
    )
    other = pending_physician("other-waiting@example.com")
    assert (
        signed_in(physician).post(reverse("accounts:admit", args=[other.pk]), {"practice": practice.pk}).status_code
        == 404
    )
    assert not Membership.objects.filter(user=other).exists()


def test_site_admin_creates_a_practice_and_nobody_else_can(admin_user, physician):
    answer = signed_in(admin_user).post(
        reverse("accounts:create_practice"), {"name": "Harbour Imaging", "kind": "imaging_site"}
    )
    created = Organization.objects.get(name="Harbour Imaging")
    assert created.kind == "imaging_site"
    assert answer.status_code == 302 and answer["Location"] == reverse("accounts:practice", args=[created.pk])
    assert signed_in(admin_user).get(answer["Location"]).status_code == 200
    refused = signed_in(physician).post(reverse("accounts:create_practice"), {"name": "Rogue Clinic", "kind": "clinic"})
    assert refused.status_code == 404
    assert not Organization.objects.filter(name="Rogue Clinic").exists()


@pytest.mark.parametrize(
    ("route", "data", "words"),
    [
        ("invite", {"email": "not-an-email", "role": "clinician"}, "email:"),
        ("invite", {"email": "", "role": "clinician"}, "email:"),
        ("invite", {"email": "x@example.com", "role": "wizard"}, "role:"),
        ("invite", {"email": "x@" + "a" * 300 + ".com", "role": "clinician"}, "email:"),
        ("change", {"role": "wizard"}, "Unknown member role 'wizard'"),
        ("change", {}, "Unknown member role ''"),
        ("admit", {"practice": "999999", "role": "clinician"}, "practice:"),
        ("admit", {"practice": "abc", "role": "clinician"}, "practice:"),
        ("admit", {"role": "wizard"}, "role:"),
        ("create", {"name": "", "kind": "clinic"}, "name:"),
        ("create", {"name": "Somewhere", "kind": "castle"}, "kind:"),
    ],
)
def test_bad_practice_input_is_a_message_never_a_500(admin_user, physician, route, data, words):
    practice = physician.default_practice
    partner = UserFactory(role="physician", practice=practice, email="partner@example.com")
    waiting = pending_physician("waiting@example.com")
    if route == "admit":
        data = {"practice": str(practice.pk), **data}
    url, user = {
        "invite": (reverse("accounts:invite_member", args=[practice.pk]), physician),
        "change": (member_url(Membership.objects.get(user=partner)), physician),
        "admit": (reverse("accounts:admit", args=[waiting.pk]), admin_user),
        "create": (reverse("accounts:create_practice"), admin_user),
    }[route]
    organizations = Organization.objects.count()
    answer = signed_in(user).post(url, data)
    assert answer.status_code == 302
    messages = flashed(answer)
    assert any(words in message for message in messages), messages
    assert not PracticeInvitation.objects.exists() and not mail.outbox
    assert Membership.objects.get(user=partner).role == "clinician"
    assert not Membership.objects.filter(user=waiting).exists()
    assert Organization.objects.count() == organizations


# -- 4. uploads name their practice --------------------------------------------------------------


@pytest.fixture
def second_practice(physician):
    """A second practice the physician works in (their own stays their default)."""
    second = Organization.objects.create(name="Second Site")
    second.add_member(physician)
    physician.forget_practices()
    assert physician.default_practice != second
    return second


def test_upload_named_for_a_second_practice_lands_there(physician, second_practice):
    first = physician.default_practice
    api = token_client(physician)
    answer = upload(api, f.make_ct(PatientID="P-2"), practice=str(second_practice.pk))
    assert answer.status_code == 201, answer.content
    study = Study.objects.select_related("patient").get()
    assert study.practice == second_practice and study.patient.practice == second_practice
    # Naming it once does not change the default.
    physician.refresh_from_db()
    assert physician.default_practice == first
    assert upload(api, f.make_ct(PatientID="P-1")).status_code == 201
    assert Study.objects.get(patient__patient_id="P-1").practice == first


def test_upload_page_choice_with_remember_practice_becomes_the_default(physician, second_practice):
    browser = signed_in(physician)
    page = browser.get(reverse("studies:upload"))
    assert page.status_code == 200
    assert set(page.context["practices"]) == {physician.default_practice, second_practice}
    assert page.context["chosen_practice"] == physician.default_practice
    assert 'id="upload-practice"' in page.content.decode()

    # What the page's script sends: the chosen practice and remember_practice=1.
    answer = upload(browser, f.make_ct(PatientID="P-1"), practice=str(second_practice.pk), remember_practice="1")
    assert answer.status_code == 201, answer.content
    physician.refresh_from_db()
    assert physician.default_practice == second_practice
    assert browser.get(reverse("studies:upload")).context["chosen_practice"] == second_practice
    # Uploads that name no practice now go there, over the API and STOW-RS alike.
    assert upload(token_client(physician), f.make_ct(PatientID="P-2")).status_code == 201
    assert stow(physician, f.make_ct(PatientID="P-3")).status_code == 200
    assert set(Study.objects.values_list("practice", flat=True)) == {second_practice.pk}


@pytest.mark.parametrize("how", ["api", "stow"])
def test_practice_not_theirs_is_a_400_naming_the_problem(physician, outsider, how):
    foreign = outsider.default_practice
    for value, words in ((str(foreign.pk), f"not a member of practice {foreign.pk}"), ("abc", "practice's number")):
        if how == "api":
            answer = upload(token_client(physician), f.make_ct(), practice=value)
            assert answer.status_code == 400
            assert words in answer.json()["practice"][0]
            assert words in answer.json()["detail"]
        else:
            answer = stow(physician, f.make_ct(), f"?practice={value}")
            assert answer.status_code == 400
            assert words in answer.json()["detail"]
    assert not Study.objects.exists()


def test_stow_with_a_practice_of_theirs_files_the_study_there(physician, second_practice):
    answer = stow(physician, f.make_ct(PatientID="P-9"), f"?practice={second_practice.pk}")
    assert answer.status_code == 200, answer.content
    study = Study.objects.select_related("patient").get()
    assert study.practice == second_practice and study.patient.practice == second_practice
    assert answer.json()[REFERENCED_SOP_SEQUENCE]["Value"]


# -- 5. colleagues share their practice's studies ---------------------------------------------------


def test_practice_colleagues_see_each_others_studies_and_patients(physician, outsider):
    partner = UserFactory(role="physician", practice=physician.default_practice, email="partner@example.com")
    assert upload(token_client(physician), f.make_ct(PatientID="MRN-1")).status_code == 201
    study = Study.objects.get()
    uid = study.study_instance_uid
    as_partner = token_client(partner)
    assert [s["study_instance_uid"] for s in results(as_partner.get("/api/v1/studies/"))] == [uid]
    assert as_partner.get(f"/api/v1/patients/{study.patient_id}/").status_code == 200
    assert study_uids(as_partner.get("/dicomweb/studies")) == {uid}
    assert as_partner.get(f"/dicomweb/studies/{uid}/metadata").status_code == 200
    assert signed_in(partner).get(f"/studies/{uid}/").status_code == 200
    # And the other way round.
    assert upload(as_partner, f.make_ct(PatientID="MRN-2")).status_code == 201
    assert len(results(token_client(physician).get("/api/v1/studies/"))) == 2
    # Someone in another practice sees neither.
    assert results(token_client(outsider).get("/api/v1/studies/")) == []


def test_removing_a_member_ends_their_access_at_once(physician):
    practice = physician.default_practice
    partner = UserFactory(role="physician", practice=practice, email="partner@example.com")
    study = make_study(uploader=physician)
    uid = study.study_instance_uid
    as_partner = token_client(partner)
    browser = signed_in(partner)
    assert as_partner.get(f"/dicomweb/studies/{uid}/metadata").status_code == 200
    assert browser.get(f"/patients/{study.patient_id}/").status_code == 200

    answer = signed_in(physician).post(member_url(Membership.objects.get(user=partner)), {"remove": "1"})
    assert answer.status_code == 302

    assert as_partner.get(f"/dicomweb/studies/{uid}/metadata").status_code == 404
    assert as_partner.get(f"/api/v1/patients/{study.patient_id}/").status_code == 404
    assert results(as_partner.get("/api/v1/studies/")) == []
    assert browser.get(f"/patients/{study.patient_id}/").status_code == 404
    assert browser.get(f"/studies/{uid}/").status_code == 404
    assert upload(as_partner, f.make_ct()).status_code == 403
    assert "Join your practice first" in browser.get("/").content.decode()


# -- 6. createuser and seed_demo ----------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createuser_practice_creates_or_joins_it_by_name():
    output = run(
        "createuser", "first@example.com", "--role", "physician", "--password", PASSWORD, "--practice", "North Clinic"
    )
    north = Organization.objects.get(name="North Clinic")
    first = User.objects.get(email="first@example.com")
    # The first member of a new practice runs it.
    assert Membership.objects.get(user=first, practice=north).is_admin
    assert f"Practice: North Clinic (#{north.pk}), practice admin" in output
    assert first.default_practice == north

    output = run(
        "createuser", "second@example.com", "--role", "specialist", "--password", PASSWORD, "--practice", "north clinic"
    )
    second = User.objects.get(email="second@example.com")
    assert Organization.objects.filter(name__iexact="north clinic").count() == 1
    assert Membership.objects.get(user=second).practice == north
    assert Membership.objects.get(user=second).role == "clinician"
    assert f"Practice: North Clinic (#{north.pk}), clinician" in output
    assert second.has_clinical_access


def test_createuser_practice_admin_makes_them_the_practices_admin():
    run("createuser", "first@example.com", "--role", "physician", "--password", PASSWORD, "--practice", "North Clinic")
    run(
        "createuser", "boss@example.com", "--role", "physician", "--password", PASSWORD,
        "--practice", "North Clinic", "--practice-admin",
    )  # fmt: skip
    assert Membership.objects.get(user__email="boss@example.com").is_admin
    # An existing member is promoted by a rerun with --practice-admin, and keeps the role otherwise.
    run("createuser", "third@example.com", "--role", "physician", "--password", PASSWORD, "--practice", "North Clinic")
    assert Membership.objects.get(user__email="third@example.com").role == "clinician"
    run("createuser", "third@example.com", "--role", "physician", "--practice", "North Clinic")
    assert Membership.objects.get(user__email="third@example.com").role == "clinician"
    run("createuser", "third@example.com", "--role", "physician", "--practice", "North Clinic", "--practice-admin")
    assert Membership.objects.get(user__email="third@example.com").is_admin


@pytest.mark.parametrize(("role", "kind"), [("physician", "clinic"), ("specialist", "reading_group")])
def test_createuser_without_practice_gives_a_clinician_a_practice_of_their_own(role, kind):
    output = run("createuser", "solo@example.com", "--role", role, "--password", PASSWORD, "--name", "Dr Solo")
    user = User.objects.get(email="solo@example.com")
    (membership,) = Membership.objects.filter(user=user).select_related("practice")
    assert membership.is_admin
    assert membership.practice.name == "Practice of Dr Solo" and membership.practice.kind == kind
    assert "Practice: Practice of Dr Solo" in output
    assert user.has_clinical_access
    # A rerun does not make another one.
    run("createuser", "solo@example.com", "--role", role)
    assert Membership.objects.filter(user=user).count() == 1
    assert Organization.objects.count() == 1


def test_createuser_patients_and_admins_join_no_practice_and_bad_practice_flags_are_errors():
    run("createuser", "pat@example.com", "--role", "patient", "--password", PASSWORD)
    run("createuser", "root@example.com", "--role", "admin", "--password", PASSWORD)
    assert not Membership.objects.exists() and not Organization.objects.exists()
    with pytest.raises(CommandError, match="Patients do not join practices"):
        run("createuser", "pat2@example.com", "--role", "patient", "--practice", "North Clinic")
    with pytest.raises(CommandError, match="--practice-admin needs --practice NAME"):
        run("createuser", "doc@example.com", "--role", "physician", "--practice-admin")
    assert not User.objects.filter(email__in=["pat2@example.com", "doc@example.com"]).exists()


def test_seed_demo_puts_the_demo_physician_and_specialist_in_practices(settings):
    settings.DEBUG = True
    run("seed_demo")
    physician = User.objects.get(email="physician@example.com")
    specialist = User.objects.get(email="specialist@example.com")
    hospital = Membership.objects.get(user=physician)
    assert hospital.practice.name == "Demo General Hospital" and hospital.is_admin
    assert Membership.objects.get(user=specialist).practice.name == "Demo Reading Group"
    assert physician.has_clinical_access and specialist.has_clinical_access
    assert not Membership.objects.filter(user__email__in=["admin@example.com", "patient@example.com"]).exists()
    # The demo study is filed under the physician's practice; the specialist sees it through the consult.
    study = Study.objects.select_related("patient").get()
    assert study.practice == hospital.practice and study.patient.practice == hospital.practice
    assert Study.objects.visible_to(specialist).filter(pk=study.pk).exists()
    # Idempotent: no second practice or membership.
    run("seed_demo")
    assert Organization.objects.count() == 2 and Membership.objects.count() == 2
