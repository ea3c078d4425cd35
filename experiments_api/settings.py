"""Settings, read from the environment.

Defaults are the production ones: DEBUG off, HTTPS only, and no start without a SECRET_KEY of the
operator's own. The conveniences of a local demo (DEBUG, a development secret, plain HTTP) are
switched on explicitly, by `make run` or by setting DEBUG=true.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

TRUE_VALUES = {"1", "true", "yes", "on"}


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in TRUE_VALUES


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from error


def env_seconds(name: str, default: float, maximum: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {value!r}") from error
    if not 0 <= seconds <= maximum:
        raise ImproperlyConfigured(f"{name} must be between 0 and {maximum} seconds, got {value!r}")
    return seconds


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEVELOPMENT_SECRET_KEY = "insecure-development-secret-key-change-me"
# Secrets that were ever printed in this repository (settings, docker-compose, docs): anyone can
# sign sessions with them, so they are refused outside DEBUG.
PUBLISHED_SECRET_KEYS = frozenset({DEVELOPMENT_SECRET_KEY, "change-me-to-a-long-random-string"})

DEBUG = env_bool("DEBUG", False)
# Used as given (personal API key digests depend on it); only the checks ignore surrounding blanks.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
SECRET_KEY_IS_USABLE = DEBUG or bool(SECRET_KEY.strip() and SECRET_KEY.strip() not in PUBLISHED_SECRET_KEYS)
if DEBUG and not SECRET_KEY.strip():
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
elif not SECRET_KEY_IS_USABLE:
    # Never used: Django refuses to sign with an empty SECRET_KEY, and experiments_api.secret_key
    # refuses to serve (WSGI/ASGI start, `check --deploy`) or to digest an API key without a usable
    # one. Commands that only read code (makemigrations, showmigrations) still load the settings.
    SECRET_KEY = ""

# Personal API keys are stored as HMAC-SHA256 digests keyed with this secret. It is separate from
# SECRET_KEY so that rotating session signing does not invalidate every API key.
PERSONAL_API_KEY_SECRET = os.environ.get("PERSONAL_API_KEY_SECRET", SECRET_KEY)

# Encrypted flag payloads (remote-config flags with `has_encrypted_payloads`) are Fernet tokens under
# keys derived from these secrets: the first encrypts, every one decrypts, so a secret can rotate by
# being put first while the old one stays listed until payloads are rewritten. Without the setting
# the one secret is SECRET_KEY, which then must not change while encrypted payloads are stored.
FLAG_PAYLOAD_SECRETS = env_list("FLAG_PAYLOAD_SECRETS", [SECRET_KEY] if SECRET_KEY else [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "activity",
    "flags",
    "holdouts",
    "experiments",
    "approvals",
    "events",
    "results",
]

MIDDLEWARE = [
    "experiments_api.middleware.RequestIdMiddleware",
    "experiments_api.middleware.DatabaseUnavailableMiddleware",
    "experiments_api.middleware.RequestBodyLimitMiddleware",
    "experiments_api.middleware.NulCharacterMiddleware",
    "experiments_api.handling.RequestHandlingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Answers the reads that need none of the middleware below (accounts/fast_reads.py).
    "experiments_api.middleware.EarlyAnswerMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "experiments_api.urls"
CSRF_FAILURE_VIEW = "experiments_api.errors.csrf_failure"
# Routes accept paths with and without the trailing slash, so never redirect (a redirect drops bodies).
APPEND_SLASH = False
WSGI_APPLICATION = "experiments_api.wsgi.application"
ASGI_APPLICATION = "experiments_api.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASE_IS_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if DATABASE_IS_POSTGRESQL:
    # The same backend with a health check that looks at the socket instead of sending `SELECT 1`.
    DATABASES["default"]["ENGINE"] = "experiments_api.postgresql"
    # Prepared statements: values are sent apart from the SQL (server-side binding) and a statement
    # run `DATABASE_PREPARE_THRESHOLD` times on a connection is prepared once and then only
    # executed, which halves PostgreSQL's CPU per query. A pooler in transaction mode (PgBouncer
    # before 1.21, or without max_prepared_statements) cannot keep prepared statements: set
    # DATABASE_PREPARED_STATEMENTS=false behind one.
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=env_int("DATABASE_PREPARE_THRESHOLD", 2)
        )

# The results worker's queue lives in PostgreSQL (procrastinate: SKIP LOCKED fetching, periodic
# tasks, queueing locks), so it exists only there; on SQLite recalculations are recorded, not run.
TASK_QUEUE_ENABLED = DATABASE_IS_POSTGRESQL
if TASK_QUEUE_ENABLED:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("results"), "procrastinate.contrib.django")
# Succeeded jobs are removed; failed ones stay, visible in the admin's queue pages.
PROCRASTINATE_WORKER_DEFAULTS = {
    "concurrency": env_int("RESULTS_WORKER_CONCURRENCY", 2),
    "delete_jobs": "successful",
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies larger than this are refused with 413 before any parsing happens.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Event intake (`/batch/` and the other capture paths) takes SDK batches up to this size, compressed
# or decompressed. PostHog's Python SDK caps a batch at 5 MiB plus one event (up to ~6 MiB); its AI
# events can reach 8 MiB each, for which an operator raises the limit. Intake needs only the public
# project token, so the default stays near what SDKs send rather than PostHog's own 20 MiB.
MAX_EVENT_BODY_BYTES = env_int("MAX_EVENT_BODY_BYTES", 8 * 1024 * 1024)
# Intake requests per client address (empty: unlimited). See NUM_PROXIES behind a proxy.
EVENT_INTAKE_RATE = os.environ.get("EVENT_INTAKE_RATE", "1200/minute")
# Longest a results SQL statement may run (0: no limit); below gunicorn's timeout for web requests.
RESULTS_QUERY_TIMEOUT_SECONDS = env_int("RESULTS_QUERY_TIMEOUT_SECONDS", 25)

# Where events are kept for results: `postgres` (the events table of this database) or `clickhouse`
# (CLICKHOUSE_URL: `http(s)://user:password@host:8123/database`, or `chdb:///dir` for chDB in-process).
# With ClickHouse, intake still commits events to PostgreSQL first (a pending-events outbox) and
# `manage.py clickhouse_drain` moves them over in batches of CLICKHOUSE_DRAIN_BATCH_SIZE.
EVENTS_BACKEND = os.environ.get("EVENTS_BACKEND", "postgres").strip().lower() or "postgres"
if EVENTS_BACKEND not in ("postgres", "clickhouse"):
    raise ImproperlyConfigured(f"EVENTS_BACKEND must be postgres or clickhouse, got {EVENTS_BACKEND!r}")
CLICKHOUSE_URL = os.environ.get("CLICKHOUSE_URL", "")
CLICKHOUSE_DRAIN_BATCH_SIZE = env_int("CLICKHOUSE_DRAIN_BATCH_SIZE", 10_000)

# With REDIS_URL the cache (throttle counters, the flag definitions body) is shared by every worker
# and every machine; without it each process has its own, which is only right for a single process.
# Redis is an accelerator, not a dependency: while it errors, each process falls back to its own
# memory (see experiments_api/cache.py), and a short timeout keeps an unreachable Redis from
# stalling workers.
REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_TIMEOUT_SECONDS = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "0.5"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "experiments_api.cache.FailoverRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "experiments-api"),
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "experiments-api",
        }
    }

# List and retrieve answers of experiments, flags, holdouts and saved metrics are cached per process,
# keyed by the project's data version (see experiments_api/response_cache.py), in at most this much
# memory per process.
RESPONSE_CACHE_ENABLED = env_bool("RESPONSE_CACHE_ENABLED", True)
RESPONSE_CACHE_BYTES = env_int("RESPONSE_CACHE_BYTES", 32 * 1024 * 1024)

# A process that has just read a key's identity version trusts the identity it holds for this long
# without reading the version again, on the calls that need nothing but the identity (`@me`); every
# write that moves an identity version sleeps this long (plus a margin) after its commit, before it
# answers, so no request begun after that answer is served from a lease the write outdated
# (accounts/identity.py). 0.05 s: a worker serving ~1 000 requests/s of one key reads its version
# once per ~50 of them, and identity writes (rare: keys, users, memberships, organizations,
# projects) answer 50 ms later. 0 turns the lease and the wait off; at most 1 s, as writes wait it.
IDENTITY_LEASE_SECONDS = env_seconds("IDENTITY_LEASE_SECONDS", 0.05, maximum=1.0)

RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
THROTTLE_BURST_RATE = os.environ.get("THROTTLE_BURST_RATE", "480/minute")
THROTTLE_SUSTAINED_RATE = os.environ.get("THROTTLE_SUSTAINED_RATE", "4800/hour")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.PersonalAPIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.APIScopePermission",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.PersonalAPIKeyBurstThrottle",
        "accounts.throttling.PersonalAPIKeySustainedThrottle",
    ],
    "DEFAULT_PAGINATION_CLASS": "experiments_api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "experiments_api.parsers.JSONParser",
        "experiments_api.parsers.FormParser",
        "experiments_api.parsers.MultiPartParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "experiments_api.negotiation.ApiContentNegotiation",
    "EXCEPTION_HANDLER": "experiments_api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "accounts.schema.ScopedAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # How many proxies in front of the server append to X-Forwarded-For: per-address limits take the
    # client address from there. 0 uses the connection's address (DRF's None would trust the header
    # as the client sends it).
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "experiments-api",
    "DESCRIPTION": (
        "Self-hostable A/B experiment management, wire-compatible with PostHog's Experiments and "
        "Experiment Holdouts API. Authenticate with `Authorization: Bearer <personal API key>`. "
        "Every `/api/projects/{project_id}/…` operation also answers under "
        "`/api/environments/{project_id}/…`. Unknown request fields are ignored and named in the "
        "`Ignored-Fields` response header; send `Prefer: handling=strict` to have them refused."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/(projects/\{project_id\}/)?",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"PersonalAPIKeyAuth": {"type": "http", "scheme": "bearer"}},
    },
    "AUTHENTICATION_WHITELIST": [],
    "ENUM_NAME_OVERRIDES": {},
    "PREPROCESSING_HOOKS": ["experiments_api.schema.without_environment_aliases"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "flags.schema.add_remote_config_operation",
        "experiments_api.schema.add_error_responses",
    ],
}

# Application logs go to gunicorn's error log when running under gunicorn (stderr otherwise), with
# credentials in query strings and personal API key secrets redacted (experiments_api/logs.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "experiments_api.logs.RequestIdFilter"},
        "redact_credentials": {"()": "experiments_api.logs.RedactCredentialsFilter"},
    },
    "handlers": {
        "error_log": {
            "class": "experiments_api.logs.ErrorLogHandler",
            "filters": ["request_id", "redact_credentials"],
        },
    },
    "root": {"handlers": ["error_log"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "INFO"},
        # Task registration is announced on every start of every process; only problems matter.
        "procrastinate.blueprints": {"level": "WARNING"},
        "procrastinate.periodic": {"level": "WARNING"},
    },
}

# HTTPS only unless DEBUG: plain-HTTP requests are redirected, cookies only travel over HTTPS and
# browsers are told (HSTS) to stay on HTTPS. Behind a TLS-terminating proxy set
# TRUST_X_FORWARDED_PROTO=true so the proxy's HTTPS is recognised. The health endpoints answer over
# plain HTTP too, since load balancers and container health checks probe them without TLS.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^_(health|liveness|ready)$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
X_FRAME_OPTIONS = "DENY"
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
