"""A Celery worker killed outright (kill -9, the out-of-memory killer) in the middle of rendering:
its pool processes end with it, and the replacement worker does the renders it had taken within a
minute of starting, not when kombu's visibility timeout or beat's safety net comes round."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

INSTANCES = 50
# A 4096 x 4096 JPEG-LS frame takes about half a second to decode and shrink on one core: slow
# enough that the worker is always in the middle of renders, small enough on disk (about 2 MB).
SIZE = 4096
RESTART_DEADLINE = 60.0
CHILDREN_DEADLINE = 5.0


@pytest.fixture
def prefork_worker(request, service_environment):
    """A worker as ``make run`` starts it: a prefork pool of two processes and beat embedded (a
    process of its own); tests/servers.py starts solo workers, which have no children. Stopped
    when the test ends."""
    from tests.servers import CeleryWorkerProcess, ProcessFactory, unique_prefix

    class PreforkWorker(CeleryWorkerProcess):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pool = self.argv.index("--pool")
            self.argv[pool + 1 : pool + 2] = ["prefork", "--concurrency", "2"]

    factory = ProcessFactory(service_environment, label=unique_prefix("worker-faults"))
    request.addfinalizer(factory.stop_all)
    worker = PreforkWorker("celery", service_environment.env(), f"{factory.label}-worker", beat=True)
    factory.started.append(worker)
    return worker


def _write_large_ct_series(directory, count: int) -> None:
    """``count`` files of one series, sharing one large JPEG-LS frame (encoded once)."""
    import numpy as np
    from pydicom.uid import JPEGLSLossless, generate_uid

    from tests.studies import dicom_factory

    ds = dicom_factory.dataset(rows=SIZE, columns=SIZE)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    ds.PixelData = ((x * 3 + y * 5) % 4096).astype(np.uint16).tobytes()
    ds.compress(JPEGLSLossless)
    directory.mkdir()
    for number in range(1, count + 1):
        each = copy.deepcopy(ds)
        each.SOPInstanceUID = generate_uid()
        each.InstanceNumber = number
        dicom_factory.to_bytes(each, directory / f"{number:03}.dcm")


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaps has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")
@pytest.mark.django_db(transaction=True)
def test_renders_taken_by_a_killed_worker_are_done_within_a_minute_of_its_restart(
    redis_url, postgres, service_environment, prefork_worker, live_user, tmp_path
):
    import redis
    from django.core.files.storage import default_storage

    from studies.models import Instance
    from tests.servers import ROOT, wait_until

    user = live_user("physician", email="faults@example.com")
    _write_large_ct_series(tmp_path / "series", INSTANCES)
    broker = redis.Redis.from_url(redis_url)
    unacked = f"{service_environment.celery_key_prefix}unacked"
    survivors: list[int] = []
    try:
        # Stored with no worker running: every render waits in Redis for the worker.
        subprocess.run(
            [sys.executable, "manage.py", "import_dicom", str(tmp_path / "series"), "--user", user.email],
            cwd=ROOT,
            env=service_environment.env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert Instance.objects.filter(status=Instance.Status.PENDING).count() == INSTANCES
        prefork_worker.start()

        def rendering_some() -> bool:
            done = Instance.objects.filter(status=Instance.Status.READY).count()
            started = Instance.objects.filter(status=Instance.Status.PENDING, render_attempts__gte=1).exists()
            return 35 <= done < INSTANCES - 5 and started and broker.hlen(unacked) > 0

        wait_until(rendering_some, timeout=180, message="the worker rendering")
        children = _descendants(prefork_worker.pid)
        assert len(children) >= 3, children  # two pool processes and beat
        os.kill(prefork_worker.pid, signal.SIGKILL)
        prefork_worker.process.wait(10)
        killed_at = time.monotonic()

        while [pid for pid in children if _running(pid)] and time.monotonic() - killed_at < CHILDREN_DEADLINE:
            time.sleep(0.05)
        survivors = [pid for pid in children if _running(pid)]
        assert survivors == [], f"processes of the killed worker outlived it by {CHILDREN_DEADLINE}s"
        children_ended = time.monotonic() - killed_at
        # What the killed worker had taken and not finished is still marked as taken in Redis.
        lost = broker.hlen(unacked)
        assert lost >= 1
        in_hand = set(
            Instance.objects.filter(status=Instance.Status.PENDING, render_attempts__gte=1).values_list("pk", flat=True)
        )
        left = Instance.objects.filter(status=Instance.Status.PENDING).count()

        restarted_at = time.monotonic()
        prefork_worker.start()
        in_hand_done = None
        while time.monotonic() - restarted_at < RESTART_DEADLINE:
            pending = set(Instance.objects.filter(status=Instance.Status.PENDING).values_list("pk", flat=True))
            if in_hand_done is None and not pending & in_hand:
                in_hand_done = time.monotonic() - restarted_at
            if not pending:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - restarted_at

        statuses = list(Instance.objects.values_list("status", flat=True))
        done = statuses.count(Instance.Status.READY)
        print(
            f"\nprocesses of the killed worker ended {children_ended:.2f}s after the kill; "
            f"{lost} message(s) taken at the kill, {len(in_hand)} render(s) in hand, {left} instance(s) left; "
            f"after the restart: renders in hand done in {in_hand_done or float('nan'):.1f}s, "
            f"{done}/{INSTANCES} done in {elapsed:.1f}s"
        )
        assert done == INSTANCES, (statuses, prefork_worker.log_tail())
        assert prefork_worker.stop() == 0
        assert broker.hlen(unacked) == 0
    finally:
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for instance in Instance.objects.all():
            for field in (instance.file, instance.thumbnail):
                if field:
                    default_storage.delete(field.name)


def test_only_messages_whose_takers_lease_is_gone_are_put_back(redis_url):
    """Several workers share the queue: a worker starting up (or looking again) puts back what a
    dead worker took, never what a live one holds, nor what nobody noted taking, nor anything twice."""
    import redis
    from kombu import Connection

    from teleconsult.redelivery import CONFIRM_SECONDS, LEASE_PREFIX, TAKERS_KEY, Keeper
    from tests.servers import unique_prefix, wait_until

    prefix = f"{unique_prefix('redelivery')}:"
    broker = redis.Redis.from_url(redis_url)
    try:
        with Connection(redis_url, transport_options={"global_keyprefix": prefix}) as connection:
            queue = connection.SimpleQueue("renders")
            for number in range(4):
                queue.put({"number": number})
            taken = [queue.get(timeout=5) for _ in range(4)]
            assert broker.llen(f"{prefix}renders") == 0
            alive, dead, starting = (Keeper(queue.channel, f"{LEASE_PREFIX}{name}-{prefix}") for name in "ADS")
            for keeper in (alive, dead, starting):
                keeper.take_lease()
            alive.note(taken[0].delivery_tag)
            alive.note(taken[1].delivery_tag)
            dead.note(taken[2].delivery_tag)  # taken[3]: its taker died before noting it
            taken[1].ack()
            # The dead worker's process is gone: the kernel closes its connections.
            dead.lease.connection.disconnect()
            wait_until(lambda: dead.name not in {c["name"] for c in broker.client_list()}, message="lease dropped")

            # One round sees the lease missing; only a later one, CONFIRM_SECONDS on, puts back.
            assert starting.rescue() == 0
            assert broker.llen(f"{prefix}renders") == 0
            starting.missing_since = {name: since - CONFIRM_SECONDS for name, since in starting.missing_since.items()}
            assert starting.rescue() == 1

            assert broker.llen(f"{prefix}renders") == 1
            again = queue.get(timeout=5)
            assert again.payload == {"number": 2}
            assert again.delivery_info["redelivered"] is True
            held = {tag.decode() for tag in broker.hkeys(f"{prefix}unacked")}
            assert held == {taken[0].delivery_tag, taken[3].delivery_tag, again.delivery_tag}
            # Notes of acknowledged and put-back messages are gone; the live worker's stays.
            assert broker.hgetall(f"{prefix}{TAKERS_KEY}") == {taken[0].delivery_tag.encode(): alive.name.encode()}
            assert starting.rescue() == 0
            assert broker.llen(f"{prefix}renders") == 0
            # A live worker whose lease is gone for a moment (Redis restarted) is not taken for dead.
            alive.lease.connection.disconnect()
            wait_until(lambda: alive.name not in {c["name"] for c in broker.client_list()}, message="lease dropped")
            assert starting.rescue() == 0
            alive.take_lease()  # its next round names its connection again
            starting.missing_since = {name: since - CONFIRM_SECONDS for name, since in starting.missing_since.items()}
            assert starting.rescue() == 0
            assert taken[0].delivery_tag.encode() in broker.hkeys(f"{prefix}unacked")
            for keeper in (alive, starting):
                keeper.lease.connection.disconnect()
    finally:
        keys = list(broker.scan_iter(match=f"{prefix}*"))
        if keys:
            broker.delete(*keys)
