"""API token authentication: ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``.

Two kinds of bearer token, told apart by shape: the portal's own API keys (letters and digits) are
checked here first; a JWT (it has dots) is an identity provider's access token and goes next to
``accounts.oidc_tokens`` (docs/identity-providers.md).
"""

from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from . import oidc_tokens
from .mfa import must_set_up_mfa

MFA_SETUP_MESSAGE = "Set up two-factor authentication on the Security page before using the API."
# Both name a portal API token: ``Token`` is DRF's own word, ``Bearer`` (RFC 6750) the one standard
# clients send (dicomweb-client's --bearer-token, OHIF's and Orthanc's DICOMweb settings).
SCHEMES = (b"token", b"bearer")
MAX_KEY_LENGTH = 64


class EitherSchemeTokenAuthentication(TokenAuthentication):
    """DRF's token scheme under either name, ``Token`` or ``Bearer``. A 401 challenges with
    ``Bearer``, the scheme clients outside the portal know. A key that cannot be a token (portal
    keys are letters and digits) is refused before any query: a NUL byte would otherwise reach the
    database and fail there."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() not in SCHEMES:
            return None
        if len(auth) == 1:
            raise AuthenticationFailed("Invalid token header. No credentials provided.")
        if len(auth) > 2:
            raise AuthenticationFailed("Invalid token header. Token string should not contain spaces.")
        try:
            key = auth[1].decode()
        except UnicodeError:
            raise AuthenticationFailed("Invalid token header. Token string should not contain invalid characters.")
        if oidc_tokens.looks_like_jwt(key):
            return None  # not a portal key: an identity provider's token, for the next class
        if not (key.isascii() and key.isalnum()) or len(key) > MAX_KEY_LENGTH:
            raise AuthenticationFailed("Invalid token.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BearerlessTokenAuthentication(EitherSchemeTokenAuthentication):
    """The portal's API token on every entry point (API, DICOMweb, FHIR, WebSocket). (The class
    keeps the name the settings and other modules import it by, from before ``Bearer`` was taken
    too.) A token of a user who must first set up a second factor (the policy may have been
    switched on after the token was issued) is refused.

    After the portal's own keys, and only for a JWT-shaped token, it asks the identity providers'
    class (``oidc_tokens.ProviderTokenAuthentication``), so every entry point that authenticates
    with this class (the REST API and FHIR through the settings, DICOMweb and WebSockets directly)
    accepts both.
    """

    def authenticate(self, request):
        authenticated = super().authenticate(request)
        if authenticated is None:
            authenticated = oidc_tokens.ProviderTokenAuthentication().authenticate(request)
        return authenticated

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if must_set_up_mfa(user):
            raise AuthenticationFailed(MFA_SETUP_MESSAGE)
        return user, token
