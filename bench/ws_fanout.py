"""Consult room fan-out: 50 clients in one consult over 2 daphne processes sharing Redis.

Senders post chat messages at a steady rate (each within the per-connection frame budget); every
client receives every message. Prints p50/p95/max delivery latency (send to receipt, same clock)
and how many deliveries were lost. Needs Redis; uses a scratch PostgreSQL database when one is
reachable (``--database-url``, default the local server), else SQLite.

    .venv/bin/python -m bench.ws_fanout [--clients 50] [--messages 10000] [--rate 100]

Target (issue 5): p95 at most 50 ms and none lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from bench import harness

P95_TARGET_MS = 50.0
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/teleconsult_bench_ws"
SENDERS = 10


def populate(clients: int) -> tuple[int, list[str]]:
    """One accepted consult whose care team is ``clients`` people; their API tokens."""
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import Organization, PhysicianProfile, SpecialistProfile, User
    from consultations.models import ConsultParticipant, ConsultRequest, State
    from studies.models import Patient, Study

    requester = User.objects.create_user("bench-requester@example.com", None, role="physician", name="Requester")
    PhysicianProfile.objects.create(user=requester, institution="Bench Hospital")
    specialist = User.objects.create_user("bench-specialist@example.com", None, role="specialist", name="Reader")
    SpecialistProfile.objects.create(user=specialist, approved_at=timezone.now())
    practice = Organization.objects.create(name="Bench Hospital")
    practice.add_member(requester)
    Organization.objects.create(name="Bench Reading Group").add_member(specialist)
    patient = Patient.objects.create(practice=practice, patient_id="BENCH", name="Bench^Patient")
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.1", practice=practice, patient=patient)
    consult = ConsultRequest.objects.create(
        study=study,
        requester=requester,
        assignee=specialist,
        question="Fan-out benchmark",
        jurisdiction="DE",
        state=State.ACCEPTED,
        submitted_at=timezone.now(),
        accepted_at=timezone.now(),
        due_at=timezone.now() + timezone.timedelta(hours=4),
    )
    team = [requester, specialist]
    for i in range(clients - 2):
        colleague = User.objects.create_user(f"bench-colleague-{i}@example.com", None, role="physician", name=f"C{i}")
        ConsultParticipant.objects.create(consult=consult, user=colleague, added_by=requester)
        team.append(colleague)
    return consult.pk, [Token.objects.create(user=user).key for user in team]


async def run_clients(urls: list[str], consult_id: int, tokens: list[str], messages: int, rate: float) -> dict:
    from websockets.asyncio.client import connect

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    received = [0] * len(tokens)
    expected_per_client = messages
    done = asyncio.Event()
    sockets = []

    async def reader(index: int, socket) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") != "chat.message" or not frame.get("client_id", "").startswith("bench-"):
                continue
            start = sent_at.get(frame["client_id"])
            if start is not None:
                latencies.append(time.perf_counter() - start)
            received[index] += 1
            if all(count >= expected_per_client for count in received):
                done.set()

    for i, token in enumerate(tokens):
        url = f"{urls[i % len(urls)]}/ws/consults/{consult_id}/"
        socket = await connect(url, additional_headers={"Authorization": f"Token {token}"}, max_queue=None)
        sockets.append(socket)
    readers = [asyncio.create_task(reader(i, s)) for i, s in enumerate(sockets)]
    await asyncio.sleep(1.0)  # joins settle (history, presence)

    interval = 1.0 / rate
    began = time.perf_counter()
    for n in range(messages):
        target = began + n * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client_id = f"bench-{uuid.uuid4().hex}"
        sent_at[client_id] = time.perf_counter()
        await sockets[n % min(SENDERS, len(sockets))].send(
            json.dumps({"type": "chat.message", "text": f"m{n}", "client_id": client_id})
        )
    send_seconds = time.perf_counter() - began
    # Deliveries still missing after a minute count as lost.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=60)
    for task in readers:
        task.cancel()
    for socket in sockets:
        await socket.close()
    expected = messages * len(tokens)
    return {
        "latencies": latencies,
        "delivered": sum(received),
        "expected": expected,
        "lost": expected - sum(received),
        "send_seconds": send_seconds,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second, all senders together")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/8")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args(argv)
    if args.rate > SENDERS * 20:
        parser.error(f"--rate above {SENDERS * 20}/s would exceed the 20 frames/s budget of the {SENDERS} senders")

    import redis

    try:
        redis.Redis.from_url(args.redis_url).ping()
    except redis.RedisError as exc:
        print(f"ws_fanout: skipped, Redis not reachable at {args.redis_url}: {exc}")
        return 0
    data_dir = tempfile.mkdtemp(prefix="bench-ws-")
    database_url = harness.setup_django(data_dir, args.database_url, redis_url=args.redis_url)
    consult_id, tokens = populate(args.clients)
    factory = harness.process_factory(
        "bench-ws", data_dir=data_dir, database_url=database_url, redis_url=args.redis_url, secret_key="bench-only"
    )
    try:
        servers = [factory.daphne() for _ in range(args.servers)]
        result = asyncio.run(run_clients([s.ws_url for s in servers], consult_id, tokens, args.messages, args.rate))
    finally:
        factory.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)
    lat = [v * 1000 for v in result["latencies"]]
    p50, p95 = percentile(lat, 50), percentile(lat, 95)
    print(
        f"ws_fanout: {args.clients} clients on {args.servers} daphne processes, {args.messages} messages "
        f"at {args.rate:.0f}/s ({result['send_seconds']:.1f} s), {result['delivered']} of {result['expected']} "
        f"deliveries"
    )
    print(
        f"ws_fanout: latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(lat):.1f} ms, "
        f"mean {statistics.fmean(lat):.1f} ms; lost {result['lost']}"
    )
    ok = p95 <= P95_TARGET_MS and result["lost"] == 0
    print(f"ws_fanout: target p95 <= {P95_TARGET_MS:.0f} ms and none lost: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
