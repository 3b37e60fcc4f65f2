"""Test settings: the real settings module, with a development environment and fast hashing."""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("TELECONSULT_MFA_REQUIRED", "0")
os.environ.setdefault("TELECONSULT_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test"))

# `make test` runs the suite in parallel processes (pytest-xdist, "gw0", "gw1", ...). Each has its own
# test database (pytest-django adds the worker's name), and here its own files and Redis key prefix,
# which the daphne and Celery processes it starts inherit: no worker sees another's rows, files,
# queued tasks, channel groups or counters.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER and not os.environ.get("TELECONSULT_TEST_WORKER_ISOLATED"):
    os.environ["TELECONSULT_TEST_WORKER_ISOLATED"] = WORKER
    os.environ["TELECONSULT_DATA_DIR"] = os.path.join(os.environ["TELECONSULT_DATA_DIR"], WORKER)
    os.environ["TELECONSULT_REDIS_PREFIX"] = f"{os.environ.get('TELECONSULT_REDIS_PREFIX') or 'teleconsult'}-{WORKER}"

from teleconsult.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

# Unit tests run background work in-process and keep throttling counters and channel groups per
# test process; tests/integration starts real workers and daphne processes on REDIS_URL instead.
CELERY_TASK_ALWAYS_EAGER = True
# Files are checked in the test process; tests/studies/test_ingest_processes.py turns the checking
# processes on. The daphnes of tests/integration and tests/e2e check in the daphne too
# (tests/servers.py), but for the STOW-RS integration test, which runs two checking processes.
TELECONSULT_INGEST_PROCESSES = 0
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# A file, not memory, for the SQLite test database: the daphne and Celery processes that
# tests/integration and tests/e2e start must open the same database as the test itself.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test run: several runs in one checkout must not share (and delete) it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
