from django.apps import AppConfig


class ConsultationsConfig(AppConfig):
    name = "consultations"
    verbose_name = "Consultations"

    def ready(self) -> None:
        from django.urls import reverse

        from studies import panels

        from . import extensions

        # The study page, the patient page and lists of studies show consults and "Ask for a second opinion".
        extensions.register()
        # The patient portal stands in for the study pages studies shows a patient.
        panels.register_link(panels.PATIENT_HOME, lambda: reverse("portal:home"))
        panels.register_link(
            panels.PATIENT_STUDY_PAGE,
            lambda study: reverse("portal:study", kwargs={"study_uid": study.study_instance_uid}),
        )
