from django.urls import path
from rest_framework.routers import SimpleRouter

from . import annotations_api, api, export_api, room_api

router = SimpleRouter()
router.register("consults", api.ConsultViewSet, basename="api-consult")
router.register("notifications", api.NotificationViewSet, basename="api-notification")

urlpatterns = [
    path("consults/<int:pk>/messages/", room_api.ConsultMessagesView.as_view(), name="api-consult-messages"),
    path("consults/<int:pk>/annotations/", annotations_api.AnnotationListView.as_view(), name="api-annotations"),
    path(
        "consults/<int:pk>/annotations/<uuid:annotation_id>/",
        annotations_api.AnnotationDetailView.as_view(),
        name="api-annotation",
    ),
    path("consults/<int:pk>/export-sr/", export_api.ExportMeasurementsView.as_view(), name="api-consult-export-sr"),
    path("report-templates/", api.TemplateListView.as_view(), name="api-report-templates"),
    path("colleague-invitations/", api.ColleagueInvitationListView.as_view(), name="api-colleague-invitations"),
    path(
        "colleague-invitations/<int:pk>/<str:answer>/",
        api.ColleagueInvitationAnswerView.as_view(),
        name="api-colleague-invitation-answer",
    ),
    *router.urls,
]
