"""The processes a Celery worker starts (its pool, and beat when run with ``--beat``) end when it does.

A worker killed outright (kill -9, the out-of-memory killer) cannot stop them. Celery asks Linux to
kill its pool processes when the worker dies (PR_SET_PDEATHSIG), but not the beat process that
``--beat`` forks: it went on scheduling beside the beat of the restarted worker. Every process the
worker starts asks for it here, and leaves at once if the worker died before it could ask (the
request only covers a parent that is still alive). Elsewhere than on Linux there is no such request
and nothing happens.
"""

from __future__ import annotations

import os

from celery import platforms

# The worker's main process, noted before it starts any other (its children inherit the value).
_worker_pid: int | None = None


def note_worker(**_kwargs) -> None:
    """``worker_init``: runs in the worker's main process, before the pool and beat start."""
    global _worker_pid
    _worker_pid = os.getpid()


def end_with_worker(**_kwargs) -> None:
    """``worker_process_init`` and ``beat_embedded_init``: runs in each process the worker starts.

    The solo pool sends ``worker_process_init`` in the worker itself, which must not die with
    whatever started it, so only processes other than the worker ask.
    """
    if _worker_pid is None or os.getpid() == _worker_pid:
        return
    platforms.set_pdeathsig("SIGKILL")  # a no-op where the platform has no such request
    if os.getppid() != _worker_pid:
        os._exit(1)  # the worker died between starting this process and the request above
