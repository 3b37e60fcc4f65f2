from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import annotations, colleagues, consults, export, notifications, questions, room, templates
from .webhooks import api as webhooks

router = SimpleRouter()
router.register("consults", consults.ConsultViewSet, basename="api-consult")
router.register("notifications", notifications.NotificationViewSet, basename="api-notification")
router.register("webhooks", webhooks.WebhookViewSet, basename="api-webhook")

urlpatterns = [
    path("consults/<int:pk>/messages/", room.ConsultMessagesView.as_view(), name="api-consult-messages"),
    path("consults/<int:pk>/annotations/", annotations.AnnotationListView.as_view(), name="api-annotations"),
    path(
        "consults/<int:pk>/annotations/<uuid:annotation_id>/",
        annotations.AnnotationDetailView.as_view(),
        name="api-annotation",
    ),
    path("consults/<int:pk>/questions/", questions.QuestionListView.as_view(), name="api-consult-questions"),
    path(
        "consults/<int:pk>/questions/<int:question_id>/answer/",
        questions.QuestionAnswerView.as_view(),
        name="api-consult-question-answer",
    ),
    path("consults/<int:pk>/export-sr/", export.ExportMeasurementsView.as_view(), name="api-consult-export-sr"),
    path("report-templates/", templates.TemplateListView.as_view(), name="api-report-templates"),
    path("colleague-invitations/", colleagues.ColleagueInvitationListView.as_view(), name="api-colleague-invitations"),
    path(
        "colleague-invitations/<int:pk>/<str:answer>/",
        colleagues.ColleagueInvitationAnswerView.as_view(),
        name="api-colleague-invitation-answer",
    ),
    *router.urls,
]
