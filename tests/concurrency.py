"""Simultaneous work for race tests: callables released at the same moment, each on its own thread
and so on its own database connection."""

from __future__ import annotations

import threading

from django.db import connection


def run_together(jobs) -> list:
    """Run the callables in threads released at the same moment; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list = []

    def worker(index, job):
        try:
            barrier.wait()
            results[index] = job()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results
