"""Messages a worker took before it died are delivered again as soon as it is known to be dead.

Tasks are acknowledged late (teleconsult.celery), so with Redis kombu keeps each message a worker
takes in its ``unacked`` hash until the task ends. A worker that stops in an orderly way puts back
what it holds; one killed outright (kill -9, the out-of-memory killer) cannot, and kombu puts its
messages back only once they are older than the visibility timeout (an hour), so the renders it
had in hand waited for beat's safety net although a restarted worker could do them at once.

So each worker holds a named connection to Redis for as long as it lives, its lease (Redis drops it
the moment the process dies, with the sockets the kernel closes), and notes its lease beside each
message it takes. When a worker starts, and every ``RESCUE_INTERVAL`` seconds after, it puts back
the messages whose taker's lease is gone: at start-up at once (a restarted worker after a crash),
later only once it has been gone for ``CONFIRM_SECONDS`` (missing in two rounds). It does so under
the lock kombu takes to put messages
back itself, so two workers never put one message back twice. A message with no taker noted (taken
by a worker of an older release, or by one killed between taking it and noting it) is left to the
visibility timeout, as is everything when the broker is not Redis or refuses CLIENT commands.

A worker whose lease connection is idle for longer than Redis's ``timeout`` setting would lose it
while alive: the lease is refreshed every ``RESCUE_INTERVAL`` seconds, but not while a solo worker
runs a task, so Redis's ``timeout`` must stay 0 (its default) or above the longest task.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

import redis
from celery import bootsteps
from kombu.transport.redis import Mutex, MutexHeld

logger = logging.getLogger(__name__)

RESCUE_INTERVAL = 10.0
# A taker is dead once its lease has been missing this long: a live worker names its connection
# again at least every RESCUE_INTERVAL (after a Redis restart or a network cut every lease is gone
# for a moment), so one missing lease alone never puts a live worker's tasks back.
CONFIRM_SECONDS = RESCUE_INTERVAL * 1.5
# Beside kombu's ``unacked`` hash (delivery tag -> message): delivery tag -> the taker's lease name.
TAKERS_KEY = "unacked_taker"
LEASE_PREFIX = "celery-worker:"

# The running worker's keeper, for the task_received signal (None until it holds a lease).
_keeper: Keeper | None = None


class Keeper:
    """One worker's lease, its notes of what it took, and the putting back of dead workers' messages."""

    def __init__(self, channel, name: str) -> None:
        self.channel = channel
        self.name = name
        # A client without kombu's key prefixing (it prefixes only some commands): full key names.
        self.client = redis.Redis(connection_pool=channel.pool)
        prefix = channel.global_keyprefix or ""
        self.takers_key = prefix + TAKERS_KEY
        self.unacked_key = prefix + channel.unacked_key
        self.mutex_key = prefix + channel.unacked_mutex_key
        self.lease: redis.Redis | None = None
        self.missing_since: dict[str, float] = {}  # taker -> when its lease was first seen missing

    def take_lease(self) -> None:
        """Hold one connection of the broker's pool, named after this worker, until the process ends."""
        if self.lease is None:
            self.lease = redis.Redis(connection_pool=self.channel.pool, single_connection_client=True)
        # Also renews it: a connection made again after a network error has lost its name.
        if self.lease.client_getname() != self.name:
            self.lease.client_setname(self.name)

    def close_inherited_lease(self) -> None:
        """In a process forked from the worker: close this copy of the lease's socket without ending
        the worker's connection (redis-py shuts a socket down only in the process that opened it)."""
        if self.lease is not None and self.lease.connection is not None:
            self.lease.connection.disconnect()
        self.lease = None

    def note(self, delivery_tag: str) -> None:
        self.client.hset(self.takers_key, delivery_tag, self.name)

    def rescue(self, *, confirm: bool = True) -> int:
        """Put back the messages whose taker is dead; returns how many. ``confirm=False`` (a worker
        starting, the usual moment after a crash) takes a missing lease for a dead taker at once."""
        try:
            self.take_lease()
            with Mutex(self.client, self.mutex_key, self.channel.unacked_mutex_expire):
                return self._rescue(confirm=confirm)
        except MutexHeld:
            return 0  # kombu or another worker is putting messages back: the next round comes soon
        except redis.RedisError as exc:
            logger.warning("Could not look for messages of dead workers: %s", exc)
            return 0

    def _rescue(self, *, confirm: bool = True) -> int:
        # Takers first: a message noted then was in ``unacked`` already, so one missing from the
        # hash read next was acknowledged (or put back), and its note can go.
        takers = {tag.decode(): taker.decode() for tag, taker in self.client.hgetall(self.takers_key).items()}
        held = {tag.decode() for tag in self.client.hkeys(self.unacked_key)}
        alive = {client.get("name") for client in self.client.client_list(_type="normal")}
        now = time.monotonic()
        missing = {taker for tag, taker in takers.items() if tag in held and taker not in alive}
        self.missing_since = {taker: self.missing_since.get(taker, now) for taker in missing}
        wait = CONFIRM_SECONDS if confirm else 0.0
        dead = {taker for taker, since in self.missing_since.items() if now - since >= wait}
        orphans = [tag for tag, taker in takers.items() if tag in held and taker in dead]
        for tag in orphans:
            self.channel.qos.restore_by_tag(tag)
        done = [tag for tag in takers if tag not in held]
        if orphans or done:
            self.client.hdel(self.takers_key, *orphans, *done)
        if orphans:
            logger.warning("Put back %d message(s) taken by workers that died", len(orphans))
        return len(orphans)


class Redelivery(bootsteps.StartStopStep):
    """Consumer step: take the lease, then put back dead workers' messages now and every few seconds."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs) -> None:
        super().__init__(c, **kwargs)
        self.name = f"{LEASE_PREFIX}{c.hostname}:{uuid.uuid4().hex[:12]}"
        self.timer = None

    def start(self, c) -> None:
        global _keeper
        channel = c.task_consumer.channel
        if not getattr(channel, "ack_emulation", False) or not hasattr(channel.qos, "restore_by_tag"):
            return  # not kombu's Redis transport: its broker redelivers, or the visibility timeout does
        keeper = Keeper(channel, self.name)
        try:
            keeper.take_lease()
        except redis.RedisError as exc:
            logger.warning("No worker lease (%s): messages of a killed worker wait for the visibility timeout", exc)
            return
        _keeper = keeper
        keeper.rescue(confirm=False)
        self.timer = c.timer.call_repeatedly(RESCUE_INTERVAL, keeper.rescue)

    def stop(self, c) -> None:
        # The lease itself is kept until the process ends: a worker shutting down still finishes
        # (and acknowledges) the tasks it holds, which nobody else must take meanwhile.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    shutdown = stop


def note_taken(sender=None, request=None, **_kwargs) -> None:
    """``task_received``, in the worker's main process: note this worker as the message's taker."""
    keeper = _keeper
    if keeper is None or request is None:
        return
    try:
        keeper.note(request.message.delivery_tag)
    except redis.RedisError as exc:
        logger.warning("Could not note the taker of a message: %s", exc)


def forget_lease(**_kwargs) -> None:
    """``worker_process_init``: a pool process forked after the lease was taken (one replacing a
    process that ended) holds a copy of its socket, which would keep the lease alive after the
    worker died. The solo pool sends the signal in the worker itself, which keeps its lease."""
    global _keeper
    keeper = _keeper
    if keeper is None or keeper.lease is None or keeper.lease.connection is None:
        return
    if keeper.lease.connection.pid != os.getpid():
        keeper.close_inherited_lease()
        _keeper = None
