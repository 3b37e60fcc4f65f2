from django.urls import path

from . import consumers, room_consumer

websocket_urlpatterns = [
    path("ws/notifications/", consumers.NotificationsConsumer.as_asgi()),
    path("ws/consults/<int:consult_id>/", room_consumer.ConsultRoomConsumer.as_asgi()),
]
