"""Input limits of the traffic app.

Each can be overridden by a Django setting of the same name (declare it in
`core/settings/base.py` to make it configurable); the defaults suit a city operator's cameras.
"""

from __future__ import annotations

from django.conf import settings

_DEFAULTS: dict[str, int] = {
    "TRAFFIC_MAX_IMAGE_BYTES": 20 * 1024 * 1024,
    "TRAFFIC_MAX_IMAGE_PIXELS": 40_000_000,
    "TRAFFIC_MAX_VIDEO_BYTES": 2 * 1024 * 1024 * 1024,
    "TRAFFIC_MAX_VIDEO_FRAMES": 200_000,
    "TRAFFIC_MAX_DATASET_BYTES": 2 * 1024 * 1024 * 1024,
    "TRAFFIC_MAX_DATASET_UNCOMPRESSED_BYTES": 8 * 1024 * 1024 * 1024,
    "TRAFFIC_MAX_DATASET_FILES": 200_000,
    "TRAFFIC_MAX_DATASET_COMPRESSION_RATIO": 200,
    "TRAFFIC_MAX_WEIGHTS_BYTES": 1024 * 1024 * 1024,
    "TRAFFIC_WEIGHTS_VALIDATION_TIMEOUT_S": 180,
}


def limit(name: str) -> int:
    """The configured value of limit `name` (a key of `_DEFAULTS`)."""
    return int(getattr(settings, name, _DEFAULTS[name]))
