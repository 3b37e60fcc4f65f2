from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "studies"
    verbose_name = "Studies"

    def ready(self) -> None:
        from allauth.account.signals import email_confirmed

        from .invitations import on_email_confirmed

        email_confirmed.connect(on_email_confirmed, dispatch_uid="studies-link-invited-patient")
