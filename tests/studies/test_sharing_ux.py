"""Sharing people can use: a new link with a copy button and a QR code (and its passcode, once),
the signed report carried by a link that includes it, sharing with a clinician named by email
(a grant, or an invitation claimed on sign-up), and a share page whose every URL is the share's own."""

from __future__ import annotations

import base64
import re

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from django.core import mail
from django.test import Client
from django.urls import reverse

from consultations import actions, reports
from studies import sharing
from studies.models import AccessEvent, AccessGrant, NamedShare, ShareLink, Study
from studies.permissions import can_view_study
from studies.sharing import named
from studies.sharing.qr import qr_svg
from tests.factories import ConsultFactory, SpecialistFactory, UserFactory
from tests.studies.test_dicomweb_helpers import store_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def study(physician, patient_user) -> Study:
    """Jane Doe's CT, stored by the physician and linked to the patient's account."""
    ds = store_dataset(physician)
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    study.patient.account = patient_user
    study.patient.save(update_fields=["account"])
    return Study.objects.select_related("patient").get(pk=study.pk)


@pytest.fixture
def elsewhere(db):
    """A specialist of another practice, who sees nothing of the physician's practice."""
    return SpecialistFactory(email="elsewhere@example.com", name="Dr Elsewhere")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def access_url(study: Study, name: str = "access", *args) -> str:
    return reverse(f"studies:{name}", args=[study.study_instance_uid, *args])


def sign_report(physician, specialist, study, capture, **text):
    consult = ConsultFactory(requester=physician, study=study, target_specialist=specialist)
    with capture(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    text.setdefault("findings", "Small old lacunar infarct.")
    text.setdefault("impression", "No acute findings.")
    text.setdefault("patient_summary", "Nothing urgent was found on your scan.")
    report = reports.save_draft(consult, by=specialist, **text)
    with capture(execute=True):
        report.sign(by=specialist)
    consult.refresh_from_db()
    return consult, report


# --- 1. a new link: copy button, QR code, passcode once, no truncation ----------------------------


def test_new_link_comes_with_copy_buttons_a_qr_code_and_the_passcode_once(patient_user, study):
    client = signed_in(patient_user)
    made = client.post(access_url(study, "create-link"), {"expires_in_days": 3, "passcode": "pass-1234"})
    assert made.status_code == 201
    page = made.content.decode()
    url = re.search(r"<textarea[^>]*data-share-url>([^<]+)</textarea>", page).group(1)
    assert url.startswith("http://testserver/s/") and url.endswith("/")
    assert 'data-copy="#new-share-url"' in page and 'id="new-share-url"' in page
    assert 'value="pass-1234"' in page and 'data-copy="#new-share-passcode"' in page
    assert "js/copy.js" in page
    qr = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"[^>]*data-share-qr', page).group(1)
    assert base64.b64decode(qr).decode() == qr_svg(url)
    again = client.get(access_url(study)).content.decode()
    assert "/s/" not in again.split("Share links")[0] and "pass-1234" not in again and "data-share-qr" not in again


def test_a_link_without_passcode_shows_no_passcode_box(physician, study):
    made = signed_in(physician).post(access_url(study, "create-link"), {"expires_in_days": 7})
    assert made.status_code == 201
    assert b"data-share-url" in made.content and b"data-share-passcode" not in made.content


def test_the_link_field_wraps_instead_of_being_cut(physician, study):
    made = signed_in(physician).post(access_url(study, "create-link"), {"expires_in_days": 7})
    page = made.content.decode()
    assert re.search(r'<textarea[^>]*class="share-url"[^>]*readonly', page)
    assert '<input type="text" readonly value="http' not in page


# --- 2. the signed report, when the link includes it ---------------------------------------------


def test_include_the_signed_report_is_off_unless_ticked(physician, study):
    client = signed_in(physician)
    client.post(access_url(study, "create-link"), {"expires_in_days": 7})
    client.post(access_url(study, "create-link"), {"expires_in_days": 7, "include_report": "on"})
    assert list(ShareLink.objects.order_by("pk").values_list("include_report", flat=True)) == [False, True]
    page = client.get(access_url(study)).content.decode()
    assert "Include the signed report" in page and "also one signed after you make the link" in page


def test_share_with_report_shows_summary_then_report_and_pdf_recorded_as_the_links_reads(
    physician, specialist, study, django_capture_on_commit_callbacks
):
    _consult, report = sign_report(physician, specialist, study, django_capture_on_commit_callbacks)
    token = sharing.create_share(study=study, by=physician, include_report=True).token
    holder = Client()
    page = holder.get(f"/s/{token}/").content.decode()
    summary, impression = page.index("Nothing urgent was found on your scan."), page.index("No acute findings.")
    assert summary < impression
    assert f'href="/s/{token}/report/pdf/"' in page
    pdf = holder.get(f"/s/{token}/report/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    link = ShareLink.objects.get()
    events = AccessEvent.objects.filter(share_link=link)
    assert set(events.values_list("action", flat=True)) == {"share_open", "report_view", "report_pdf"}
    assert events.get(action="report_pdf").object_id == str(report.pk)
    assert not events.filter(user__isnull=False).exists()


def test_a_report_signed_after_the_link_was_made_is_included(
    physician, specialist, study, django_capture_on_commit_callbacks
):
    token = sharing.create_share(study=study, by=physician, include_report=True).token
    assert b"data-shared-report" not in Client().get(f"/s/{token}/").content
    sign_report(physician, specialist, study, django_capture_on_commit_callbacks, impression="LATER-IMPRESSION")
    assert b"LATER-IMPRESSION" in Client().get(f"/s/{token}/").content


def test_a_link_without_the_option_never_shows_the_report(
    physician, specialist, study, django_capture_on_commit_callbacks
):
    sign_report(physician, specialist, study, django_capture_on_commit_callbacks, impression="SECRET-IMPRESSION")
    token = sharing.create_share(study=study, by=physician).token
    holder = Client()
    page = holder.get(f"/s/{token}/")
    assert page.status_code == 200 and b"SECRET-IMPRESSION" not in page.content and b"report/pdf" not in page.content
    pdf = holder.get(f"/s/{token}/report/pdf/")
    assert pdf.status_code == 404 and b"This link does not work" in pdf.content
    assert not AccessEvent.objects.filter(action__in=["report_view", "report_pdf"]).exists()


def test_a_report_not_yet_released_to_the_patient_is_not_shared(
    settings, physician, specialist, study, django_capture_on_commit_callbacks
):
    settings.TELECONSULT_REPORT_RELEASE_DELAY_MINUTES = 60
    sign_report(physician, specialist, study, django_capture_on_commit_callbacks, impression="HELD-BACK")
    token = sharing.create_share(study=study, by=physician, include_report=True).token
    assert b"HELD-BACK" not in Client().get(f"/s/{token}/").content
    assert Client().get(f"/s/{token}/report/pdf/").status_code == 404


def test_an_amended_report_is_read_newest_first_and_labelled(
    physician, specialist, study, django_capture_on_commit_callbacks
):
    consult, _ = sign_report(physician, specialist, study, django_capture_on_commit_callbacks, impression="FIRST")
    addendum = reports.start_addendum(consult, by=specialist, reason="Second look at the posterior fossa.")
    addendum = reports.save_draft(consult, by=specialist, impression="AMENDED")
    with django_capture_on_commit_callbacks(execute=True):
        addendum.sign(by=specialist)
    token = sharing.create_share(study=study, by=physician, include_report=True).token
    page = Client().get(f"/s/{token}/").content.decode()
    assert "(amended)" in page and "Amended report, the latest (version 2)" in page
    assert "Why it was amended: Second look at the posterior fossa." in page
    assert "Original report (version 1)" in page
    assert page.index("AMENDED") < page.index("FIRST")


def test_api_makes_a_link_with_the_report(auth_client, physician, study):
    answer = auth_client(physician).post(
        "/api/v1/shares/", {"study_uid": study.study_instance_uid, "include_report": True}, format="json"
    )
    assert answer.status_code == 201 and answer.json()["include_report"] is True
    assert ShareLink.objects.get().include_report


# --- 3. sharing with a clinician named by email ---------------------------------------------------


def test_physician_shares_with_a_registered_clinician_who_gets_a_grant_and_an_email(
    physician, study, elsewhere, django_capture_on_commit_callbacks
):
    assert not can_view_study(elsewhere, study)
    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in(physician).post(access_url(study, "share-with"), {"email": " Elsewhere@Example.com "})
    assert answer.status_code == 302
    share = NamedShare.objects.get()
    assert share.email == "elsewhere@example.com" and share.shared_by == physician
    grant = share.grant
    assert grant.user == elsewhere and grant.reason == AccessGrant.Reason.SHARED
    assert grant.granted_by == physician and grant.source == f"named-share:{share.pk}"
    assert can_view_study(elsewhere, study)
    (message,) = mail.outbox
    assert message.to == ["elsewhere@example.com"] and f"/studies/{study.study_instance_uid}/" in message.body
    page = signed_in(physician).get(access_url(study)).content.decode()
    assert "Dr Elsewhere (elsewhere@example.com)" in page and "can see the images" in page


def test_patient_shares_with_a_clinician_as_a_patient_grant(patient_user, study, elsewhere):
    assert signed_in(patient_user).post(access_url(study, "share-with"), {"email": elsewhere.email}).status_code == 302
    assert NamedShare.objects.get().grant.reason == AccessGrant.Reason.PATIENT_GRANT


def test_unknown_address_is_invited_and_gets_access_once_signed_up_and_confirmed(
    physician, study, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in(physician).post(access_url(study, "share-with"), {"email": "newdoc@example.com"})
    assert answer.status_code == 302
    share = NamedShare.objects.get()
    assert share.grant is None and named.status_of(share) == "invited"
    (message,) = mail.outbox
    assert "/accounts/signup/?email=newdoc%40example.com" in message.body
    assert "Invited" in signed_in(physician).get(access_url(study)).content.decode().replace("invited", "Invited")

    newcomer = UserFactory(role="physician", email="newdoc@example.com", name="Dr Newcomer", verified=False)
    EmailAddress.objects.filter(user=newcomer).delete()
    address = EmailAddress.objects.create(user=newcomer, email="newdoc@example.com", verified=False, primary=True)
    assert not can_view_study(newcomer, study)  # signed up, not confirmed yet
    key = EmailConfirmationHMAC(address).key
    assert Client().post(reverse("account_confirm_email", args=[key])).status_code == 302
    share.refresh_from_db()
    assert share.grant.user == newcomer and share.grant.reason == AccessGrant.Reason.SHARED
    assert can_view_study(newcomer, study)


def test_a_patient_account_confirming_the_address_claims_nothing(physician, study):
    named.share_with(study, email="someone@example.com", by=physician)
    patient = UserFactory(role="patient", email="someone@example.com")
    signed_in(patient)  # signing in claims what a clinician would
    assert named.claim_for(patient) == 0 and NamedShare.objects.get().grant is None


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter the email address of the doctor or specialist."),
        ("not an email", "is not an email address."),
        ("owner@example.com", "That is your own address"),
    ],
)
def test_bad_addresses_are_refused_by_name(physician, study, email, message):
    answer = signed_in(physician).post(access_url(study, "share-with"), {"email": email})
    assert answer.status_code == 400
    assert message in answer.content.decode().replace("&#x27;", "'")
    assert not NamedShare.objects.exists()


def test_sharing_twice_is_refused(physician, study, elsewhere):
    client = signed_in(physician)
    for email in (elsewhere.email, "pending@example.com"):
        assert client.post(access_url(study, "share-with"), {"email": email}).status_code == 302
        again = client.post(access_url(study, "share-with"), {"email": email.upper()})
        assert again.status_code == 409 and b"already shared with" in again.content
    assert NamedShare.objects.count() == 2


def test_a_clinician_who_already_sees_the_study_is_not_shared_with_again(patient_user, study, colleague, physician):
    from accounts.practices import default_practice

    default_practice(physician).memberships.create(user=colleague)
    answer = signed_in(patient_user).post(access_url(study, "share-with"), {"email": colleague.email})
    assert answer.status_code == 409 and b"can already see this study" in answer.content


def test_revoking_removes_the_grant_and_the_clinician_then_gets_404(physician, study, elsewhere):
    share = named.share_with(study, email=elsewhere.email, by=physician).share
    assert signed_in(elsewhere).get(reverse("studies:detail", args=[study.study_instance_uid])).status_code == 200
    answer = signed_in(physician).post(access_url(study, "revoke-person-share", share.pk))
    assert answer.status_code == 302
    share.refresh_from_db()
    assert share.grant.revoked_at is not None and share.withdrawn_by == physician
    assert named.status_of(share) == "revoked"
    assert signed_in(elsewhere).get(reverse("studies:detail", args=[study.study_instance_uid])).status_code == 404
    # Revoked: the same address may be shared with again.
    assert named.share_with(study, email=elsewhere.email, by=physician).granted


def test_withdrawing_an_invitation_means_confirming_the_address_later_opens_nothing(physician, study):
    share = named.share_with(study, email="late@example.com", by=physician).share
    assert signed_in(physician).post(access_url(study, "withdraw-person-share", share.pk)).status_code == 302
    share.refresh_from_db()
    assert named.status_of(share) == "withdrawn"
    late = UserFactory(role="physician", email="late@example.com")
    assert named.claim_for(late) == 0 and not can_view_study(late, study)


def test_revoke_on_an_invitation_is_refused_with_a_message(physician, study):
    share = named.share_with(study, email="late@example.com", by=physician).share
    answer = signed_in(physician).post(access_url(study, "revoke-person-share", share.pk), follow=True)
    assert b"withdraw it instead" in answer.content
    assert named.status_of(NamedShare.objects.get()) == "invited"


def test_outsiders_get_404_on_revoke_and_withdraw(physician, patient_user, study, elsewhere, colleague, outsider):
    from accounts.practices import default_practice

    granted = named.share_with(study, email=elsewhere.email, by=physician).share
    invited = named.share_with(study, email="late@example.com", by=physician).share
    default_practice(physician).memberships.create(user=colleague)  # sees the study, did not share
    other_patient = UserFactory(role="patient", email="other.patient@example.com")
    for person in (patient_user, colleague, outsider, other_patient, elsewhere):
        client = signed_in(person)
        assert client.post(access_url(study, "revoke-person-share", granted.pk)).status_code == 404, person
        assert client.post(access_url(study, "withdraw-person-share", invited.pk)).status_code == 404, person
    assert named.status_of(NamedShare.objects.get(pk=granted.pk)) == "active"
    assert named.status_of(NamedShare.objects.get(pk=invited.pk)) == "invited"


def test_outsider_cannot_share_a_study_they_cannot_see(outsider, study):
    assert signed_in(outsider).post(access_url(study, "share-with"), {"email": "x@example.com"}).status_code == 404


def test_patient_sees_every_named_share_of_their_study_the_clinician_their_own(
    physician, patient_user, study, elsewhere, colleague
):
    from accounts.practices import default_practice

    default_practice(physician).memberships.create(user=colleague)
    named.share_with(study, email=elsewhere.email, by=physician)
    named.share_with(study, email="invited@example.com", by=colleague)
    mine = signed_in(patient_user).get(access_url(study)).content.decode()
    assert "elsewhere@example.com" in mine and "invited@example.com" in mine
    theirs = signed_in(colleague).get(access_url(study)).content.decode()
    assert "invited@example.com" in theirs and "elsewhere@example.com" not in theirs


# --- 4. and 5. the share page asks only for its own URLs and loads its own styles -----------------


def test_share_page_names_only_the_shares_own_urls(physician, study):
    token = sharing.create_share(study=study, by=physician, include_report=True, allow_download=True).token
    page = Client().get(f"/s/{token}/").content.decode()
    # What the browser fetches by itself: <link> preloads and styles, scripts and images, and the
    # viewer's DICOMweb root (links to follow, such as "Sign in", are not fetched).
    fetched = r'<link[^>]*\shref="(/[^"]*)"|\ssrc="(/[^"]*)"|data-dicomweb-root="([^"]*)"'
    urls = ["".join(groups) for groups in re.findall(fetched, page)]
    assert any("/frames/1" in url for url in urls), urls  # the viewer's preloads are there
    outside = [url for url in urls if not url.startswith((f"/s/{token}/", "/static/"))]
    assert outside == [], outside


def test_share_page_loads_the_styles_of_its_bar(physician, study):
    token = sharing.create_share(study=study, by=physician).token
    assert b"css/portal.css" in Client().get(f"/s/{token}/").content
