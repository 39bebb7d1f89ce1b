"""Every Tessera setting is declared here; local/production/test only override.

The environment is read through `core.env` and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from core import env

BASE_DIR = env.BASE_DIR
VAR_DIR = Path(env.get("VAR_DIR"))

DJANGO_ENV = env.get("DJANGO_ENV")
SECRET_KEY = env.get("SECRET_KEY") or "insecure-local-development-key-change-me-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS")
if env.get_bool("TRUSTED_PROXY"):
    USE_X_FORWARDED_HOST = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "ml",
    "apps.medical",
    "apps.finance",
    "apps.retail",
    "apps.traffic",
]

MIDDLEWARE = [
    "core.telemetry.middleware.HttpTelemetryMiddleware",  # outermost: times and counts every request
    "core.api.middleware.RequestContextMiddleware",
    "core.api.middleware.ApiHtmlErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.api.middleware.ApiBodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.tenancy.middleware.OrganizationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "core" / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.portal.context_processors.portal",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
# Embedded default: SQLite in WAL mode with IMMEDIATE transactions and a busy timeout, so the
# web process and the worker can both write without "database is locked" errors.
SQLITE_PATH = VAR_DIR / "tessera.sqlite3"
if env.is_set("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(env.get("DATABASE_URL"), conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's own cursors bind client-side and are never prepared; this applies to the
        # server-bound cursors of the hot paths (such as `apps.retail.bulk_sql.binding_cursor`): planned once
        # per connection instead of on every request
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
            env.get_int("DATABASE_PREPARE_THRESHOLD") or None
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static, media, artifacts ------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "core" / "portal" / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.get("MEDIA_ROOT") or VAR_DIR / "media")
ARTIFACT_ROOT = Path(env.get("ARTIFACT_ROOT") or VAR_DIR / "artifacts")
MODEL_CACHE_DIR = VAR_DIR / "model-cache"
# Private working folders (zip extraction, video decoding, training runs); local disk, cleaned on exit.
SCRATCH_DIR = Path(env.get("SCRATCH_DIR") or VAR_DIR / "scratch")
STORAGE_BACKEND = env.get("STORAGE_BACKEND")

if STORAGE_BACKEND == "s3":
    _s3_options = {
        "bucket_name": env.get("S3_BUCKET"),
        "endpoint_url": env.get("S3_ENDPOINT_URL") or None,
        "region_name": env.get("S3_REGION") or None,
        "default_acl": None,
        "querystring_auth": True,
    }
    STORAGES = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3_options, "location": "media"}},
        "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3_options, "location": "artifacts"}},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": MEDIA_ROOT}},
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": ARTIFACT_ROOT}},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# Uploads larger than this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
API_MAX_UPLOAD_BYTES = env.get_int("API_MAX_UPLOAD_MB") * 1024 * 1024

# --- Medical imaging archive -----------------------------------------------------------------------
DICOM_PORT = env.get_int("DICOM_PORT")
DICOM_AE_TITLE = env.get("DICOM_AE_TITLE")
DICOM_TLS_CERT = env.get("DICOM_TLS_CERT")
DICOM_TLS_KEY = env.get("DICOM_TLS_KEY")
DICOM_TLS_CA = env.get("DICOM_TLS_CA")

# --- Cache (API throttling counters) ---------------------------------------------------------------
if env.is_set("CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env.get("CACHE_URL")}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.tenancy.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.IsOrganizationMember"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.get("API_THROTTLE_RATE")},
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "core.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Partner REST API of Tessera: medical, finance, retail and traffic AI.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Operations are tagged and named by what follows /api/v1/ (`finance`, `finance_scores_create`),
    # not by the version segment every path shares.
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# --- Celery and jobs ---------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
if env.is_set("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = env.get("CELERY_BROKER_URL")
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Longer than the longest job (training hard limit), so a slow job is not redelivered
        # while its worker still runs it. Redelivery after a crash is handled by the job claim.
        "visibility_timeout": env.get_int("BROKER_VISIBILITY_TIMEOUT"),
    }
else:
    # kombu's filesystem transport: a broker that needs no server, for the embedded default.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.get_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # core.Job is the source of truth, not a result backend.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Per-queue time limits (soft, hard) in seconds. The broker visibility timeout above must be
# longer than the largest hard limit.
JOB_QUEUE_TIME_LIMITS = {
    "default": (300, 360),
    "inference": (3 * 3600, 3 * 3600 + 300),
    "training": (3 * 3600, 3 * 3600 + 300),
}
JOB_HEARTBEAT_SECONDS = env.get_int("JOB_HEARTBEAT_SECONDS")
JOB_STALE_SECONDS = env.get_int("JOB_STALE_SECONDS")
JOB_REAPER_INTERVAL_SECONDS = 30
JOB_MAX_ATTEMPTS = 3
CELERY_BEAT_SCHEDULE = {
    "jobs-requeue-stale": {
        "task": "core.jobs.tasks.requeue_stale_jobs",
        "schedule": JOB_REAPER_INTERVAL_SECONDS,
        "options": {"queue": "default"},
    },
    "telemetry-prune": {
        "task": "core.telemetry.tasks.prune_telemetry",
        "schedule": 3600,
        "options": {"queue": "default"},
    },
}

# --- ML runtime --------------------------------------------------------------------------------
ML_DEVICE = env.get("ML_DEVICE")
ML_CACHE_SIZE = env.get_int("ML_CACHE_SIZE")
ML_HALF = env.get_bool("ML_HALF")
ML_SERVING_CACHE_SECONDS = float(env.get("ML_SERVING_CACHE_SECONDS"))
ML_WARM_UP = env.get("ML_WARM_UP")

# --- Telemetry and Prometheus (core/telemetry, ml/telemetry.py) ----------------------------------
METRICS_TOKEN = env.get("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env.get_list("METRICS_ALLOWED_NETWORKS")
TELEMETRY_RETENTION_DAYS = env.get_int("TELEMETRY_RETENTION_DAYS")
TELEMETRY_FLUSH_SECONDS = float(env.get("TELEMETRY_FLUSH_SECONDS"))

# --- Security defaults shared by every environment ----------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # highdicom logs every module it copies into a new SR at INFO: several lines per object
        "highdicom": {"level": "WARNING"},
    },
}
