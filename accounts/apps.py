from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Open WebSockets close when their token, session or account is revoked.
        from . import revocation

        revocation.connect_signals()
