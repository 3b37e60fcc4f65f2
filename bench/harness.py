"""What the server benchmarks share: a scratch database, Django set up on it, and the daphne
processes of tests/servers.py started in production mode against it."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scratch_database(url: str | None) -> str | None:
    """Recreate the PostgreSQL database named by ``url``; None when PostgreSQL is not reachable."""
    if not url or not url.startswith("postgres"):
        return url
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return url


def setup_django(data_dir: str, database_url: str | None, *, redis_url: str | None, debug: bool = True) -> str:
    """Django in this process on a migrated scratch database (``database_url`` recreated, or SQLite
    under ``data_dir`` when PostgreSQL is not reachable); ``redis_url`` None leaves Redis out.
    ``debug=False`` runs with production settings (cached templates, no debug bookkeeping), for
    benchmarks that time requests in this process. Returns the database URL used."""
    database_url = scratch_database(database_url) or f"sqlite:///{data_dir}/bench.sqlite3"
    if not debug:
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
        os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    os.environ.update(
        TELECONSULT_DATA_DIR=data_dir,
        DEBUG="1" if debug else "0",
        TELECONSULT_MFA_REQUIRED="0",
        DJANGO_SETTINGS_MODULE="teleconsult.settings",
        DATABASE_URL=database_url,
    )
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if not debug:
        call_command("collectstatic", verbosity=0, interactive=False)
    return database_url


def process_factory(label: str, *, data_dir: str, database_url: str, redis_url: str | None, secret_key: str):
    """A tests.servers ProcessFactory whose processes run with production settings (DEBUG off: no
    query log, no debug wrappers), which is what is measured."""
    sys.path.insert(0, str(ROOT))
    from tests.servers import Outbox, ProcessFactory, ServiceEnvironment

    environment = ServiceEnvironment(
        database_url=database_url,
        data_dir=Path(data_dir),
        outbox=Outbox(Path(data_dir) / "outbox"),
        redis_url=redis_url,
        extra={"LOG_LEVEL": "WARNING", "DEBUG": "0", "SECRET_KEY": secret_key, "ALLOWED_HOSTS": "127.0.0.1,localhost"},
    )
    return ProcessFactory(environment, label=label)


def cpu_seconds(root_pids: list[int], *, database: str | None = None) -> float | None:
    """CPU time (user + system) used so far by the processes ``root_pids`` and all their
    descendants (those that ended too, once their parent reaped them), plus the PostgreSQL
    backends serving ``database`` (those alive: the server's pool keeps them); None where /proc
    is missing.

    Read before and after a timed run, it tells how much work a server did for it, which the
    wall-clock rate alone hides on a busy or shared machine."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    backends: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes() if database else b""
        except OSError:
            continue  # ended meanwhile
        # The command name in parentheses may hold spaces: the fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        # utime, stime, and cutime, cstime: the time of the children it has reaped.
        used[pid] = sum(int(value) for value in fields[11:15]) / ticks
        if database and cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
            backends.add(pid)
    counted = set(backends)
    for pid in parents:
        ancestor = pid
        while ancestor and ancestor not in root_pids:
            ancestor = parents.get(ancestor, 0)
        if ancestor:
            counted.add(pid)
    return sum(used[pid] for pid in counted)
