"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from accounts.websocket import TokenOrSessionAuthMiddleware  # noqa: E402
from studies import ingest, storage  # noqa: E402
from studies.stow_body import StowBodyReader  # noqa: E402
from teleconsult import bodies  # noqa: E402
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


# Request bodies are received into temporary files: on disk, even where /tmp is held in memory,
# and handed to the application a piece at a time rather than read into memory whole.
storage.keep_temporary_files_on_disk()
bodies.install()
# The processes that check uploaded files start with the server, not on its first upload.
ingest.start_checking_processes()


def settle_for_serving() -> None:
    """Load what the first requests would load (the URL patterns and the views they import), then
    move everything loaded so far out of the garbage collector's way for good (``gc.freeze``).

    A full collection otherwise walks all of Django, DRF, pydicom and the project on every pass:
    about 0.1 s each, once or twice per 60 MB of STOW-RS uploads (bench.ingest); about 0.01 s once
    only what requests allocate is left to walk."""
    get_resolver().url_patterns  # noqa: B018 - evaluated for its imports
    gc.collect()  # garbage left by start-up is freed, not frozen with the rest
    gc.freeze()


settle_for_serving()

application = ProtocolTypeRouter(
    {
        # STOW-RS bodies are split into their parts in front of Django (studies.stow_body).
        "http": StowBodyReader(django_asgi_app),
        "websocket": BrowserOriginValidator(TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
