"""Start-up of a process that checks uploaded files for ``studies.ingest``.

Imported by the new process before Django is set up, so it imports nothing of the project at
module level. That is also why it is not a module of the ``studies.ingest`` package: importing
any of those runs the package's ``__init__``, which imports the models.
"""

from __future__ import annotations

import os
import threading
import time


def start(server_pid: int) -> None:
    """Set up Django, and end this process once its server is gone: a server killed outright
    (out of memory, ``kill -9``) cannot tell it to, and it would wait for work forever."""
    import django

    django.setup()

    def watch() -> None:
        while True:
            time.sleep(2)
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # the pid exists under another user: not gone

    threading.Thread(target=watch, name="server-watch", daemon=True).start()
