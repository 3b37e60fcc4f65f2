"""``manage.py sweep_files [--dry-run] [--grace-hours H]``: remove stored files no row refers to."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from studies.sweep import sweep_unreferenced_files

NBSP = "\xa0"  # filesizeformat keeps "1.0 GB" together for HTML; this is a terminal


def _hours(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        raise CommandError(f"--grace-hours must be a number of hours, not {value!r}") from None
    if not hours >= 0:  # also refuses nan
        raise CommandError(f"--grace-hours must be 0 or more, not {value}")
    return hours


class Command(BaseCommand):
    help = (
        "Remove stored files (DICOM instances, thumbnails, attachments...) that no database row refers to and "
        "that are older than the grace period: what an upload cut short by a killed server left. "
        "Celery beat runs it daily (studies.tasks.sweep_files)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="List the files that would be removed and their bytes; remove none"
        )
        parser.add_argument(
            "--grace-hours",
            metavar="H",
            help="Keep files younger than this many hours, whose rows may still be being written "
            f"(default TELECONSULT_SWEEP_GRACE_HOURS, {settings.TELECONSULT_SWEEP_GRACE_HOURS})",
        )

    def handle(self, *args, dry_run: bool = False, grace_hours: str | None = None, **options):
        hours = settings.TELECONSULT_SWEEP_GRACE_HOURS if grace_hours is None else _hours(grace_hours)
        verbosity = options.get("verbosity", 1)
        # Each file is listed in a dry run; in a real one only with -v 2 (there may be many).
        listed = verbosity >= 2 or (dry_run and verbosity >= 1)
        verb = "would remove" if dry_run else "removed"

        def on_file(name: str, size: int) -> None:
            if listed:
                self.stdout.write(f"{verb} {name} ({size} bytes)")

        report = sweep_unreferenced_files(grace=dt.timedelta(hours=hours), dry_run=dry_run, on_file=on_file)
        if verbosity >= 1:
            outcome = "to remove" if dry_run else "removed"
            size = filesizeformat(report.removed_bytes).replace(NBSP, " ")
            self.stdout.write(
                f"{report.removed} unreferenced files {outcome}, {report.removed_bytes} bytes "
                f"({size}); {report.checked} files older than {hours:g} h checked, "
                f"{report.young} younger kept."
            )
