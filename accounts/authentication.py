"""API token authentication: ``Authorization: Token <key>``."""

from rest_framework.authentication import TokenAuthentication


class BearerlessTokenAuthentication(TokenAuthentication):
    """DRF's token scheme; named here so every entry point (API, DICOMweb, WebSocket) shares it."""

    keyword = "Token"
