"""``manage.py createuser EMAIL --role ROLE``: a ready, verified, approved account."""

from __future__ import annotations

import secrets

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role, Specialty
from accounts.provisioning import ProvisioningError, provision_user


class Command(BaseCommand):
    help = (
        "Create (or update) an account that can sign in at once: verified email, approved specialist, "
        "staff rights for admins. Without --password a password is generated and printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Default: a generated password, printed once.")
        parser.add_argument("--name", help="Display name")
        parser.add_argument(
            "--specialty",
            dest="specialties",
            action="extend",
            nargs="+",
            default=[],
            metavar="S",
            help=f"Specialists: one or more of {', '.join(Specialty.values)}",
        )
        parser.add_argument(
            "--jurisdiction",
            dest="jurisdictions",
            action="extend",
            nargs="+",
            default=[],
            metavar="CC",
            help="ISO 3166 codes (DE, US-CA): licences of a specialist, or where a physician works",
        )
        parser.add_argument("--institution", help="Physicians: hospital or practice")
        parser.add_argument(
            "--practice",
            metavar="NAME",
            help="Clinicians: join this practice (created if missing). Without it a clinician who belongs to "
            "no practice gets one of their own.",
        )
        parser.add_argument(
            "--practice-admin", action="store_true", help="With --practice: as that practice's administrator"
        )

    def handle(self, *args, **options):
        password = options["password"]
        generated = False
        if password is None:
            from accounts.models import User

            if not User.objects.filter(email__iexact=options["email"].strip()).exists():
                password = secrets.token_urlsafe(12)
                generated = True
        try:
            result = provision_user(
                options["email"],
                role=options["role"],
                password=password,
                name=options["name"],
                specialties=options["specialties"],
                jurisdictions=options["jurisdictions"],
                institution=options["institution"],
                check_password=not generated,
                practice=options["practice"],
                practice_admin=options["practice_admin"],
            )
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from None
        user = result.user
        verb = "Created" if result.created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {user.get_role_display().lower()} {user.email}"))
        for membership in user.memberships.select_related("practice"):
            role = membership.get_role_display().lower()
            self.stdout.write(f"Practice: {membership.practice.name} (#{membership.practice_id}), {role}")
        if generated:
            self.stdout.write(f"Password: {password}")
        elif password is None:
            self.stdout.write("Password unchanged.")
