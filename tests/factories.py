"""factory_boy factories for every app's models."""

from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import PhysicianProfile, SpecialistProfile, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    role = "physician"
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        if create:
            self.save()
            EmailAddress.objects.get_or_create(
                user=self, email=self.email, defaults={"verified": True, "primary": True}
            )
            if self.role == "physician":
                PhysicianProfile.objects.get_or_create(user=self, defaults={"institution": "General Hospital"})


class SpecialistFactory(UserFactory):
    role = "specialist"

    @factory.post_generation
    def profile(self, create, extracted, **kwargs):
        if create:
            defaults = {
                "specialties": ["neuroradiology", "general_radiology"],
                "jurisdictions": ["US", "DE"],
                "approved_at": timezone.now(),
                "time_zone": "UTC",
            }
            defaults.update(kwargs)
            SpecialistProfile.objects.get_or_create(user=self, defaults=defaults)


# -- consultations -----------------------------------------------------------------------------


def make_study(*, uploader=None, patient_account=None, modalities="CT", uid=None):
    """A patient with one study and one series, made directly (no DICOM files); the uploader
    gets an access grant as ingest would give."""
    import uuid

    from studies.models import AccessGrant, Patient, Series, Study
    from studies.permissions import grant_access

    suffix = uuid.uuid4().int % 10**12
    patient = Patient.objects.create(
        patient_id=f"P{suffix}", name="Doe^Jane", account=patient_account, uploaded_by=uploader
    )
    study = Study.objects.create(
        study_instance_uid=uid or f"1.2.826.0.1.3680043.10.{suffix}",
        patient=patient,
        description="CT head",
        modalities=modalities,
        uploaded_by=uploader,
    )
    Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.1", study=study, modality=modalities)
    if uploader is not None:
        grant_access(user=uploader, study=study, reason=AccessGrant.Reason.UPLOADER, granted_by=uploader)
    return study


class ConsultFactory(factory.django.DjangoModelFactory):
    """A draft consult; call ``consultations.actions.submit_consult`` to send it out."""

    class Meta:
        model = "consultations.ConsultRequest"

    requester = factory.SubFactory(UserFactory, role="physician")
    study = factory.LazyAttribute(lambda o: make_study(uploader=o.requester))
    question = "Is there an acute intracranial haemorrhage?"
    clinical_history = "Fall from standing height, on anticoagulants."
    priority = "routine"
    specialty = "neuroradiology"
    jurisdiction = "US-CA"
