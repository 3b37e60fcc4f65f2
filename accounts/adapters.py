import datetime as dt
import time

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.authentication import get_authentication_records
from allauth.core import context as allauth_context
from allauth.mfa.models import Authenticator
from django.contrib.sites.shortcuts import get_current_site

from teleconsult.client_address import client_address
from teleconsult.links import rebase
from teleconsult.mail import queue_email


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return True

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        """Setting up second factors right after signing in does not ask for the password again.

        People sent to set up MFA at sign-in would otherwise type their password twice in a row, and
        again to see the recovery codes just made. This holds only within the reauthentication timeout
        of the last sign-in step and while every factor of the account was added in this session:
        changing or removing a factor that existed before still needs a fresh reauthentication.
        """
        request = allauth_context.request
        user = getattr(request, "user", None)
        if app == "allauth.mfa" and user is not None and user.is_authenticated:
            records = get_authentication_records(request, user)
            if records and time.time() - records[-1]["at"] < account_settings.REAUTHENTICATION_TIMEOUT:
                signed_in_at = dt.datetime.fromtimestamp(records[0]["at"], tz=dt.UTC)
                if not Authenticator.objects.filter(user=user, created_at__lt=signed_in_at).exists():
                    return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def get_login_stages(self) -> list[str]:
        """allauth's sign-in steps, with the second-factor step that honours an identity provider's
        own second factor (accounts/social_adapter.py)."""
        from .social_adapter import login_stages

        return login_stages(super().get_login_stages())

    def get_client_ip(self, request) -> str:
        """The address allauth's rate limits count by (sign-in, sign-up, the token endpoint's failures):
        the portal's one answer (teleconsult.client_address), never an X-Forwarded-For entry a client
        wrote. An address it cannot know (a UNIX socket and no proxy hop count) counts as one rather
        than refusing the request."""
        return client_address(request) or "unknown"

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render in the request, deliver through Celery so a slow mail server never delays a page
        (retried while it fails, logged if it never gets through: teleconsult.mail)."""
        request = allauth_context.request
        # allauth builds its links on the request's address; emails link to the portal's (teleconsult.links).
        context = {name: rebase(value, request) for name, value in context.items()}
        message = self.render_mail(
            template_prefix,
            email,
            {"request": request, "email": email, "current_site": get_current_site(request), **context},
        )
        html = next(
            (content for content, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), None
        )
        queue_email(
            subject=message.subject,
            body=message.body,
            to=list(message.to),
            from_email=message.from_email,
            html=html,
            headers=dict(message.extra_headers) or None,
        )
