from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "studies"
    verbose_name = "Studies"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers
        from .sharing import named

        named.connect_signals()  # an invitation to see a study is claimed when its address is confirmed
