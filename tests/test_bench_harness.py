"""The benchmarks' own accounting: the CPU time of a server and of the processes it started."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import harness

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")

# Burns half a second of CPU, then waits to be killed (so its time stays its own, not its parent's).
CHILD = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(60)"


def test_cpu_seconds_counts_the_descendants_of_a_process():
    # The parent only waits: the total passes 0.4 s only if its child is counted.
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while harness.cpu_seconds([parent.pid]) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert harness.cpu_seconds([parent.pid]) >= 0.4
        assert harness.cpu_seconds([os.getpid()]) >= harness.cpu_seconds([parent.pid])
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_cpu_seconds_of_a_process_that_is_gone_is_nothing():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert harness.cpu_seconds([gone.pid]) == 0


def test_cpu_seconds_counts_children_that_ended_once_reaped():
    burn_and_exit = CHILD.replace("\ntime.sleep(60)", "")
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {burn_and_exit!r}]); time.sleep(60)",
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while harness.cpu_seconds([parent.pid]) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Whether the child is still running or already reaped, its time counts; once reaped, for good.
        time.sleep(1)
        assert harness.cpu_seconds([parent.pid]) >= 0.4
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
