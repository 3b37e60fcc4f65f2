"""``manage.py set_dicom_node NODE [--send-results on|off] [--retrieve move|get] [--dicomweb-url URL |
--dimse]``: how the portal calls a registered node (docs/dimse.md, "Priors" and "Results back").

NODE is the node's number, or its AE title when only one node has it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from studies.models import DicomNode

SWITCH = {"on": True, "off": False, "yes": True, "no": False, "1": True, "0": False}


def find_node(name: str) -> DicomNode:
    name = (name or "").strip()
    if name.isdigit():
        node = DicomNode.objects.filter(pk=int(name)).first()
        if node is None:
            raise CommandError(f"No DICOM node number {name}.")
        return node
    found = list(DicomNode.objects.filter(ae_title=name)[:2])
    if not found:
        raise CommandError(f"No DICOM node with AE title {name!r}.")
    if len(found) > 1:
        raise CommandError(f"Several nodes have AE title {name!r}: give the node's number instead.")
    return found[0]


class Command(BaseCommand):
    help = "Set how the portal calls a DICOM node: send results back, C-MOVE or C-GET, or a DICOMweb URL."

    def add_arguments(self, parser):
        parser.add_argument("node", metavar="NODE", help="The node's number, or its AE title")
        parser.add_argument("--send-results", choices=sorted(SWITCH), help="Send signed reports back to it (on/off)")
        parser.add_argument("--retrieve", choices=[c.value for c in DicomNode.Retrieve], help="How priors are pulled")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--dicomweb-url", metavar="URL", help="Search and pull over DICOMweb at this base URL")
        kind.add_argument("--dimse", action="store_true", help="Search and pull over DIMSE (the default)")

    def handle(self, *args, node, send_results=None, retrieve=None, dicomweb_url=None, dimse=False, **options):
        target = find_node(node)
        changed = []
        if send_results is not None:
            target.send_results = SWITCH[send_results]
            changed.append("send_results")
        if retrieve is not None:
            target.retrieve_with = retrieve
            changed.append("retrieve_with")
        if dicomweb_url is not None:
            try:
                URLValidator(schemes=["http", "https"])(dicomweb_url)
            except ValidationError:
                raise CommandError(f"{dicomweb_url[:80]!r} is not an http(s) URL.") from None
            target.kind, target.dicomweb_url = DicomNode.Kind.DICOMWEB, dicomweb_url
            changed += ["kind", "dicomweb_url"]
        if dimse:
            target.kind = DicomNode.Kind.DIMSE
            changed.append("kind")
        if not changed:
            raise CommandError("Nothing to change: give --send-results, --retrieve, --dicomweb-url or --dimse.")
        target.save(update_fields=changed)
        where = target.dicomweb_url if target.kind == DicomNode.Kind.DICOMWEB else f"{target.host}:{target.port}"
        self.stdout.write(
            f"DICOM node {target.ae_title} (number {target.pk}): {target.get_kind_display()} at {where}, priors by "
            f"{target.retrieve_with.upper()}, results sent back {'on' if target.send_results else 'off'}."
        )
