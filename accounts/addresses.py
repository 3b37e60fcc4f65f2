"""Whose an email address is: the account with it as its address, else the account that confirmed
it as another of its addresses (allauth keeps those); and the addresses an account has confirmed."""

from __future__ import annotations

from allauth.account.models import EmailAddress

from .models import User


def account_for_address(email: str) -> User | None:
    account = User.objects.filter(email__iexact=email).first()
    if account is None:
        confirmed = EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user").first()
        account = confirmed.user if confirmed is not None else None
    return account


def confirmed_addresses(user) -> list[str]:
    """``user``'s confirmed addresses, lower-cased (invitations store addresses lower-cased)."""
    return [
        email.lower() for email in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    ]
