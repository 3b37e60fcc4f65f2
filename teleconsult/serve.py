"""Serving the portal: the start-up work a server process needs, then daphne.

    python -m teleconsult.serve [daphne options]      e.g. -b 127.0.0.1 -p 8001 --access-log -

This is how the portal is served: ``make run``, the systemd units of docs/operations.md, and the
servers the tests and benchmarks start. Every option of ``daphne`` works the same (``-b``/``-p``,
``-u`` for a UNIX socket, ``--fd``, ``-e``, ``--access-log``, timeouts...); the application is
always ``teleconsult.asgi:application`` and need not be named.

But not ``--proxy-headers``: with it daphne takes the first X-Forwarded-For entry as the client, and
that one is whatever the client wrote (a proxy appends to it). The portal finds the client itself,
believing only the proxies ``TELECONSULT_TRUSTED_PROXIES`` names (``teleconsult.client_address``),
so it needs the socket peer daphne would have replaced. serve refuses the option, saying so.

Importing ``teleconsult.asgi`` only builds the application. ``start()`` does, in the process that
is about to serve and before daphne listens, what a server of the portal needs:

- temporary files go to disk where ``/tmp`` is held in memory and no ``TMPDIR`` is set
  (``studies.storage.keep_temporary_files_on_disk``);
- request directories of processes that no longer exist (a server killed in an upload, this
  one's earlier life or another daphne's on the same data directory) are removed, never one a
  live process holds (``studies.storage.remove_abandoned_request_dirs``);
- daphne and Twisted hand request bodies over from their file a piece at a time and send
  responses as the client takes them (``teleconsult.bodies.install``);
- stale staged files are swept and the checking processes start with the server rather than on
  its first upload (``studies.ingest.start_checking_processes``);
- what start-up loaded is moved out of the garbage collector's way (``settle_for_serving``).

Plain ``daphne teleconsult.asgi:application`` (or ``manage.py runserver``) still serves every page
correctly, without those: daphne then holds request bodies in memory whole, the checking
processes start on the first upload that needs them, and full garbage collections walk all of
Django. The application logs a warning saying so on the first
request such a server hands it (``teleconsult.asgi.StartUpCheck``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys

APPLICATION = "teleconsult.asgi:application"

PROXY_HEADERS_REFUSED = (
    "--proxy-headers is not used: daphne would take the first X-Forwarded-For entry, which any client can "
    "write. Leave it out and set TELECONSULT_TRUSTED_PROXIES to the proxy's address (e.g. 127.0.0.1) or the "
    "number of proxies in front; the portal then takes the address the proxy saw (docs/operations.md)."
)

logger = logging.getLogger(__name__)

_started = False


def started() -> bool:
    """Whether ``start()`` has run in this process."""
    return _started


def start() -> None:
    """Set this process up to serve (once): Django and the application, then the steps above."""
    global _started
    if _started:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teleconsult.settings")
    import teleconsult.asgi  # noqa: F401 - Django set up and the application built
    from studies import ingest, storage
    from teleconsult import bodies

    # Before anything starts a process or writes a temporary file: the checking processes
    # inherit the temporary directory chosen here.
    storage.keep_temporary_files_on_disk()
    remove_abandoned_request_dirs()
    bodies.install()
    ingest.start_checking_processes()
    settle_for_serving()
    _started = True


def remove_abandoned_request_dirs() -> None:
    """What uploads cut short by a killed server left in the staging directory; trouble here is
    logged and the server starts anyway."""
    from studies import storage

    try:
        removed, size = storage.remove_abandoned_request_dirs()
    except OSError:
        logger.exception("start-up: request directories of ended processes could not be removed")
        return
    if removed:
        logger.warning("start-up: removed %d request directories (%d bytes) of ended processes", removed, size)


def settle_for_serving() -> None:
    """Load what the first requests would load (the URL patterns and the views they import), then
    move everything loaded so far out of the garbage collector's way for good (``gc.freeze``).

    A full collection otherwise walks all of Django, DRF, pydicom and the project on every pass:
    about 0.1 s each, once or twice per 60 MB of STOW-RS uploads (bench.ingest); about 0.01 s once
    only what requests allocate is left to walk."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - evaluated for its imports
    gc.collect()  # garbage left by start-up is freed, not frozen with the rest
    gc.freeze()


def daphne_arguments(argv: list[str]) -> list[str]:
    """daphne's command line for ``argv``: the options as given, the application added."""
    return list(argv) if APPLICATION in argv else [*argv, APPLICATION]


def main(argv: list[str] | None = None) -> None:
    """Check daphne's options, start up, then hand over to daphne's own command line."""
    from daphne.cli import CommandLineInterface

    arguments = daphne_arguments(sys.argv[1:] if argv is None else argv)
    cli = CommandLineInterface()
    cli.parser.prog = "python -m teleconsult.serve"
    # --help, an unknown option or another application is answered before anything starts.
    options = cli.parser.parse_args(arguments)
    if options.proxy_headers or options.proxy_headers_host or options.proxy_headers_port:
        cli.parser.error(PROXY_HEADERS_REFUSED)
    start()
    cli.run(arguments)


if __name__ == "__main__":
    # Run as a script this module is ``__main__``; the application asks ``teleconsult.serve``
    # whether start-up ran, so the start-up runs from that module, not from this copy of it.
    from teleconsult import serve

    serve.main()
