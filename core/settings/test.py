"""Test settings: fast password hashing, quiet logs, jobs inline unless a test starts a worker."""

from core.settings.base import *  # noqa: F403
from core.settings.base import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "100000/min"}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
STATIC_ROOT = None  # type: ignore[assignment]  # tests serve static through the finders
WHITENOISE_USE_FINDERS = True

# No telemetry flusher thread in the test process: tests send Celery's `worker_process_init` to
# exercise warm-up, which would start one writing to the shared in-memory SQLite database beside the
# test's own writes ("database table is locked"). Tests flush when they ask; a test that starts real
# processes sets TELEMETRY_FLUSH_SECONDS for them.
TELEMETRY_FLUSH_SECONDS = float(env.get("TELEMETRY_FLUSH_SECONDS")) if env.is_set("TELEMETRY_FLUSH_SECONDS") else 0.0  # noqa: F405
