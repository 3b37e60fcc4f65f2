"""Signing in with the hospital's identity provider (allauth's ``openid_connect`` apps, configured
from the environment by accounts/oidc.py).

- An account is found by the address the provider verified (``email_verified``) when the address's
  domain is one the provider may speak for (allauth's email authentication, limited here by
  domain), or by the provider's ``sub`` once it signed in before. Claims that break the rules
  refuse the sign-in with a message saying why.
- Someone new gets an account of the provider's role (physician or specialist) and joins the
  provider's practice. A physician can work at once, since the practice is the one the operator
  configured for that provider; a specialist waits, as every new specialist does, for an
  administrator's approval (and, under the licence rule, verified licences) before consults are
  offered to them.
- The portal's second-factor rule: when the provider's ID token says a second factor was used
  (``amr``, RFC 8176), that counts for this session and the portal asks for no code of its own;
  otherwise the portal asks for its own factor as for a password sign-in
  (:class:`ProviderMFAAuthenticateStage`, accounts.mfa).
"""

from __future__ import annotations

import logging
import unicodedata

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.stages import AuthenticateStage
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect

from . import oidc
from .mfa import remember_provider_mfa
from .models import NAME_REFUSED_CATEGORIES, Membership, Organization, PhysicianProfile, Role, SpecialistProfile
from .specialists import Action, record

log = logging.getLogger(__name__)


def claims_of(sociallogin) -> dict:
    """The provider's claims: the ID token's, with the userinfo endpoint's answer over them."""
    data = sociallogin.account.extra_data or {}
    claims = dict(data.get("id_token") or {})
    claims.update(data.get("userinfo") or {})
    return claims


def provider_of(sociallogin) -> oidc.Provider | None:
    return oidc.provider_named(sociallogin.account.provider)


def provider_did_mfa(sociallogin) -> bool:
    """Did the provider say this sign-in used a second factor? Only the ID token's ``amr`` counts:
    it is the signed statement about this authentication."""
    if sociallogin is None or provider_of(sociallogin) is None:
        return False
    id_token = (sociallogin.account.extra_data or {}).get("id_token") or {}
    return oidc.amr_shows_mfa(id_token.get("amr"))


def one_line_name(value: object) -> str:
    """A display name from the provider, as one line of at most 150 characters."""
    if not isinstance(value, str):
        return ""
    cleaned = "".join(" " if unicodedata.category(ch) in NAME_REFUSED_CATEGORIES else ch for ch in value)
    return " ".join(cleaned.split())[:150]


def refuse(request, message: str):
    messages.error(request, message)
    raise ImmediateHttpResponse(redirect("account_login"))


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        """A configured provider signs new clinicians up even though nobody typed a sign-up form."""
        return provider_of(sociallogin) is not None

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        """The person sees allauth's "could not sign you in" page; the operator gets the reason."""
        log.warning(
            "Sign-in with identity provider %s failed: %s %s",
            getattr(getattr(provider, "app", None), "provider_id", provider),
            error,
            repr(exception) if exception else "",
        )
        return super().on_authentication_error(request, provider, error, exception, extra_context)

    def pre_social_login(self, request, sociallogin) -> None:
        """Every sign-in from a provider must vouch for an address of its own domains."""
        provider = provider_of(sociallogin)
        if provider is None:
            refuse(request, "This identity provider is not configured here.")
        try:
            oidc.verified_email(provider, claims_of(sociallogin))
        except oidc.ClaimsRefusedError as exc:
            refuse(request, str(exc))

    def can_authenticate_by_email(self, sociallogin, email: str) -> bool:
        """Only an address the provider may speak for finds an existing account."""
        provider = provider_of(sociallogin)
        return provider is not None and provider.allows_email(email)

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        provider = provider_of(sociallogin)
        claims = claims_of(sociallogin)
        user.email = (user.email or "").strip().lower()
        user.name = one_line_name(claims.get("name")) or one_line_name(
            " ".join(str(claims.get(part) or "") for part in ("given_name", "family_name"))
        )
        user.role = provider.role if provider else Role.PHYSICIAN
        return user

    @transaction.atomic
    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        provider = provider_of(sociallogin)
        if provider is not None:
            join_provider_practice(user, provider)
        return user


def join_provider_practice(user, provider: oidc.Provider) -> Membership:
    """A new clinician from ``provider`` joins its practice (found by name, made if missing)."""
    practice = Organization.objects.filter(name__iexact=provider.practice).order_by("pk").first()
    if practice is None:
        practice = Organization.objects.create(name=provider.practice, kind=Organization.Kind.HOSPITAL)
    membership = practice.add_member(user)
    if user.role == Role.SPECIALIST:
        SpecialistProfile.objects.get_or_create(user=user)  # not approved: an administrator approves
        record(user, Action.JOINED, by=user, detail=f"Signed in with {provider.label}")
    else:
        PhysicianProfile.objects.get_or_create(user=user, defaults={"institution": practice.name})
    user.forget_practices()
    return membership


class ProviderMFAAuthenticateStage(AuthenticateStage):
    """allauth's second-factor step of signing in, skipped when the identity provider did one.

    Every sign-in passes here (password, passkey, provider), so it also records in the session
    whether the provider's second factor covers it (accounts.mfa): a later sign-in in the same
    browser that did not use one clears it.
    """

    def handle(self) -> tuple:
        sociallogin = (self.login.signal_kwargs or {}).get("sociallogin")
        did_mfa = provider_did_mfa(sociallogin)
        remember_provider_mfa(self.request.session, self.login.user, did_mfa)
        if did_mfa:
            return None, True
        return super().handle()


def login_stages(stages: list[str]) -> list[str]:
    """allauth's login stages with its second-factor step replaced by the provider-aware one."""
    path = f"{AuthenticateStage.__module__}.{AuthenticateStage.__qualname__}"
    mine = f"{ProviderMFAAuthenticateStage.__module__}.{ProviderMFAAuthenticateStage.__qualname__}"
    return [mine if stage == path else stage for stage in stages]
