from django.urls import path

from .views import colleagues, consult, dashboard, notifications, questions, report, request, worklist
from .webhooks import views as webhooks

app_name = "consultations"

urlpatterns = [
    path("studies/<str:study_uid>/consult/new/", request.consult_new, name="new"),
    path("worklist/", worklist.worklist, name="worklist"),
    path("consults/", worklist.my_consults, name="mine"),
    path("consults/<int:pk>/", consult.consult_detail, name="detail"),
    path("consults/<int:pk>/do/<slug:action>/", consult.consult_action, name="action"),
    path("consults/<int:pk>/participants/", colleagues.add_participant, name="add-participant"),
    path(
        "consults/<int:pk>/participants/<int:user_id>/remove/", colleagues.remove_participant, name="remove-participant"
    ),
    path(
        "consults/<int:pk>/invitations/<int:invitation_pk>/withdraw/",
        colleagues.withdraw_invitation,
        name="withdraw-invitation",
    ),
    path("consults/invitations/<int:invitation_pk>/", colleagues.colleague_invitation, name="colleague-invitation"),
    path("consults/<int:pk>/attachments/", consult.upload_attachment, name="upload-attachment"),
    path("consults/<int:pk>/attachments/<int:attachment_pk>/", consult.attachment, name="attachment"),
    path("consults/<int:pk>/report/", report.report_editor, name="report"),
    path("consults/<int:pk>/report/save/", report.report_save, name="report-save"),
    path("consults/<int:pk>/report/template/", report.report_template, name="report-template"),
    path("consults/<int:pk>/report/sign/", report.report_sign, name="report-sign"),
    path("consults/<int:pk>/report/addendum/", report.report_addendum, name="report-addendum"),
    path("consults/<int:pk>/report.pdf", report.report_pdf, name="report-pdf"),
    path("consults/<int:pk>/patient-questions/", questions.patient_questions, name="patient-questions"),
    path(
        "consults/<int:pk>/patient-questions/<int:question_pk>/answer/",
        questions.answer_question,
        name="answer-patient-question",
    ),
    path("dashboard/", dashboard.service_dashboard, name="dashboard"),
    path("notifications/", notifications.notification_list, name="notifications"),
    path("notifications/<int:pk>/open/", notifications.notification_open, name="notification-open"),
    path("notifications/email/", notifications.email_settings, name="email-settings"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/new/", webhooks.webhook_create, name="webhook-create"),
    path("webhooks/<int:pk>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/edit/", webhooks.webhook_edit, name="webhook-edit"),
    path("webhooks/<int:pk>/do/<slug:action>/", webhooks.webhook_action, name="webhook-action"),
]
