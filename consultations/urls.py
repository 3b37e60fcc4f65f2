from django.urls import path

from . import views

app_name = "consultations"

urlpatterns = [
    path("studies/<str:study_uid>/consult/new/", views.consult_new, name="new"),
    path("worklist/", views.worklist, name="worklist"),
    path("consults/", views.my_consults, name="mine"),
    path("consults/<int:pk>/", views.consult_detail, name="detail"),
    path("consults/<int:pk>/do/<slug:action>/", views.consult_action, name="action"),
    path("consults/<int:pk>/participants/", views.add_participant, name="add-participant"),
    path("consults/<int:pk>/participants/<int:user_id>/remove/", views.remove_participant, name="remove-participant"),
    path(
        "consults/<int:pk>/invitations/<int:invitation_pk>/withdraw/",
        views.withdraw_invitation,
        name="withdraw-invitation",
    ),
    path("consults/invitations/<int:invitation_pk>/", views.colleague_invitation, name="colleague-invitation"),
    path("consults/<int:pk>/attachments/", views.upload_attachment, name="upload-attachment"),
    path("consults/<int:pk>/attachments/<int:attachment_pk>/", views.attachment, name="attachment"),
    path("consults/<int:pk>/report/", views.report_editor, name="report"),
    path("consults/<int:pk>/report/save/", views.report_save, name="report-save"),
    path("consults/<int:pk>/report/template/", views.report_template, name="report-template"),
    path("consults/<int:pk>/report/sign/", views.report_sign, name="report-sign"),
    path("consults/<int:pk>/report/addendum/", views.report_addendum, name="report-addendum"),
    path("consults/<int:pk>/report.pdf", views.report_pdf, name="report-pdf"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/<int:pk>/open/", views.notification_open, name="notification-open"),
    path("notifications/email/", views.email_settings, name="email-settings"),
]
