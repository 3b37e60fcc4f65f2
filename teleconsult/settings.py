"""Settings for teleconsult, read from environment variables only.

Defaults are the embedded setup (`make run` on a fresh machine): SQLite and media under
``TELECONSULT_DATA_DIR``, an in-memory channel layer and Celery tasks run in-process.
Production sets ``DEBUG=0`` and must then provide ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from accounts.oidc import provider_origins, providers_from_environment, socialaccount_apps
from teleconsult.client_address import trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    """A string from ``NAME`` or, for secrets, from the file named by ``NAME_FILE``."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if DEBUG:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-do-not-use-in-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]
else:
    missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not value]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off, so {' and '.join(missing)} must be set in the environment (see README, 'Environment')."
        )

DATA_DIR = Path(env_str("TELECONSULT_DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
REDIS_URL = env_str("REDIS_URL") or ""
# Keys of this deployment in a shared Redis start with this (cache, channel layer, Celery, presence).
REDIS_PREFIX = env_str("TELECONSULT_REDIS_PREFIX") or "teleconsult"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    # Signing in with the hospital's identity providers (OpenID Connect; accounts/oidc.py).
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "accounts",
    "studies",
    "consultations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "teleconsult.responses.head_without_streamed_body",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Cache-Control: private, no-store on every answer but static files (patient data everywhere).
    "teleconsult.privacy.NoStoreMiddleware",
    # 503 + Retry-After instead of 500 when the database cannot be reached: outside every
    # middleware that reads the database, inside those that add headers to every answer.
    "teleconsult.database.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "teleconsult.links.ServedAddressMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.timezones.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.RequireMFAMiddleware",
    "teleconsult.errors.PortalErrorMiddleware",
]

ROOT_URLCONF = "teleconsult.urls"
ASGI_APPLICATION = "teleconsult.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "teleconsult.context_processors.navigation",
            ],
            # {{ value|when }} and {{ value|day }} in every template: one time format everywhere.
            "builtins": ["accounts.templatetags.times", "studies.templatetags.words"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'teleconsult.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        # A connection the server closed while it sat idle (restart, failover, terminated backend)
        # is replaced, not handed to a request: Django passes psycopg_pool's check_connection to
        # the pool, and checks a kept connection at the start of a request without the pool.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
    # A pool per process: ASGI code hops between threads, so persistent connections would be
    # opened per request; a pool reuses them (Django's psycopg pool support).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
        "timeout": 30,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_SERVER_SIDE_BINDING", True):
    # Parameters travel apart from the SQL instead of being quoted into it by the client, which
    # for the metadata of a batch of instances is most of the insert's cost. psycopg prepares a
    # statement run often: behind a transaction-mode pooler (pgbouncer), turn this off.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several writers (daphne, worker, import) share one file: wait instead of failing. A
    # transaction takes the write lock when it begins (IMMEDIATE), so one that reads first and then
    # writes waits its turn instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Deployments (or test runs) sharing one Redis database keep their keys apart.
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX") or REDIS_PREFIX,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env_str("CHANNELS_PREFIX") or REDIS_PREFIX,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# Sessions end after a while idle (every request renews the cookie) and when the browser closes.
SESSION_COOKIE_AGE = env_int("TELECONSULT_SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
# Django's database sessions, but a session save that loses its connection is a 503, not a 400.
SESSION_ENGINE = "teleconsult.sessions"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# django-allauth: email is the login, verified before use.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[teleconsult] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = "teleconsult"
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
TELECONSULT_MFA_REQUIRED = env_bool("TELECONSULT_MFA_REQUIRED", not DEBUG)

# Identity providers (OpenID Connect): TELECONSULT_OIDC_PROVIDERS=hospital,clinic and, per provider,
# TELECONSULT_OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET_FILE, _PRACTICE, _ROLE, _EMAIL_DOMAINS,
# _NAME, _AUDIENCE (docs/identity-providers.md). Checked here: a bad value stops start-up.
TELECONSULT_OIDC_PROVIDERS = providers_from_environment(debug=DEBUG)
SOCIALACCOUNT_ADAPTER = "accounts.social_adapter.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": socialaccount_apps(TELECONSULT_OIDC_PROVIDERS)}}
# An account is found by the address the provider verified (within its email domains), and
# connected to that provider from then on; sign-up from a provider needs no form.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_REQUIRED = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_ONLY = False

# Email: console in development, SMTP from the environment otherwise.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "teleconsult <noreply@localhost>"
EMAIL_HOST = env_str("EMAIL_HOST") or ""
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    # Development and demo: emails are printed to the console of the server (or go where
    # EMAIL_BACKEND says, e.g. the file backend the end-to-end tests read).
    EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or str(DATA_DIR / "mail")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerlessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "teleconsult.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "teleconsult API",
    "DESCRIPTION": "Imaging second-opinion consultations: studies, consults, reports, sharing.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
}
# Failed token requests before 429, per account and per client address, in a sliding window.
TELECONSULT_TOKEN_FAILURE_LIMIT = env_int("TELECONSULT_TOKEN_FAILURE_LIMIT", 10)
TELECONSULT_TOKEN_FAILURE_WINDOW = env_int("TELECONSULT_TOKEN_FAILURE_WINDOW_SECONDS", 15 * 60)
# The reverse proxies whose X-Forwarded-For is believed: none (empty), a hop count, or their
# addresses and CIDR ranges (teleconsult/client_address.py). A bad value stops start-up.
TELECONSULT_TRUSTED_PROXIES = env_str("TELECONSULT_TRUSTED_PROXIES", "") or ""
trusted_proxies(TELECONSULT_TRUSTED_PROXIES)

# Celery: with REDIS_URL a real broker; without, tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Only the last resort for a task whose taker died: the tasks of a dead worker are put back as
    # soon as its Redis lease is gone (teleconsult.redelivery). It must stay above the longest task
    # and countdown (emails back off up to 10 min), or live workers' tasks would be handed out twice.
    "visibility_timeout": 3600,
    "global_keyprefix": env_str("CELERY_KEY_PREFIX") or f"{REDIS_PREFIX}:",
}
CELERY_BEAT_SCHEDULE: dict = {}
# Tasks outside the apps' tasks modules: outgoing email (retried, logged when it fails for good).
CELERY_IMPORTS = ["teleconsult.mail"]
# Safety net for thumbnails whose render message was lost: queue what waits too long.
CELERY_BEAT_SCHEDULE["render-pending-thumbnails"] = {"task": "studies.tasks.render_pending", "schedule": 300.0}
# Expired sessions are deleted every minute, which also closes the WebSockets opened with them.
CELERY_BEAT_SCHEDULE["end-expired-sessions"] = {"task": "accounts.tasks.end_expired_sessions", "schedule": 60.0}

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "teleconsult.storage.StaticFilesStorage"
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to temporary files
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Content-Security-Policy: our own origin only, no inline script anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'", "ws:", "wss:"] if DEBUG else ["'self'", "wss:"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "worker-src": ["'self'", "blob:"],
    }
}
# The identity providers' buttons post to the portal, which sends the browser on to the provider.
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += provider_origins(TELECONSULT_OIDC_PROVIDERS)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    if env_bool("TELECONSULT_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# DICOMweb transcoding (studies/dicomweb/transcode.py): an instance whose decoded pixel data would
# be larger than this is not transcoded (it is still sent as stored, with transfer-syntax=*).
TELECONSULT_MAX_DECODED_BYTES = env_int("TELECONSULT_MAX_DECODED_BYTES", 2 * 1024**3)
if TELECONSULT_MAX_DECODED_BYTES < 1:
    raise ImproperlyConfigured("TELECONSULT_MAX_DECODED_BYTES must be a positive number of bytes")

# CORS for external DICOMweb viewers: off unless origins are given.
CORS_ALLOWED_ORIGINS = env_list("TELECONSULT_CORS_ORIGINS")
CORS_URLS_REGEX = r"^/dicomweb/.*$"
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type"]
CORS_EXPOSE_HEADERS = ["Warning"]  # QIDO-RS says why an answer is partial or not fuzzy-matched

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# Ingest limits (bytes and counts); a file or request over a limit is refused with the reason.
TELECONSULT_MAX_FILE_SIZE = env_int("TELECONSULT_MAX_FILE_SIZE", 2 * 1024**3)
TELECONSULT_MAX_REQUEST_SIZE = env_int("TELECONSULT_MAX_REQUEST_SIZE", 4 * 1024**3)
# Processes that check and read the files of one upload side by side (0 or 1: in the serving process);
# by default one per CPU this process may run on, up to 4.
_USABLE_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
TELECONSULT_INGEST_PROCESSES = env_int("TELECONSULT_INGEST_PROCESSES", min(4, _USABLE_CPUS))
TELECONSULT_ZIP_MAX_ENTRIES = env_int("TELECONSULT_ZIP_MAX_ENTRIES", 20000)
TELECONSULT_ZIP_MAX_UNCOMPRESSED = env_int("TELECONSULT_ZIP_MAX_UNCOMPRESSED", 8 * 1024**3)
TELECONSULT_ZIP_MAX_RATIO = env_int("TELECONSULT_ZIP_MAX_RATIO", 200)
# Stored files no row refers to (left by a server killed between storing an upload's files and
# committing their rows) are removed daily once older than this many hours (manage.py sweep_files):
# longer than any upload's rows take to be written.
TELECONSULT_SWEEP_GRACE_HOURS = env_int("TELECONSULT_SWEEP_GRACE_HOURS", 24)
if TELECONSULT_SWEEP_GRACE_HOURS < 0:
    raise ImproperlyConfigured(f"TELECONSULT_SWEEP_GRACE_HOURS must be 0 or more, not {TELECONSULT_SWEEP_GRACE_HOURS}")
CELERY_BEAT_SCHEDULE["sweep-unreferenced-files"] = {"task": "studies.tasks.sweep_files", "schedule": 24 * 3600.0}

# Consult SLA: minutes from submission to the due time per priority, the share of the window
# after which the assignee (or the pool) is warned, and the beat task that checks every minute.
TELECONSULT_SLA_MINUTES = {
    "stat": env_int("TELECONSULT_SLA_STAT_MINUTES", 60),
    "urgent": env_int("TELECONSULT_SLA_URGENT_MINUTES", 4 * 60),
    "routine": env_int("TELECONSULT_SLA_ROUTINE_MINUTES", 48 * 60),
}
TELECONSULT_SLA_WARNING_FRACTION = 0.75
CELERY_BEAT_SCHEDULE["consult-sla"] = {"task": "consultations.tasks.check_sla", "schedule": 60.0}
# Consult attachments (PDF, PNG, JPEG), checked by content.
TELECONSULT_ATTACHMENT_MAX_SIZE = env_int("TELECONSULT_ATTACHMENT_MAX_SIZE", 20 * 1024**2)

# No "remember me": a sign-in never outlives the browser session (allauth would otherwise set a
# persistent cookie when the box is ticked).
ACCOUNT_SESSION_REMEMBER = False

# Live consult room: frames per second per connection (laser-pointer frames have their own
# budget), presence expiry (a dead server's connections vanish after this many seconds), and how
# long the last shared view is kept for late joiners.
TELECONSULT_ROOM_FRAMES_PER_SECOND = env_int("TELECONSULT_ROOM_FRAMES_PER_SECOND", 20)
TELECONSULT_ROOM_POINTER_PER_SECOND = env_int("TELECONSULT_ROOM_POINTER_PER_SECOND", 40)
TELECONSULT_PRESENCE_TTL = env_int("TELECONSULT_PRESENCE_TTL_SECONDS", 30)
TELECONSULT_ROOM_STATE_TTL = env_int("TELECONSULT_ROOM_STATE_TTL_SECONDS", 7 * 24 * 3600)
# Absolute address of the portal for links in emails (no trailing slash). Unset: the address the
# request was served at, and with DEBUG the last one for emails sent by tasks (teleconsult/links.py).
TELECONSULT_BASE_URL = (env_str("TELECONSULT_BASE_URL") or "").rstrip("/")
# A chat message to someone not in the room is a notification at once and, still unread this many
# minutes later, one email for all their unread consult chats (the beat task looks every minute).
TELECONSULT_CHAT_EMAIL_DELAY_MINUTES = env_int("TELECONSULT_CHAT_EMAIL_DELAY_MINUTES", 5)
CELERY_BEAT_SCHEDULE["unread-chat-email"] = {"task": "consultations.tasks.email_unread_messages", "schedule": 60.0}
# A signed report (or addendum) reaches the patient this many minutes after signing, so the
# referring physician reads it first; the beat task looks every minute for reports due (a wait in
# the database, not a countdown that could outlive the broker's visibility timeout).
TELECONSULT_REPORT_RELEASE_DELAY_MINUTES = env_int("TELECONSULT_REPORT_RELEASE_DELAY_MINUTES", 0)
if not 0 <= TELECONSULT_REPORT_RELEASE_DELAY_MINUTES <= 30 * 24 * 60:
    raise ImproperlyConfigured(
        "TELECONSULT_REPORT_RELEASE_DELAY_MINUTES must be between 0 and 43200 (30 days), "
        f"not {TELECONSULT_REPORT_RELEASE_DELAY_MINUTES}"
    )
CELERY_BEAT_SCHEDULE["release-reports"] = {"task": "consultations.tasks.release_reports", "schedule": 60.0}

# Largest phone photo or PDF added to a study, and how long frame/thumbnail fetches of one viewer
# are summarised into one access-history event.
TELECONSULT_MAX_PHOTO_SIZE = env_int("TELECONSULT_MAX_PHOTO_SIZE", 30 * 1024 * 1024)
TELECONSULT_AUDIT_SUMMARY_MINUTES = env_int("TELECONSULT_AUDIT_SUMMARY_MINUTES", 30)

# How long a patient invitation email may link the record it was sent for.
TELECONSULT_INVITATION_DAYS = env_int("TELECONSULT_INVITATION_DAYS", 14)
if not 1 <= TELECONSULT_INVITATION_DAYS <= 3650:
    raise ImproperlyConfigured(
        f"TELECONSULT_INVITATION_DAYS must be between 1 and 3650, not {TELECONSULT_INVITATION_DAYS}"
    )

# Specialists' licences (accounts/licences.py). With the rule on, consults are offered to, and may
# be claimed by, only specialists holding a verified licence for the consult's jurisdiction that has
# not expired that day; off (the default with DEBUG, for demo data), the profile's jurisdictions decide.
TELECONSULT_LICENCE_RULE = env_bool("TELECONSULT_LICENCE_RULE", not DEBUG)
TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE = env_int("TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE", 10 * 1024 * 1024)
TELECONSULT_LICENCE_REMINDER_DAYS = env_int("TELECONSULT_LICENCE_REMINDER_DAYS", 30)
CELERY_IMPORTS = [*CELERY_IMPORTS, "consultations.licence_reminders"]
CELERY_BEAT_SCHEDULE["licence-expiry-reminders"] = {
    "task": "consultations.licence_reminders.remind_expiring_licences",
    "schedule": 24 * 3600.0,
}

# The DICOM receiver (manage.py dicom_scp, studies/dimse/): its AE title, the address and port it
# listens on, how many associations it serves at once, and DICOM TLS (a certificate and key; with a
# CA, senders must show a client certificate it issued). docs/dimse.md, docs/operations.md.
TELECONSULT_AE_TITLE = (env_str("TELECONSULT_AE_TITLE") or "TELECONSULT").strip()
if not 1 <= len(TELECONSULT_AE_TITLE) <= 16 or "\\" in TELECONSULT_AE_TITLE or not TELECONSULT_AE_TITLE.isprintable():
    raise ImproperlyConfigured(
        f"TELECONSULT_AE_TITLE must be 1 to 16 printable characters without backslash, not {TELECONSULT_AE_TITLE!r}"
    )
# Senders are other machines (only registered nodes are accepted); `make run` listens on loopback.
TELECONSULT_DIMSE_BIND = env_str("TELECONSULT_DIMSE_BIND") or "0.0.0.0"  # noqa: S104
TELECONSULT_DIMSE_PORT = env_int("TELECONSULT_DIMSE_PORT", 11112)
TELECONSULT_DIMSE_MAX_ASSOCIATIONS = env_int("TELECONSULT_DIMSE_MAX_ASSOCIATIONS", 32)
TELECONSULT_DIMSE_TLS_CERT = env_str("TELECONSULT_DIMSE_TLS_CERT") or ""
TELECONSULT_DIMSE_TLS_KEY = env_str("TELECONSULT_DIMSE_TLS_KEY") or ""
TELECONSULT_DIMSE_TLS_CA = env_str("TELECONSULT_DIMSE_TLS_CA") or ""
if bool(TELECONSULT_DIMSE_TLS_CERT) != bool(TELECONSULT_DIMSE_TLS_KEY):
    raise ImproperlyConfigured("DICOM TLS needs both TELECONSULT_DIMSE_TLS_CERT and TELECONSULT_DIMSE_TLS_KEY")
# Results sent back to a node (studies/sending.py): the first wait before a failed C-STORE is tried
# again, doubling for each try (8 tries, each wait capped at 30 minutes, below the visibility timeout).
TELECONSULT_RESULTS_RETRY_SECONDS = env_int("TELECONSULT_RESULTS_RETRY_SECONDS", 30)
if not 1 <= TELECONSULT_RESULTS_RETRY_SECONDS <= 30 * 60:
    raise ImproperlyConfigured(
        f"TELECONSULT_RESULTS_RETRY_SECONDS must be from 1 to 1800, not {TELECONSULT_RESULTS_RETRY_SECONDS}"
    )

# Webhooks (consultations/webhooks/, docs/webhooks.md): targets must resolve to public addresses,
# but for the networks listed here (CIDR, comma-separated, e.g. an on-premises receiver's);
# http:// is accepted with DEBUG, or to loopback with the second switch (tests). A subscription is
# paused when this many deliveries in a row fail every try, or deliveries have failed this long.
TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = env_list("TELECONSULT_WEBHOOK_ALLOWED_NETWORKS", [])
TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK", False)
# Seconds a webhook host's name may take to resolve when its URL is checked (getaddrinfo has no limit).
TELECONSULT_WEBHOOK_DNS_TIMEOUT = env_int("TELECONSULT_WEBHOOK_DNS_TIMEOUT", 5)
if not 1 <= TELECONSULT_WEBHOOK_DNS_TIMEOUT <= 60:
    raise ImproperlyConfigured(
        f"TELECONSULT_WEBHOOK_DNS_TIMEOUT must be from 1 to 60 seconds, not {TELECONSULT_WEBHOOK_DNS_TIMEOUT}"
    )
TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES = env_int("TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES", 10)
TELECONSULT_WEBHOOK_PAUSE_AFTER_HOURS = env_int("TELECONSULT_WEBHOOK_PAUSE_AFTER_HOURS", 24)
CELERY_IMPORTS = [*CELERY_IMPORTS, "consultations.webhooks.tasks"]
