from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site

from .tasks import deliver_email


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return True

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render in the request, deliver through Celery so a slow mail server never delays a page."""
        request = allauth_context.request
        message = self.render_mail(
            template_prefix,
            email,
            {"request": request, "email": email, "current_site": get_current_site(request), **context},
        )
        html = next(
            (content for content, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), None
        )
        deliver_email.delay(
            subject=message.subject,
            body=message.body,
            to=list(message.to),
            from_email=message.from_email,
            html=html,
            headers=dict(message.extra_headers) or None,
        )
