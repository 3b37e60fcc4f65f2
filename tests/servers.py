"""Real processes for integration and end-to-end tests: daphne servers, Celery workers, a mail outbox.

Each process runs the production settings module (``teleconsult.settings``) with an environment
that points it at the database pytest-django created, so rows a test commits (``transactional_db``)
are what the server sees. Emails go to files the test reads through :class:`Outbox`.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "var" / "test" / "logs"
START_TIMEOUT = 90.0  # two shared cores and several engineers: a cold start can be slow
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# What the file backend writes between two messages.
MESSAGE_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the connection settings Django is using right now (the test database)."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError("The test database must be a file for other processes to share it (tests/settings.py).")
        return f"sqlite:///{Path(name).resolve()}"
    if engine in {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}:
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "localhost"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"
    raise RuntimeError(f"No DATABASE_URL form for the {engine} engine.")


def unique_prefix(label: str = "test") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


class Outbox:
    """The messages Django's file email backend wrote into one directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def messages(self) -> list[EmailMessage]:
        found = []
        for file in sorted(self.path.glob("*.log"), key=lambda p: p.stat().st_mtime_ns):
            for chunk in file.read_bytes().split(MESSAGE_SEPARATOR):
                if chunk.strip():
                    found.append(email.message_from_bytes(chunk, policy=email.policy.default))
        return found

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if address.lower() in str(m["To"]).lower()]

    def wait_for(self, address: str, *, subject: str = "", count: int = 1, timeout: float = 30.0) -> EmailMessage:
        """The latest message to ``address`` whose subject contains ``subject``, once ``count`` exist."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [m for m in self.to(address) if subject.lower() in str(m["Subject"]).lower()]
            if len(matching) >= count:
                return matching[-1]
            if time.monotonic() > deadline:
                seen = [(str(m["To"]), str(m["Subject"])) for m in self.messages()]
                raise AssertionError(f"No email to {address} with {subject!r} in {timeout}s; outbox has {seen}")
            time.sleep(0.2)

    @staticmethod
    def text(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""

    @classmethod
    def links(cls, message: EmailMessage) -> list[str]:
        return re.findall(r"https?://[^\s<>\"']+", cls.text(message))


class ServiceProcess:
    """One child process with its own log file; started, checked, stopped, killed or restarted."""

    name = "process"

    def __init__(self, argv: list[str], env: dict[str, str], label: str) -> None:
        self.argv = argv
        self.env = env
        self.label = label
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{label}.log"
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> ServiceProcess:
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(self.argv)}\n".encode())
            log.flush()
            # Its own session, so stopping it never signals the test run itself.
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait_ready()
        return self

    def is_ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if not self.running:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.label} was not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask it to finish (SIGTERM: daphne closes connections, a worker finishes its task)."""
        if not self.running:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """Die at once, as a crashed or OOM-killed process would."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        return self.process.returncode if self.process else None

    def restart(self) -> ServiceProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


class DaphneProcess(ServiceProcess):
    """daphne as the portal is served (``python -m teleconsult.serve``: the server's start-up, then
    daphne) on a loopback port; ``options`` are more of daphne's options (``--proxy-headers``...)."""

    def __init__(self, port: int, env: dict[str, str], label: str, options: Sequence[str] = ()) -> None:
        self.port = port
        argv = [sys.executable, "-m", "teleconsult.serve", "-b", "127.0.0.1", "-p", str(port), *options]
        super().__init__(argv, env, label)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        # Start-up and the application come before daphne listens: an open port means it can serve.
        return port_answers(self.port)

    def stop(self, timeout: float = 15.0) -> int | None:
        code = super().stop(timeout)
        deadline = time.monotonic() + timeout
        while port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return code


class CeleryWorkerProcess(ServiceProcess):
    def __init__(self, queue: str, env: dict[str, str], label: str, *, beat: bool = False) -> None:
        self.queue = queue
        self.hostname = f"{label}@%h"
        argv = [str(BIN / "celery"), "-A", "teleconsult", "worker", "--pool", "solo", "--loglevel", "INFO"]
        argv += ["-Q", queue, "-n", self.hostname, "--without-gossip", "--without-mingle"]
        if beat:
            argv += ["--beat", "--schedule", str(LOG_DIR / f"{label}-beat-schedule")]
        super().__init__(argv, env, label)

    def is_ready(self) -> bool:
        return f"{self.label}@" in self.log() and " ready." in self.log()

    def start(self, *, wait: bool = True) -> ServiceProcess:
        # Only this start's lines count when deciding whether it is ready.
        if self.log_path.exists():
            self.log_path.unlink()
        return super().start(wait=wait)


class ServiceEnvironment:
    """The environment shared by every process started for one test (or one session).

    ``redis_url`` given: processes share Redis with their own channel-layer and Celery key prefix,
    so parallel runs and earlier tests never see each other's messages. Not given: each process is
    on its own (in-memory channel layer, Celery tasks run in the process that queues them).
    """

    def __init__(
        self,
        *,
        database_url: str,
        data_dir: Path,
        outbox: Outbox,
        redis_url: str | None = None,
        mfa_required: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = Path(data_dir)
        self.outbox = outbox
        self.redis_url = redis_url
        self.prefix = unique_prefix()
        self.mfa_required = mfa_required
        self.extra = dict(extra or {})

    @property
    def celery_key_prefix(self) -> str:
        return f"{self.prefix}:"

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_ALLOW_ASYNC"))}
        for name in (
            "REDIS_URL",
            "CHANNELS_PREFIX",
            "CELERY_KEY_PREFIX",
            "CACHE_KEY_PREFIX",
            "TELECONSULT_REDIS_PREFIX",
            "EMAIL_HOST",
        ):
            env.pop(name, None)
        env.update(
            DJANGO_SETTINGS_MODULE="teleconsult.settings",
            PYTHONUNBUFFERED="1",
            DEBUG="1",
            TELECONSULT_MFA_REQUIRED="1" if self.mfa_required else "0",
            TELECONSULT_DATA_DIR=str(self.data_dir),
            DATABASE_URL=self.database_url,
            EMAIL_BACKEND=FILE_BACKEND,
            EMAIL_FILE_PATH=str(self.outbox.path),
            LOG_LEVEL="WARNING",
            # Uploads are checked in the daphne itself unless a test asks for checking processes.
            TELECONSULT_INGEST_PROCESSES="0",
        )
        if self.redis_url:
            env.update(
                REDIS_URL=self.redis_url,
                CHANNELS_PREFIX=self.prefix,
                CELERY_KEY_PREFIX=self.celery_key_prefix,
                CACHE_KEY_PREFIX=self.prefix,
                TELECONSULT_REDIS_PREFIX=self.prefix,
            )
        env.update(self.extra)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


class ProcessFactory:
    """Starts daphne servers and Celery workers in one :class:`ServiceEnvironment`; stops them all."""

    def __init__(self, environment: ServiceEnvironment, label: str = "test") -> None:
        self.environment = environment
        self.label = label
        self.started: list[ServiceProcess] = []

    def daphne(
        self, port: int | None = None, *, wait: bool = True, options: Sequence[str] = (), **env: str | None
    ) -> DaphneProcess:
        port = port or free_port()
        server = DaphneProcess(port, self.environment.env(**env), f"{self.label}-daphne-{port}", options)
        self.started.append(server)
        server.start(wait=wait)
        return server

    def worker(self, queue: str = "celery", *, beat: bool = False, wait: bool = True, **env: str | None):
        worker = CeleryWorkerProcess(
            queue, self.environment.env(**env), f"{self.label}-worker-{len(self.started)}", beat=beat
        )
        self.started.append(worker)
        worker.start(wait=wait)
        return worker

    def stop_all(self) -> None:
        # Signal every process first, then wait: they shut down side by side.
        for process in self.started:
            if process.running:
                process.process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            process.stop()
        self.started.clear()


def wait_until(condition: Callable[[], object], timeout: float = 10.0, message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s")
        time.sleep(0.1)


def server_password_hash(password: str) -> str:
    """A password hash the real servers accept (the unit tests' fast MD5 hasher is not in their list).

    Few iterations keep it fast; the server upgrades the hash the first time the person signs in.
    """
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt(), iterations=1000)
