"""``manage.py dicom_scp``: the DICOM receiving node (C-ECHO and C-STORE SCP) for known senders."""

from __future__ import annotations

import errno
import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from studies.dimse import Receiver, ssl_context
from studies.nodes import NodeError, clean_ae_title, clean_port


class Command(BaseCommand):
    help = (
        "Receive studies over DICOM (C-ECHO, C-STORE) from the nodes registered with add_dicom_node, "
        "into the same ingest as uploads. Runs until SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", help=f"Address to listen on (default {settings.TELECONSULT_DIMSE_BIND})")
        parser.add_argument("--port", help=f"Port to listen on (default {settings.TELECONSULT_DIMSE_PORT})")
        parser.add_argument("--ae-title", help=f"This node's AE title (default {settings.TELECONSULT_AE_TITLE})")

    def handle(self, *args, bind=None, port=None, ae_title=None, **options):
        try:
            ae_title = clean_ae_title(ae_title or settings.TELECONSULT_AE_TITLE)
            port = clean_port(port if port is not None else settings.TELECONSULT_DIMSE_PORT)
        except NodeError as exc:
            raise CommandError(exc.message) from None
        bind = bind or settings.TELECONSULT_DIMSE_BIND
        # pynetdicom logs every PDU and message at INFO; its warnings and errors are what matter here.
        logging.getLogger("pynetdicom").setLevel(logging.DEBUG if options["verbosity"] >= 3 else logging.WARNING)
        receiver = Receiver(
            ae_title=ae_title,
            bind=bind,
            port=port,
            max_associations=settings.TELECONSULT_DIMSE_MAX_ASSOCIATIONS,
            tls=self._tls(),
        )
        scheme = "DICOM TLS" if receiver.tls else "DICOM"

        def ready() -> None:
            self.stdout.write(f"{scheme} receiver {ae_title} listening on {bind}:{port} (Ctrl-C stops it)")
            self.stdout.flush()

        try:
            receiver.serve(ready=ready)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Port {port} on {bind} is already in use, so the DICOM receiver is not running: stop what "
                    "listens there or set TELECONSULT_DIMSE_PORT (or --port) to a free port."
                ) from None
            raise CommandError(f"The DICOM receiver cannot listen on {bind}:{port}: {exc}") from None

    def _tls(self):
        cert, key, ca = (
            settings.TELECONSULT_DIMSE_TLS_CERT,
            settings.TELECONSULT_DIMSE_TLS_KEY,
            settings.TELECONSULT_DIMSE_TLS_CA,
        )
        if not cert:
            return None
        try:
            return ssl_context(cert, key, ca)
        except (OSError, ValueError) as exc:
            raise CommandError(f"DICOM TLS: cannot load {cert}, {key}{', ' + ca if ca else ''}: {exc}") from None
