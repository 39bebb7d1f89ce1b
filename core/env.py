"""The one place Tessera reads its environment.

Every setting that an operator may change is declared here with its default, its type and a
one-line description; `core/settings/base.py` reads these values and nothing else touches
`os.environ`. The README's configuration table is written from this list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


class ImproperlyConfiguredEnv(RuntimeError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True)
class Var:
    """One documented environment variable."""

    name: str
    default: str
    description: str


VARIABLES: tuple[Var, ...] = (
    Var("DJANGO_ENV", "local", "`local`, `production` or `test`: which settings module overrides base."),
    Var("SECRET_KEY", "", "Django secret key. Required in production."),
    Var("ALLOWED_HOSTS", "127.0.0.1,localhost", "Comma-separated host names. Required in production."),
    Var("CSRF_TRUSTED_ORIGINS", "", "Comma-separated origins (https://host) allowed for portal forms."),
    Var("DATABASE_URL", "", "Database URL; default SQLite at `var/tessera.sqlite3` (WAL)."),
    Var(
        "DATABASE_PREPARE_THRESHOLD",
        "5",
        "PostgreSQL: server-bound statements (the serving paths') are prepared after this many runs on a "
        "connection; `0` never (behind a transaction-mode pooler without prepared-statement support).",
    ),
    Var(
        "CELERY_BROKER_URL", "", "Broker URL (`redis://…`, `amqp://…`); default a filesystem broker under `var/broker`."
    ),
    Var("CACHE_URL", "", "Cache for throttling (`redis://…`); default per-process memory."),
    Var("CELERY_TASK_ALWAYS_EAGER", "false", "Run jobs inline in the web process (tests only)."),
    Var("VAR_DIR", str(BASE_DIR / "var"), "Runtime state: SQLite db, media, artifacts, broker folders."),
    Var("MEDIA_ROOT", "", "Uploaded files; default `$VAR_DIR/media`."),
    Var("ARTIFACT_ROOT", "", "Model artifacts on the filesystem; default `$VAR_DIR/artifacts`."),
    Var(
        "STORAGE_BACKEND", "filesystem", "`filesystem` or `s3` (S3-compatible object storage for media and artifacts)."
    ),
    Var("S3_BUCKET", "", "Bucket for media and artifacts when STORAGE_BACKEND=s3."),
    Var("S3_ENDPOINT_URL", "", "S3-compatible endpoint (MinIO, Ceph…); empty for AWS."),
    Var("S3_REGION", "", "S3 region name."),
    Var("ML_DEVICE", "auto", "`auto`, `cpu`, `cuda` or `cuda:N`; auto picks CUDA when present."),
    Var("ML_CACHE_SIZE", "8", "Loaded model versions kept per process (LRU)."),
    Var(
        "ML_SERVING_CACHE_SECONDS",
        "1",
        "How long a process reuses its answer to 'which version serves this model' (0: ask the database "
        "every time); an alias move in the same process applies at once.",
    ),
    Var("ML_HALF", "true", "Half precision on CUDA for kinds that support it (no effect on CPU)."),
    Var(
        "ML_WARM_UP",
        "production",
        "`production`: a serving process loads every production version (up to ML_CACHE_SIZE) when it starts; "
        "`off`: load on first use.",
    ),
    Var(
        "SCRATCH_DIR",
        "",
        "Private working folders (zip extraction, video decoding, training); default `$VAR_DIR/scratch`.",
    ),
    # A 150,000 x 300 credit CSV is about 250 MB.
    Var("API_MAX_UPLOAD_MB", "512", "Largest request body the API accepts (413 above)."),
    Var("API_THROTTLE_RATE", "6000/min", "Requests per API key (DRF rate syntax)."),
    Var("JOB_HEARTBEAT_SECONDS", "5", "How often a running job writes its heartbeat."),
    Var("JOB_STALE_SECONDS", "60", "A running job silent this long is taken over by another worker."),
    Var(
        "BROKER_VISIBILITY_TIMEOUT",
        "14400",
        "Seconds before an unacked message is redelivered (Redis/SQS); longer than the longest job.",
    ),
    Var("PORT", "8000", "Port `make run` serves on (127.0.0.1)."),
    Var("LOG_LEVEL", "INFO", "Root log level."),
    Var(
        "TRUSTED_PROXY",
        "false",
        "Behind a reverse proxy that sets X-Forwarded-Host and X-Forwarded-Proto: trust them for absolute URLs "
        "(DICOMweb RetrieveURL and BulkDataURI). Never enable without such a proxy.",
    ),
    Var("DICOM_PORT", "11112", "Port of the DICOM listener (storage SCP: C-ECHO, C-STORE) `make run` starts."),
    Var("DICOM_AE_TITLE", "TESSERA", "The listener's own AE title (what modalities call)."),
    Var(
        "DICOM_TLS_CERT",
        "",
        "PEM certificate (chain) of the DICOM listener: set with DICOM_TLS_KEY, the listener speaks DICOM TLS "
        "(PS3.15 Annex B, TLS 1.2 or later) instead of plain TCP.",
    ),
    Var("DICOM_TLS_KEY", "", "PEM private key of DICOM_TLS_CERT."),
    Var(
        "DICOM_TLS_CA",
        "",
        "PEM CA bundle: when set (with DICOM_TLS_CERT), every modality must present a client certificate it signed.",
    ),
    Var(
        "METRICS_TOKEN",
        "",
        "Bearer token `/metrics` requires (Prometheus `authorization` credentials); `make run` generates one "
        "in `$VAR_DIR/metrics_token.txt` when unset.",
    ),
    Var(
        "METRICS_ALLOWED_NETWORKS",
        "",
        "Comma-separated networks (`10.0.0.0/8,127.0.0.1`) allowed to scrape `/metrics` (the client address "
        "as the web server sees it). With neither this nor METRICS_TOKEN, `/metrics` is closed (403).",
    ),
    Var(
        "PROMETHEUS_MULTIPROC_DIR",
        "",
        "Folder for prometheus_client's multiprocess mode (gunicorn workers and Celery pool processes of one "
        "host share it; empty it before they start). `make run` uses `$VAR_DIR/prometheus`.",
    ),
    Var("TELEMETRY_RETENTION_DAYS", "14", "Days the per-minute telemetry rollups (portal operations page) are kept."),
    Var(
        "TELEMETRY_FLUSH_SECONDS",
        "10",
        "How often each process writes its buffered telemetry rollups and heartbeat (0: only when asked).",
    ),
)

_BY_NAME = {var.name: var for var in VARIABLES}


def get(name: str) -> str:
    """Return the variable's value, or its declared default."""
    var = _BY_NAME[name]
    return os.environ.get(name, var.default)


def get_bool(name: str) -> bool:
    return get(name).strip().lower() in {"1", "true", "yes", "on"}


def get_int(name: str) -> int:
    raw = get(name)
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from exc


def get_list(name: str) -> list[str]:
    return [item.strip() for item in get(name).split(",") if item.strip()]


def is_set(name: str) -> bool:
    return bool(os.environ.get(name, "").strip())
