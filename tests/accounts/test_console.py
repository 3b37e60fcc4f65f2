"""The specialists' console (administrators) and the licences page (specialists): inviting and
signing up as a specialist, entering, verifying and rejecting licences, approving, suspending and
reinstating, the list's filters, and 404 for everyone else."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts import licences, specialist_invitations
from accounts.models import Licence, Organization, SpecialistEvent, SpecialistInvitation, User
from tests.factories import SpecialistFactory

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def sign_in(client, user):
    client.force_login(user)
    return client


def add_licence(specialist, *, expires_in=365, status=Licence.Status.PENDING, jurisdiction="DE") -> Licence:
    licence = licences.add_licence(
        specialist,
        jurisdiction=jurisdiction,
        number=f"N{Licence.objects.count() + 1}",
        expires_on=licences.today() + dt.timedelta(days=365),
        document=SimpleUploadedFile("scan.pdf", PDF),
        by=specialist,
    )
    Licence.objects.filter(pk=licence.pk).update(
        status=status, expires_on=licences.today() + dt.timedelta(days=expires_in)
    )
    return licence


def invite(client, email="new.specialist@example.com", **extra):
    data = {"email": email, "specialties": ["chest", "cardiac"], **extra}
    return client.post(reverse("console:invite"), data, follow=True)


# -- who may see what ---------------------------------------------------------------------------


def test_administrators_reach_the_console_from_the_menu(client, admin_user):
    page = sign_in(client, admin_user).get(reverse("home"))
    assert re.search(r'<a href="/specialists/"[^>]*>Specialists</a>', page.content.decode())


def test_specialists_reach_their_licences_from_the_menu(client, specialist):
    page = sign_in(client, specialist).get(reverse("home"))
    assert re.search(r'<a href="/specialists/licences/"[^>]*>Licences</a>', page.content.decode())


@pytest.mark.parametrize("who", ["outsider", "specialist", "patient_user"])
def test_everyone_but_administrators_gets_404_from_the_console(client, request, who, admin_user):
    user = request.getfixturevalue(who)
    target = SpecialistFactory(email="target@example.com", profile__approved_at=None)
    licence = add_licence(target)
    sign_in(client, user)
    assert client.get(reverse("console:list")).status_code == 404
    assert client.get(reverse("console:specialist", args=[target.pk])).status_code == 404
    assert client.post(reverse("console:specialist_action", args=[target.pk, "approve"])).status_code == 404
    assert client.post(reverse("console:review_licence", args=[licence.pk, "verify"])).status_code == 404
    assert (
        client.post(reverse("console:invite"), {"email": "x@example.com", "specialties": ["chest"]}).status_code == 404
    )
    target.specialist_profile.refresh_from_db()
    licence.refresh_from_db()
    assert target.specialist_profile.approved_at is None and licence.status == "pending"
    assert not SpecialistInvitation.objects.exists()


def test_outsider_gets_404_for_a_licence_document(client, specialist, outsider):
    licence = add_licence(specialist)
    url = reverse("console:licence_document", args=[licence.pk])
    other = SpecialistFactory(email="other@example.com")
    for user in (outsider, other):
        assert sign_in(client, user).get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # to sign-in


def test_the_specialist_and_administrators_download_the_document(client, specialist, admin_user):
    licence = add_licence(specialist)
    url = reverse("console:licence_document", args=[licence.pk])
    for user in (specialist, admin_user):
        response = sign_in(client, user).get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PDF
        assert response["Content-Type"] == "application/pdf" and response["X-Content-Type-Options"] == "nosniff"


def test_licences_page_is_404_for_those_who_hold_none(client, physician, patient_user):
    for user in (physician, patient_user):
        assert sign_in(client, user).get(reverse("console:licences")).status_code == 404


# -- inviting and signing up ---------------------------------------------------------------------


def test_invited_address_signs_up_as_a_specialist_of_the_chosen_specialties(
    client, admin_user, django_capture_on_commit_callbacks
):
    group = Organization.objects.create(name="Night readers", kind="reading_group")
    sign_in(client, admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        page = invite(client, practice=group.pk)
    assert "Invitation sent to new.specialist@example.com" in page.content.decode()
    (email,) = mail.outbox
    link = re.search(r"https?://[^/\s]+(/specialists/join/\S+/)", email.body).group(1)
    assert "Chest, Cardiac" in email.body

    client.logout()
    signup = client.get(link, follow=True)
    assert signup.redirect_chain[-1][0] == reverse("account_signup")
    form = signup.context["form"]
    assert "role" not in form.fields and "institution" not in form.fields
    assert form["email"].initial == "new.specialist@example.com"
    client.post(
        reverse("account_signup"),
        {
            "name": "Dr New",
            "email": "new.specialist@example.com",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
        },
    )

    user = User.objects.get(email="new.specialist@example.com")
    assert user.role == "specialist" and user.name == "Dr New"
    assert user.specialist_profile.specialties == ["chest", "cardiac"]
    assert not user.specialist_profile.is_approved  # an administrator approves once licences are verified
    assert not hasattr(user, "physician_profile") or user.physician_profile is None
    assert list(user.memberships.values_list("practice__name", flat=True)) == ["Night readers"]
    assert EmailAddress.objects.get(user=user).verified  # the invitation's link proved the inbox
    invitation = SpecialistInvitation.objects.get()
    assert invitation.status == "accepted" and invitation.accepted_by == user
    assert list(SpecialistEvent.objects.values_list("action", "actor")) == [
        ("joined", user.pk),
        ("invited", admin_user.pk),
    ]


def test_signing_up_from_the_link_keeps_the_invited_address_whatever_was_typed(client, admin_user):
    sign_in(client, admin_user)
    invite(client)
    token = "known-token"
    SpecialistInvitation.objects.update(token_hash=specialist_invitations._token_hash(token))
    client.logout()
    client.get(reverse("console:join", args=[token]))
    client.post(
        reverse("account_signup"),
        {
            "name": "Someone Else",
            "email": "someone.else@example.com",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
        },
    )
    user = User.objects.get(name="Someone Else")
    assert user.email == "new.specialist@example.com" and user.role == "specialist"
    addresses = dict(EmailAddress.objects.filter(user=user).values_list("email", "verified"))
    assert addresses == {"new.specialist@example.com": True, "someone.else@example.com": False}
    assert SpecialistInvitation.objects.get().status == "accepted"


def test_sign_up_without_the_link_makes_no_specialist(client, admin_user):
    invite(sign_in(client, admin_user))
    client.logout()
    client.post(
        reverse("account_signup"),
        {
            "name": "Walk In",
            "email": "new.specialist@example.com",
            "role": "patient",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
        },
    )
    user = User.objects.get(email="new.specialist@example.com")
    assert user.role == "patient" and not hasattr(user, "specialist_profile")
    assert SpecialistInvitation.objects.get().status == "pending"


def test_ordinary_sign_up_still_asks_for_a_role(client):
    form = client.get(reverse("account_signup")).context["form"]
    assert "role" in form.fields


def test_an_address_with_an_account_is_not_invited(client, admin_user, physician):
    page = invite(sign_in(client, admin_user), email=physician.email)
    assert "already has an account" in page.content.decode()
    assert not SpecialistInvitation.objects.exists()


def test_an_invitation_without_a_specialty_is_refused(client, admin_user):
    page = sign_in(client, admin_user).post(reverse("console:invite"), {"email": "a@example.com"}, follow=True)
    assert "Specialties: This field is required." in page.content.decode()
    assert not SpecialistInvitation.objects.exists()


def test_a_revoked_invitation_leads_nowhere(client, admin_user):
    sign_in(client, admin_user)
    invite(client)
    invitation = SpecialistInvitation.objects.get()
    client.post(reverse("console:revoke_invitation", args=[invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    SpecialistInvitation.objects.update(token_hash=specialist_invitations._token_hash("t"))
    client.logout()
    page = client.get(reverse("console:join", args=["t"]))
    assert page.status_code == 200 and "This invitation is revoked" in page.content.decode()
    assert client.get(reverse("console:join", args=["unknown"])).status_code == 404


# -- licences ------------------------------------------------------------------------------------


def test_specialist_enters_a_licence_with_its_scan(client, specialist):
    sign_in(client, specialist)
    expiry = (licences.today() + dt.timedelta(days=400)).isoformat()
    scan = SimpleUploadedFile("my licence.pdf", PDF, content_type="application/pdf")
    page = client.post(
        reverse("console:licences"),
        {"jurisdiction": "California", "number": "A-77", "expires_on": expiry, "document": scan},
        follow=True,
    )
    assert "Licence A-77 saved" in page.content.decode()
    licence = Licence.objects.get()
    assert (licence.jurisdiction, licence.status, licence.document_name) == ("US-CA", "pending", "my licence.pdf")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"expires_on": "2001-02-03"}, "is in the past"),
        ({"jurisdiction": "Middle Earth"}, "not a country or region we know"),
        ({"document": SimpleUploadedFile("a.pdf", b"GIF89a...", content_type="application/pdf")}, "PDF, PNG or JPEG"),
    ],
)
def test_bad_licence_input_is_shown_beside_its_field(client, specialist, change, says):
    data = {
        "jurisdiction": "DE",
        "number": "1",
        "expires_on": (licences.today() + dt.timedelta(days=9)).isoformat(),
        "document": SimpleUploadedFile("a.pdf", PDF),
        **change,
    }
    page = sign_in(client, specialist).post(reverse("console:licences"), data)
    assert page.status_code == 200
    field = next(iter(change))
    assert says in " ".join(page.context["form"].errors[field])
    assert not Licence.objects.exists()


def test_administrator_verifies_rejects_approves_suspends_and_reinstates(client, admin_user):
    newcomer = SpecialistFactory(email="newcomer@example.com", name="Dr Newcomer", profile__approved_at=None)
    first, second = add_licence(newcomer), add_licence(newcomer, jurisdiction="FR")
    sign_in(client, admin_user)
    page = client.get(reverse("console:specialist", args=[newcomer.pk])).content.decode()
    assert first.number in page and "Awaiting verification" in page

    client.post(reverse("console:review_licence", args=[first.pk, "verify"]))
    refused = client.post(reverse("console:review_licence", args=[second.pk, "reject"]), {"reason": ""}, follow=True)
    assert "Say why the licence is rejected" in refused.content.decode()
    client.post(reverse("console:review_licence", args=[second.pk, "reject"]), {"reason": "Scan unreadable"})
    client.post(reverse("console:specialist_action", args=[newcomer.pk, "approve"]))
    client.post(reverse("console:specialist_action", args=[newcomer.pk, "suspend"]), {"reason": "Board inquiry"})
    client.post(reverse("console:specialist_action", args=[newcomer.pk, "reinstate"]))

    first.refresh_from_db()
    second.refresh_from_db()
    newcomer.specialist_profile.refresh_from_db()
    assert (first.status, first.reviewed_by) == ("verified", admin_user)
    assert (second.status, second.rejection_reason) == ("rejected", "Scan unreadable")
    assert newcomer.specialist_profile.is_approved and not newcomer.specialist_profile.is_suspended
    recorded = list(
        SpecialistEvent.objects.filter(specialist=newcomer, actor=admin_user)
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert recorded == ["licence_verified", "licence_rejected", "approved", "suspended", "reinstated"]
    history = client.get(reverse("console:specialist", args=[newcomer.pk])).content.decode()
    assert "Suspended by Ada Admin" in history and "Board inquiry" in history


def test_suspending_without_a_reason_is_refused(client, admin_user, specialist):
    page = sign_in(client, admin_user).post(
        reverse("console:specialist_action", args=[specialist.pk, "suspend"]), {"reason": " "}, follow=True
    )
    assert "Say why the specialist is suspended" in page.content.decode()
    specialist.specialist_profile.refresh_from_db()
    assert not specialist.specialist_profile.is_suspended


def test_the_list_filters(client, admin_user):
    SpecialistFactory(email="pending@example.com", profile__approved_at=None)
    add_licence(SpecialistFactory(email="unverified@example.com"))
    add_licence(SpecialistFactory(email="expiring@example.com"), expires_in=20, status=Licence.Status.VERIFIED)
    add_licence(SpecialistFactory(email="later@example.com"), expires_in=90, status=Licence.Status.VERIFIED)
    suspended = SpecialistFactory(email="suspended@example.com")
    suspended.specialist_profile.suspended_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    suspended.specialist_profile.save()
    sign_in(client, admin_user)

    def listed(name):
        page = client.get(reverse("console:list"), {"filter": name})
        return {row.email for row in page.context["rows"]}

    assert listed("pending") == {"pending@example.com"}
    assert listed("unverified") == {"unverified@example.com"}
    assert listed("expiring") == {"expiring@example.com"}
    assert listed("suspended") == {"suspended@example.com"}
    assert len(listed("")) == 5
    unknown = client.get(reverse("console:list"), {"filter": "everyone"}, follow=True)
    assert "Unknown filter" in unknown.content.decode()
