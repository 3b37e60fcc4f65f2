"""WebSocket routes of every app, gathered in one list."""

from accounts.routing import websocket_urlpatterns as accounts_ws
from consultations.routing import websocket_urlpatterns as consultations_ws

websocket_urlpatterns = [*accounts_ws, *consultations_ws]
