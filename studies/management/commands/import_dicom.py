"""``manage.py import_dicom PATH ...``: import DICOM files, folders (recursively) and zip archives."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import Organization
from accounts.practices import PracticeError, upload_practice
from studies import storage
from studies.ingest import ALREADY_STORED, BATCH_SIZE, STORED, ingest_files
from studies.permissions import can_upload


class Command(BaseCommand):
    help = (
        "Import DICOM files, folders (recursively) and zip archives through the same checks as uploads, "
        "with a progress bar and a summary of what was stored, already there, or refused and why."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Files or folders to import")
        parser.add_argument(
            "--user",
            metavar="EMAIL",
            help="Import as this physician, specialist or admin, a member of the practice the studies are filed "
            "under (their default practice unless --practice names another)",
        )
        parser.add_argument(
            "--practice",
            metavar="ID",
            help="The practice new studies are filed under (its number, on the practice pages); needed without "
            "--user unless the installation has a single practice",
        )

    def handle(self, *args, paths: list[str], user: str | None = None, practice: str | None = None, **options):
        uploader = self._uploader(user)
        target = self._practice(uploader, practice)
        # Zip entries and deflated files are unpacked into temporary files: on disk, as in daphne.
        storage.keep_temporary_files_on_disk()
        files = self._files(paths)
        verbosity = options.get("verbosity", 1)
        results = []
        with tqdm(total=len(files), unit="file", desc="Importing", disable=verbosity == 0 or None) as bar:
            # A batch's worth at a time: checked side by side, written in one transaction.
            for start in range(0, len(files), BATCH_SIZE):
                chunk = files[start : start + BATCH_SIZE]
                results.extend(ingest_files(chunk, user=uploader, practice=target))
                bar.update(len(chunk))
        self._summary(results, verbosity)

    def _uploader(self, email: str | None):
        if not email:
            return None
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        if not can_upload(user):
            raise CommandError(
                f"{email} may not upload studies (patients cannot, nor clinicians outside a practice); "
                "use a practice member's email."
            )
        return user

    def _practice(self, uploader, requested: str | None):
        if uploader is None or (uploader.is_admin and not requested and not uploader.practice_ids()):
            if not requested:
                practices = list(Organization.objects.order_by("pk")[:2])
                if len(practices) == 1:
                    return practices[0]  # an installation of one practice: it is the one
                raise CommandError(
                    "Name the practice to file the studies under: --practice ID (or --user EMAIL of a member); "
                    "the practices' numbers are on the Practices page."
                )
            try:
                found = Organization.objects.filter(pk=int(requested)).first()
            except ValueError:
                found = None
            if found is None:
                raise CommandError(f"No practice {requested!r}: give a practice's number.")
            return found
        try:
            found = upload_practice(uploader, requested)
        except PracticeError as exc:
            raise CommandError(str(exc)) from None
        if found is None:
            raise CommandError(f"{uploader.email} is not a member of any practice: admit them to one first.")
        return found

    def _files(self, paths: list[str]) -> list[tuple[str, Path]]:
        files = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(
                    (str(child.relative_to(path.parent)), child) for child in sorted(path.rglob("*")) if child.is_file()
                )
            elif path.is_file():
                files.append((path.name, path))
            else:
                raise CommandError(f"{raw} is neither a file nor a folder.")
        return files

    def _summary(self, results, verbosity: int) -> None:
        statuses = Counter(result.status for result in results)
        refused = [result for result in results if result.status not in (STORED, ALREADY_STORED)]
        self.stdout.write(
            f"{len(results)} file(s): {statuses[STORED]} stored, {statuses[ALREADY_STORED]} already stored, "
            f"{len(refused)} refused."
        )
        if refused:
            codes = Counter(result.code for result in refused)
            self.stdout.write("Refused: " + ", ".join(f"{count} {code}" for code, count in codes.most_common()))
            if verbosity >= 1:
                for result in refused:
                    self.stdout.write(f"  {result.filename}: {result.reason}")
        coerced = [result for result in results if result.coerced]
        if coerced and verbosity >= 2:
            self.stdout.write(f"Stored with warnings: {len(coerced)}")
            for result in coerced:
                self.stdout.write(f"  {result.filename}: {result.reason}")
