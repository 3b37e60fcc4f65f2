"""Ready-to-use accounts made by operators (``createuser``) and the demo seed (``seed_demo``)."""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from teleconsult.errors import PortalError

from .models import (
    Membership,
    Organization,
    PhysicianProfile,
    Role,
    SpecialistProfile,
    Specialty,
    User,
    validate_jurisdiction,
    validate_person_name,
)


class ProvisioningError(PortalError):
    """Bad input for an account; the message says what to fix."""


@dataclass
class Provisioned:
    user: User
    created: bool


def normalize_specialties(values: list[str]) -> list[str]:
    """``general radiology``, ``General-Radiology`` and ``general_radiology`` all name one specialty."""
    valid = set(Specialty.values)
    result, unknown = [], []
    for value in values:
        code = value.strip().lower().replace("-", "_").replace(" ", "_")
        if code not in valid:
            unknown.append(value)
        elif code not in result:
            result.append(code)
    if unknown:
        raise ProvisioningError(
            f"Unknown specialty {', '.join(repr(u) for u in unknown)}. Choose from: {', '.join(Specialty.values)}."
        )
    return result


def normalize_jurisdictions(values: list[str]) -> list[str]:
    result = []
    for value in values:
        code = value.strip().upper()
        try:
            validate_jurisdiction(code)
        except ValidationError:
            raise ProvisioningError(
                f"{value!r} is not a jurisdiction: give an ISO 3166 code such as 'DE' or 'US-CA'."
            ) from None
        if code not in result:
            result.append(code)
    return result


@transaction.atomic
def provision_user(
    email: str,
    *,
    role: str,
    password: str | None = None,
    name: str | None = None,
    specialties: list[str] | None = None,
    jurisdictions: list[str] | None = None,
    institution: str | None = None,
    on_call: list[dict] | None = None,
    check_password: bool = True,
    practice: str | None = None,
    practice_admin: bool = False,
) -> Provisioned:
    """Create or update an active account with a verified primary email, ready to sign in.

    Specialists are approved; admins are staff and superusers. On an existing account, only what is
    given changes (role always; password, name and profile fields when passed). A clinician joins
    ``practice`` (by name, made if missing), or without it gets a practice of their own when they
    belong to none, so the account can work at once.
    """
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ProvisioningError(f"{email!r} is not a valid email address.") from None
    if role not in Role.values:
        raise ProvisioningError(f"Unknown role {role!r}. Choose from: {', '.join(Role.values)}.")
    specialties = normalize_specialties(specialties or [])
    jurisdictions = normalize_jurisdictions(jurisdictions or [])
    if specialties and role != Role.SPECIALIST:
        raise ProvisioningError("Specialties are only for the specialist role.")
    if jurisdictions and role not in (Role.SPECIALIST, Role.PHYSICIAN):
        raise ProvisioningError("Jurisdictions are only for specialists (licences) and physicians (institution).")
    if len(jurisdictions) > 1 and role == Role.PHYSICIAN:
        raise ProvisioningError("A physician's institution is in one jurisdiction; give one --jurisdiction.")
    practice = (practice or "").strip() or None
    if (practice or practice_admin) and role == Role.PATIENT:
        raise ProvisioningError("Patients do not join practices; a physician links them to their records.")
    if practice_admin and not practice:
        raise ProvisioningError("--practice-admin needs --practice NAME.")
    if name is not None:
        try:
            validate_person_name(name)
        except ValidationError as exc:
            raise ProvisioningError(f"--name: {' '.join(exc.messages)}") from None

    user = User.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        user = User(email=email)
    if name is not None:
        user.name = name
    user.role = role
    user.is_active = True
    user.is_staff = user.is_superuser = role == Role.ADMIN
    if password is not None:
        if check_password:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise ProvisioningError("Password refused: " + " ".join(exc.messages)) from None
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()

    EmailAddress.objects.filter(user=user).exclude(email__iexact=email).update(primary=False)
    address, _ = EmailAddress.objects.get_or_create(user=user, email=email)
    if not (address.verified and address.primary):
        address.verified = address.primary = True
        address.save(update_fields=["verified", "primary"])

    if role == Role.SPECIALIST:
        profile, _ = SpecialistProfile.objects.get_or_create(user=user)
        if specialties:
            profile.specialties = specialties
        if jurisdictions:
            profile.jurisdictions = jurisdictions
        if on_call is not None:
            profile.on_call = on_call
        profile.full_clean()
        profile.save()
        profile.approve(by=None)
    elif role == Role.PHYSICIAN:
        profile, _ = PhysicianProfile.objects.get_or_create(user=user)
        if institution is not None:
            profile.institution = institution
        if jurisdictions:
            profile.jurisdiction = jurisdictions[0]
        profile.save()
    _join_practice(user, practice, admin=practice_admin)
    return Provisioned(user=user, created=created)


def _join_practice(user: User, name: str | None, *, admin: bool) -> None:
    if name:
        organization = Organization.objects.filter(name__iexact=name).order_by("pk").first()
        new = organization is None
        if new:
            kind = Organization.Kind.READING_GROUP if user.role == Role.SPECIALIST else Organization.Kind.CLINIC
            organization = Organization.objects.create(name=name[:200], kind=kind)
        # The first member of a new practice runs it; an existing member keeps their role unless
        # --practice-admin says otherwise.
        organization.add_member(user, role=Membership.Role.ADMIN if admin or new else None)
    elif user.role in (Role.PHYSICIAN, Role.SPECIALIST) and not user.memberships.exists():
        kind = Organization.Kind.READING_GROUP if user.role == Role.SPECIALIST else Organization.Kind.CLINIC
        own = Organization.objects.create(name=f"Practice of {user.name or user.email}"[:200], kind=kind)
        own.add_member(user, role=Membership.Role.ADMIN)
    user.forget_practices()
