"""The ASGI application: HTTP through Django, WebSockets through Channels.

Importing this module builds the application and does nothing else: no patches, no processes,
no change to the environment, so tests and tools import it freely. The start-up work a server
needs is ``teleconsult.serve`` (``python -m teleconsult.serve``, which runs daphne on this
application); served any other way, it serves correctly without that work and says so once.
"""

import logging
import os

import django
from django.apps import apps
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")
# As django.core.asgi.get_asgi_application(), but Django is set up only where it is not yet:
# setting it up again would configure logging again, over what the importer set up (a test run's).
if not apps.ready:
    django.setup(set_prefix=False)
django_asgi_app = ASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.websocket import TokenOrSessionAuthMiddleware  # noqa: E402
from studies.dicomweb.stow_body import StowBodyReader  # noqa: E402
from teleconsult import serve  # noqa: E402
from teleconsult.origins import BrowserOriginValidator  # noqa: E402
from teleconsult.routing import websocket_urlpatterns  # noqa: E402

logger = logging.getLogger(__name__)


class StartUpCheck:
    """On the first connection a server hands over (its scope names the ``server``; Channels' test
    tools name none), log a warning when this process was not started by ``teleconsult.serve``:
    everything works, but daphne holds request bodies in memory whole, temporary files may be in
    memory too, and full garbage collections walk all of Django."""

    def __init__(self, application):
        self.application = application
        self.checked = False

    async def __call__(self, scope, receive, send):
        if not self.checked and "server" in scope:
            self.checked = True
            if not serve.started():
                logger.warning(
                    "teleconsult.asgi is served without its start-up: run the server with "
                    "`python -m teleconsult.serve [daphne options]` (docs/operations.md), not `daphne %s`; "
                    "without it daphne holds request bodies in memory whole",
                    serve.APPLICATION,
                )
        return await self.application(scope, receive, send)


application = StartUpCheck(
    ProtocolTypeRouter(
        {
            # STOW-RS bodies are split into their parts in front of Django (studies.dicomweb.stow_body).
            "http": StowBodyReader(django_asgi_app),
            "websocket": BrowserOriginValidator(TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
        }
    )
)
