"""API token authentication: ``Authorization: Token <key>``."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .mfa import must_set_up_mfa

MFA_SETUP_MESSAGE = "Set up two-factor authentication on the Security page before using the API."


class BearerlessTokenAuthentication(TokenAuthentication):
    """DRF's token scheme; named here so every entry point (API, DICOMweb, WebSocket) shares it.

    A token of a user who must first set up a second factor (the policy may have been switched on
    after the token was issued) is refused.
    """

    keyword = "Token"

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if must_set_up_mfa(user):
            raise AuthenticationFailed(MFA_SETUP_MESSAGE)
        return user, token
