"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator  # noqa: E402

from accounts.websocket import TokenOrSessionAuthMiddleware  # noqa: E402
from studies import ingest  # noqa: E402
from teleconsult.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Origin must name one of ALLOWED_HOSTS. A handshake without Origin is accepted only with an
    ``Authorization`` header: browsers always send Origin and cannot set that header, so such a
    handshake comes from an API client, where cross-site hijacking does not apply."""

    def __init__(self, application):
        allowed = AllowedHostsOriginValidator(application).allowed_origins
        super().__init__(application, allowed)

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        if b"origin" not in headers and b"authorization" in headers:
            return await self.application(scope, receive, send)
        return await super().__call__(scope, receive, send)


# The processes that check uploaded files start with the server, not on its first upload.
ingest.start_checking_processes()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
