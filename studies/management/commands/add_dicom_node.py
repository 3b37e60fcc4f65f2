"""``manage.py add_dicom_node AE HOST PORT --owner EMAIL [--practice NAME]``: register a DICOM node
allowed to send studies to the receiver (``dicom_scp``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from studies.nodes import NodeError, add_node, practice_named


class Command(BaseCommand):
    help = (
        "Register a DICOM node (a PACS or modality) that may send studies: its AE title, the host it connects "
        "from and its port; what it sends is filed under --owner's practice (or --practice) as their upload."
    )

    def add_arguments(self, parser):
        parser.add_argument("ae_title", metavar="AE", help="The node's calling AE title (up to 16 characters)")
        parser.add_argument("host", metavar="HOST", help="The IP address or host name it connects from")
        parser.add_argument("port", metavar="PORT", help="Its own DIMSE port (1-65535)")
        parser.add_argument("--owner", metavar="EMAIL", required=True, help="The account its studies are filed under")
        parser.add_argument(
            "--practice", metavar="NAME", help="The practice to file under (name or number); the owner's by default"
        )

    def handle(self, *args, ae_title, host, port, owner, practice=None, **options):
        user = get_user_model().objects.filter(email__iexact=owner.strip()).first()
        if user is None:
            raise CommandError(f"No account with email {owner}.")
        try:
            target = practice_named(practice) if practice else None
            node = add_node(ae_title=ae_title, host=host, port=port, owner=user, practice=target)
        except NodeError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"DICOM node {node.ae_title} at {node.host}:{node.port} registered (number {node.pk}); its studies are "
            f"filed under {node.practice.name} as {user.email}."
        )
