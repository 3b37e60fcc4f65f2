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
