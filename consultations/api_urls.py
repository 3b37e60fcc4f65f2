from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, room_api

router = SimpleRouter()
router.register("consults", api.ConsultViewSet, basename="api-consult")
router.register("notifications", api.NotificationViewSet, basename="api-notification")

urlpatterns = [
    path("consults/<int:pk>/messages/", room_api.ConsultMessagesView.as_view(), name="api-consult-messages"),
    path("report-templates/", api.TemplateListView.as_view(), name="api-report-templates"),
    *router.urls,
]
