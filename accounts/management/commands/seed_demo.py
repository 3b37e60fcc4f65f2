"""``manage.py seed_demo``: demo accounts, a demo patient with a study, and a consult."""

from __future__ import annotations

import importlib
import inspect

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role
from accounts.provisioning import provision_user

# Published in the README: these accounts exist for trying the portal, never for real data.
DEMO_PASSWORD = "demo-pass-2026"

# On call around the clock, every day (the window ends at the last instant of the day).
ALWAYS_ON_CALL = [{"day": day, "start": "00:00", "end": "23:59:59.999999"} for day in range(7)]

DEMO_USERS = [
    {"email": "admin@example.com", "role": Role.ADMIN, "name": "Ada Admin"},
    {
        "email": "physician@example.com",
        "role": Role.PHYSICIAN,
        "name": "Dr Paula Physician",
        "institution": "Demo General Hospital",
        "jurisdictions": ["US"],
        "practice": "Demo General Hospital",
        "practice_admin": True,
    },
    {
        "email": "specialist@example.com",
        "role": Role.SPECIALIST,
        "name": "Dr Sam Specialist",
        "specialties": ["neuroradiology", "general_radiology", "chest"],
        "jurisdictions": ["US", "DE"],
        "on_call": ALWAYS_ON_CALL,
        "practice": "Demo Reading Group",
    },
    {"email": "patient@example.com", "role": Role.PATIENT, "name": "Pat Patient"},
]


class Command(BaseCommand):
    help = (
        f"Create the demo accounts (password {DEMO_PASSWORD}), a demo patient with a study and a consult. "
        "Safe to run again. Refuses when DEBUG is off unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Seed even though DEBUG is off (the password is public)."
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "DEBUG is off: seed_demo would create accounts with a published password. "
                "Run it with --force if this really is a demo installation."
            )
        users = {}
        for spec in DEMO_USERS:
            spec = dict(spec)
            result = provision_user(spec.pop("email"), password=DEMO_PASSWORD, check_password=False, **spec)
            users[result.user.role] = result.user
            state = "created" if result.created else "up to date"
            self.stdout.write(f"{result.user.email} ({result.user.role}): {state}")

        physician, patient_user = users[Role.PHYSICIAN], users[Role.PATIENT]
        seed_study = self._demo_step("studies.demo", "seed_demo_study")
        study = seed_study(physician, patient_user) if seed_study else None
        seed_consult = self._demo_step("consultations.demo", "seed_demo_consult")
        if seed_consult:
            # Handed the demo objects it names among its parameters.
            available = {
                "admin": users[Role.ADMIN],
                "physician": physician,
                "specialist": users[Role.SPECIALIST],
                "patient_user": patient_user,
                "study": study,
            }
            parameters = inspect.signature(seed_consult).parameters
            missing = [
                name
                for name, p in parameters.items()
                if name not in available and p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            ]
            if missing:
                raise CommandError(f"consultations.demo.seed_demo_consult asks for unknown {', '.join(missing)}.")
            seed_consult(**{name: value for name, value in available.items() if name in parameters})
            self.stdout.write("Seeded the demo consult.")

        self.stdout.write(
            self.style.SUCCESS(
                f"Demo accounts ready: {', '.join(u.email for u in users.values())}; password {DEMO_PASSWORD}"
            )
        )
        if settings.TELECONSULT_MFA_REQUIRED:
            self.stdout.write(
                "Note: TELECONSULT_MFA_REQUIRED is on, so the demo physician, specialist and admin will be asked "
                "to set up two-factor authentication at first sign-in (it is off by default when DEBUG=1)."
            )

    def _demo_step(self, module_name: str, function_name: str):
        """Another app's demo seeding function, or None (with a note) when that app has none yet."""
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            self.stdout.write(f"Skipped {function_name}: {module_name} does not exist yet.")
            return None
        function = getattr(module, function_name, None)
        if function is None:
            self.stdout.write(f"Skipped {function_name}: {module_name} does not define it.")
        return function
