"""factory_boy factories for every app's models."""

from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import Organization, PhysicianProfile, SpecialistProfile, User

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

    @factory.post_generation
    def practice(self, create, extracted, **kwargs):
        """Clinicians work in a practice of their own unless told otherwise: ``practice=<Organization>``
        joins that one, ``practice=False`` none (a self-registered clinician not yet admitted)."""
        if not create or self.role not in ("physician", "specialist") or extracted is False:
            return
        if self.memberships.exists() and extracted is None:
            return
        if extracted is None:
            extracted = Organization.objects.create(name=f"Practice of {self.email}")
            role = "admin"
        else:
            role = kwargs.get("role", "clinician")
        extracted.add_member(self, role=role)
        self.forget_practices()


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


def practice_of(user=None):
    """``user``'s default practice; without a user (or for one outside any practice) an imaging site
    nobody in the test belongs to, so only explicit grants give access to what is filed there."""
    from accounts.practices import default_practice

    found = default_practice(user) if user is not None else None
    if found is None:
        found, _ = Organization.objects.get_or_create(name="Unaffiliated imaging site", kind="imaging_site")
    return found


# -- consultations -----------------------------------------------------------------------------


def make_study(*, uploader=None, patient_account=None, modalities="CT", uid=None, practice=None, patient=None):
    """A patient with one study and one series, made directly (no DICOM files), filed under
    ``practice`` (the uploader's default practice, else a practice of its own) as ingest would."""
    import uuid

    from studies.models import Patient, Series, Study

    suffix = uuid.uuid4().int % 10**12
    if practice is None and patient is not None:
        practice = patient.practice
    if practice is None:
        practice = practice_of(uploader)
    if patient is None:
        patient = Patient.objects.create(
            practice=practice, patient_id=f"P{suffix}", name="Doe^Jane", account=patient_account, uploaded_by=uploader
        )
    study = Study.objects.create(
        study_instance_uid=uid or f"1.2.826.0.1.3680043.10.{suffix}",
        practice=practice,
        patient=patient,
        description="CT head",
        modalities=modalities,
        uploaded_by=uploader,
    )
    Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.1", study=study, modality=modalities)
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
