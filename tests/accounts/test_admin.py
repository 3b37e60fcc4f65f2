"""Django admin for users and profiles, and the "approve specialist" action."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.urls import reverse

from accounts.models import SpecialistProfile
from tests.factories import SpecialistFactory, UserFactory


def approve(client, users):
    return client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "approve_specialists", "_selected_action": [u.pk for u in users]},
        follow=True,
    )


def test_admin_approves_selected_specialists(client, admin_user, physician):
    waiting = SpecialistFactory(email="waiting@example.com", profile__approved_at=None)
    assert not waiting.may_take_consults
    client.force_login(admin_user)
    response = approve(client, [waiting, physician])
    assert response.status_code == 200
    assert "Approved 1 specialist(s)." in response.content.decode()
    profile = SpecialistProfile.objects.get(user=waiting)
    assert profile.is_approved
    assert profile.approved_by == admin_user
    waiting.refresh_from_db()
    assert waiting.may_take_consults
    assert not SpecialistProfile.objects.filter(user=physician).exists()


def test_approving_twice_keeps_the_first_approval(client, admin_user, specialist):
    first = specialist.specialist_profile.approved_at
    client.force_login(admin_user)
    response = approve(client, [specialist])
    assert "Approved 0 specialist(s)." in response.content.decode()
    specialist.specialist_profile.refresh_from_db()
    assert specialist.specialist_profile.approved_at == first


def test_specialist_without_profile_gets_one_when_approved(client, admin_user):
    bare = UserFactory(role="specialist", email="bare@example.com")
    client.force_login(admin_user)
    approve(client, [bare])
    assert SpecialistProfile.objects.get(user=bare).is_approved


def test_non_staff_cannot_use_the_admin(client, physician):
    waiting = SpecialistFactory(email="waiting@example.com", profile__approved_at=None)
    client.force_login(physician)
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "approve_specialists", "_selected_action": [waiting.pk]},
    )
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not SpecialistProfile.objects.get(user=waiting).is_approved


def test_admin_user_pages_render(client, admin_user, specialist):
    client.force_login(admin_user)
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_user_change", args=[specialist.pk])).status_code == 200
    assert client.get(reverse("admin:accounts_user_add")).status_code == 200
    assert client.get(reverse("admin:accounts_specialistprofile_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_physicianprofile_changelist")).status_code == 200


def test_admin_adds_a_user_with_email_login(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "added@example.com",
            "name": "Added",
            "role": "specialist",
            "password1": "a-long-fine-password",
            "password2": "a-long-fine-password",
            "usable_password": "true",
            **{
                f"{inline}-{key}": value
                for inline in ("physician_profile", "specialist_profile")
                for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    from accounts.models import User

    user = User.objects.get(email="added@example.com")
    assert user.check_password("a-long-fine-password")
    # Made by an administrator, the account can sign in without an email round trip.
    assert EmailAddress.objects.get(user=user, email="added@example.com").verified


def test_administrators_see_practices_and_their_members_in_the_admin(client, admin_user, physician):
    client.force_login(admin_user)
    practice = physician.default_practice
    listing = client.get("/admin/accounts/organization/")
    assert listing.status_code == 200 and practice.name in listing.content.decode()
    page = client.get(f"/admin/accounts/organization/{practice.pk}/change/")
    assert page.status_code == 200 and physician.email in page.content.decode()
    assert client.get("/admin/accounts/practiceinvitation/add/").status_code == 403
