"""``make bench``: every benchmark in turn, each printing its figures (and the peer's, where one exists).

    .venv/bin/python -m bench [name ...]     names: ingest thumbnails qido ws_fanout viewer dimse

Each runs in its own process (they configure Django differently) and the run goes on when one fails.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = ["ingest", "thumbnails", "qido", "ws_fanout", "viewer", "dimse"]


def main(argv: list[str]) -> int:
    names = argv or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}\n")
        return 2
    failed = []
    for name in names:
        sys.stdout.write(f"\n=== bench.{name} ===\n")
        sys.stdout.flush()
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        sys.stdout.write(f"=== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s ===\n")
        if code:
            failed.append(name)
    if failed:
        sys.stdout.write(f"\nbenchmarks that failed to run: {', '.join(failed)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
