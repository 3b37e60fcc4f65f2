"""Sharing a study with a clinician named by email, from the study's "Access and sharing" page.

Whoever may make share links for the study (``links.may_share``: a clinician who sees it, or its
patient) names an address:

- a clinician's account (physician or specialist, active) that confirmed that address gets an
  access grant at once: ``grant_access`` with reason PATIENT_GRANT when the patient shares, SHARED
  when a clinician does, its source ``named-share:<pk>`` naming the ``NamedShare`` row; they are
  told by email where the study is;
- any other address gets an invitation by email (the pattern of ``studies.invitations``: lapsing
  ``TELECONSULT_INVITATION_DAYS`` after it was sent, sent after the change commits). It becomes the
  grant when a clinician's account confirms that address (``claim_for``: on allauth's
  ``email_confirmed``, and on every sign-in, so an address confirmed another way still counts).
  A patient's account never claims one.

The sharer sees their shares on the page with who and when; revoking a granted share ends its
grant (the clinician gets 404 from then on), withdrawing an open invitation means it can no longer
be claimed. Refusals name the problem: not an email address, your own address, a study already
shared with that address (or a clinician who already sees it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.addresses import confirmed_addresses
from accounts.outbox import send_after_commit
from accounts.timeformat import format_instant
from teleconsult.links import absolute_url

from ..models import AccessGrant, NamedShare, Study
from .links import ShareError, may_share

SOURCE_PREFIX = "named-share:"
MAX_EMAIL = 254


class NamedShareError(ShareError):
    """A named share that cannot be made or ended as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "email", **data) -> None:
        data.setdefault(field, [message])
        super().__init__(message, **data)
        self.field = field


class AlreadySharedError(NamedShareError):
    status = 409
    code = "already_shared"


@dataclass(frozen=True)
class NamedShareOutcome:
    share: NamedShare
    granted: bool
    message: str


def is_patient_of(user, study: Study) -> bool:
    return bool(user.is_patient and study.patient.account_id == user.pk)


def reason_for(by, study: Study) -> str:
    return AccessGrant.Reason.PATIENT_GRANT if is_patient_of(by, study) else AccessGrant.Reason.SHARED


def is_clinician(user) -> bool:
    return bool(user is not None and user.is_active and (user.is_physician or user.is_specialist))


def clinician_for(email: str):
    """The active clinician's account that confirmed ``email``, else None (no account, not a
    clinician, or the address not confirmed yet)."""
    from allauth.account.models import EmailAddress

    confirmed = EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user").first()
    account = confirmed.user if confirmed is not None else None
    return account if is_clinician(account) else None


def clean_email(value) -> str:
    email = (value or "").strip().lower() if isinstance(value, str) else ""
    if not email:
        raise NamedShareError("Enter the email address of the doctor or specialist.")
    try:
        validate_email(email)
    except ValidationError:
        raise NamedShareError(f"“{email[:80]}” is not an email address.") from None
    if len(email) > MAX_EMAIL:
        raise NamedShareError(f"An email address has at most {MAX_EMAIL} characters.")
    return email


def open_shares(study: Study):
    """Shares of ``study`` that still stand: granted and not revoked, or invitations not expired."""
    granted = Q(accepted_at__isnull=False, grant__revoked_at__isnull=True)
    invited = Q(accepted_at__isnull=True, created_at__gt=timezone.now() - NamedShare.lifetime())
    return NamedShare.objects.filter(study=study, withdrawn_at__isnull=True).filter(granted | invited)


def share_with(study: Study, *, email, by, request=None) -> NamedShareOutcome:
    """Share ``study`` with the clinician at ``email``. The caller has checked that ``by`` may see it."""
    if not may_share(by, study):
        raise NamedShareError(
            "Only a clinician who sees the study or its patient may share it.", code="not_allowed", status=403
        )
    email = clean_email(email)
    if email == (by.email or "").lower() or email in confirmed_addresses(by):
        raise NamedShareError("That is your own address: you can already see these images.")
    with transaction.atomic():
        # One share per address and study, even when the form is sent twice at once.
        Study.objects.select_for_update().filter(pk=study.pk).first()
        standing = open_shares(study).filter(email=email).first()
        if standing is not None:
            raise AlreadySharedError(
                f"This study is already shared with {email} (since {format_instant(standing.created_at)})."
            )
        clinician = clinician_for(email)
        if clinician is not None and Study.objects.visible_to(clinician).filter(pk=study.pk).exists():
            raise AlreadySharedError(f"{clinician.display_name} ({email}) can already see this study.")
        share = NamedShare.objects.create(study=study, email=email, shared_by=by)
        if clinician is not None:
            _grant(share, clinician)
    if clinician is not None:
        _tell_clinician(share, clinician, request=request)
        message = f"{clinician.display_name} ({email}) can now see this study; we let them know by email."
    else:
        _send_invitation(share, request=request)
        message = (
            f"We sent an invitation to {email}. They see this study once they sign up as a clinician with "
            f"that address and confirm it (until {format_instant(share.expires_at)})."
        )
    return NamedShareOutcome(share=share, granted=clinician is not None, message=message)


def _grant(share: NamedShare, clinician) -> None:
    from ..permissions import grant_access  # permissions reads links (share links) at import

    share.grant = grant_access(
        user=clinician,
        study=share.study,
        reason=reason_for(share.shared_by, share.study),
        granted_by=share.shared_by,
        source=f"{SOURCE_PREFIX}{share.pk}",
    )
    share.accepted_at = timezone.now()
    share.save(update_fields=["grant", "accepted_at"])


def _study_words(study: Study) -> str:
    what = study.description or "a study"
    return f"{what} of {study.study_date:%d %b %Y}" if study.study_date else what


def _tell_clinician(share: NamedShare, clinician, *, request) -> None:
    from ..navigation import study_page_url

    url = absolute_url(study_page_url(clinician, share.study), request)
    body = (
        f"Hello {clinician.display_name},\n\n{share.shared_by.display_name} shared images with you on "
        f"teleconsult: {_study_words(share.study)}.\n\nOpen them here (sign in first):\n{url}\n\n"
        "They can withdraw this at any time.\n"
    )
    send_after_commit("Images shared with you on teleconsult", body, [share.email])


def _send_invitation(share: NamedShare, *, request) -> None:
    signup = f"{absolute_url(reverse('account_signup'), request)}?{urlencode({'email': share.email})}"
    body = (
        f"Hello,\n\n{share.shared_by.display_name} wants to share medical images with you on teleconsult "
        f"({_study_words(share.study)}).\n\nIf you are a doctor, create your account with this email address "
        f"({share.email}) and confirm it:\n{signup}\n\nOnce the address is confirmed, the images are in your "
        f"account. This invitation is valid until {format_instant(share.expires_at)}. Only clinicians' "
        "accounts receive shared images; if you did not expect this message, ignore it.\n"
    )
    send_after_commit("Medical images shared with you on teleconsult", body, [share.email])


def claim_for(user) -> int:
    """Turn the open invitations to ``user``'s confirmed addresses into grants (clinicians only).
    Returns how many."""
    if not is_clinician(user):
        return 0
    claimed = 0
    for pk in list(NamedShare.pending_for(user).values_list("pk", flat=True)):
        with transaction.atomic():
            share = (
                NamedShare.pending()
                .select_for_update(of=("self",))
                .filter(pk=pk)
                .select_related("study", "shared_by")
                .first()
            )
            if share is None:
                continue  # claimed, withdrawn or lapsed meanwhile
            _grant(share, user)
            claimed += 1
    return claimed


def status_of(share: NamedShare) -> str:
    """active (the grant stands), revoked, invited (the invitation may be claimed), withdrawn,
    expired."""
    if share.accepted_at is not None:
        ended = share.withdrawn_at is not None or share.grant is None or share.grant.revoked_at is not None
        return "revoked" if ended else "active"
    if share.withdrawn_at is not None:
        return "withdrawn"
    return "expired" if share.expires_at <= timezone.now() else "invited"


def shares_shown(user, study: Study):
    """The named shares of ``study`` on its access page: all of them for its patient and
    administrators, one's own for a clinician."""
    shares = NamedShare.objects.filter(study=study).select_related("shared_by", "grant__user")
    if user.is_admin or is_patient_of(user, study):
        return shares
    return shares.filter(shared_by=user)


def get_share_for_user(user, study: Study, pk) -> NamedShare:
    """A share of ``study`` that ``user`` made (administrators: any); Http404 otherwise."""
    shares = NamedShare.objects.filter(study=study).select_related("grant__user")
    if not user.is_admin:
        shares = shares.filter(shared_by=user)
    try:
        return shares.get(pk=int(pk))
    except (NamedShare.DoesNotExist, TypeError, ValueError):
        raise Http404("No such share.") from None


def revoke(share: NamedShare, *, by) -> None:
    """End a granted share: its grant is revoked at once."""
    with transaction.atomic():
        locked = NamedShare.objects.select_for_update(of=("self",)).select_related("grant").get(pk=share.pk)
        if locked.accepted_at is None:
            raise NamedShareError("This invitation was not accepted: withdraw it instead.", field="detail")
        if locked.grant is not None:
            locked.grant.revoke(by=by)
        if locked.withdrawn_at is None:
            locked.withdrawn_at, locked.withdrawn_by = timezone.now(), by
            locked.save(update_fields=["withdrawn_at", "withdrawn_by"])


def withdraw(share: NamedShare, *, by) -> None:
    """End an open invitation: it can no longer be claimed."""
    with transaction.atomic():
        locked = NamedShare.objects.select_for_update().get(pk=share.pk)
        if locked.accepted_at is not None:
            raise NamedShareError("This share was accepted: revoke it instead.", field="detail")
        if locked.withdrawn_at is None:
            locked.withdrawn_at, locked.withdrawn_by = timezone.now(), by
            locked.save(update_fields=["withdrawn_at", "withdrawn_by"])


def _on_email_confirmed(sender, request=None, email_address=None, **kwargs) -> None:
    if email_address is not None:
        claim_for(email_address.user)


def _on_signed_in(sender, request=None, user=None, **kwargs) -> None:
    claim_for(user)


def connect_signals() -> None:
    """Called once at start-up (``studies.apps``): confirming an address or signing in claims the
    invitations sent to the account's confirmed addresses."""
    from allauth.account.signals import email_confirmed
    from django.contrib.auth.signals import user_logged_in

    email_confirmed.connect(_on_email_confirmed, dispatch_uid="named-share-claim-on-confirm")
    user_logged_in.connect(_on_signed_in, dispatch_uid="named-share-claim-on-sign-in")
