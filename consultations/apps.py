from django.apps import AppConfig


class ConsultationsConfig(AppConfig):
    name = "consultations"
    verbose_name = "Consultations"

    def ready(self) -> None:
        from django.db.models.signals import pre_save
        from django.urls import reverse

        from studies import panels

        from . import extensions, identity
        from .models import ConsultRequest

        # The study page, the patient page and lists of studies show consults and "Ask for a second opinion".
        extensions.register()
        # A consult keeps whose images it was asked about, for signing to compare with.
        pre_save.connect(identity.keep_identity, sender=ConsultRequest, dispatch_uid="consult-identity")
        # The patient portal stands in for the study pages studies shows a patient.
        panels.register_link(panels.PATIENT_HOME, lambda: reverse("portal:home"))
        panels.register_link(
            panels.PATIENT_STUDY_PAGE,
            lambda study: reverse("portal:study", kwargs={"study_uid": study.study_instance_uid}),
        )
