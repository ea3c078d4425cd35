"""Settings, read from the environment.

Defaults are safe for trying the server out on one machine (SQLite, DEBUG on). Production sets
DATABASE_URL, SECRET_KEY, DEBUG=false and ALLOWED_HOSTS; the server refuses to start with DEBUG off
and the default secret.
"""

import os
import sys
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


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEFAULT_SECRET_KEY = "insecure-development-secret-key-change-me"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY: the default secret is refused when DEBUG is off.")

# Personal API keys are stored as HMAC-SHA256 digests keyed with this secret. It is separate from
# SECRET_KEY so that rotating session signing does not invalidate every API key.
PERSONAL_API_KEY_SECRET = os.environ.get("PERSONAL_API_KEY_SECRET", SECRET_KEY)

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
    "experiments_api.middleware.RequestBodyLimitMiddleware",
    "experiments_api.middleware.NulCharacterMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
# or not; PostHog's SDKs send up to ~6 MiB per batch and PostHog's own capture accepts 20 MiB.
MAX_EVENT_BODY_BYTES = env_int("MAX_EVENT_BODY_BYTES", 20 * 1024 * 1024)
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

# With REDIS_URL the cache (throttle counters, flag definitions) is shared by every worker and
# every machine; without it each process has its own, which is only right for a single process.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "experiments-api"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "experiments-api",
        }
    }

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
        "experiments_api.throttling.PersonalAPIKeyBurstThrottle",
        "experiments_api.throttling.PersonalAPIKeySustainedThrottle",
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
    "EXCEPTION_HANDLER": "experiments_api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "experiments_api.schema.ScopedAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "experiments-api",
    "DESCRIPTION": (
        "Self-hostable A/B experiment management, wire-compatible with PostHog's Experiments and "
        "Experiment Holdouts API. Authenticate with `Authorization: Bearer <personal API key>`."
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
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "experiments_api.schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "INFO"},
    },
}

# Behind a TLS-terminating proxy set these to true (cookies only over HTTPS, trust X-Forwarded-Proto).
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
