"""Fixtures of the medical tests: real DICOM files (pydicom's and pydicom-data's test files) and
STOW-RS bodies built from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file

STOW_URL = "/api/v1/medical/dicomweb/studies"
BOUNDARY = "tessera-test-boundary"

# CT (128x128, 16 bit), MR (64x64), a multi-frame MR (10 frames), the same multi-frame MR as JPEG 2000
CT = "CT_small.dcm"
MR = "MR_small.dcm"
MULTIFRAME = "emri_small.dcm"
MULTIFRAME_J2K = "emri_small_jpeg_2k_lossless.dcm"


def dicom_path(name: str) -> Path:
    """A test file shipped with pydicom or pydicom-data, by file name."""
    found = get_testdata_file(name)
    if found is None:
        raise FileNotFoundError(name)
    return Path(str(found))


def part_bytes(part: bytes | Path | str) -> bytes:
    """Bytes as given, a file by absolute path, or a pydicom test file by name."""
    if isinstance(part, bytes):
        return part
    path = Path(part)
    return (path if path.is_absolute() else dicom_path(str(part))).read_bytes()


def stow_body(
    parts: Sequence[bytes | Path | str], boundary: str = BOUNDARY, *, part_type: str = "application/dicom"
) -> bytes:
    """A multipart/related body with one part per file (a CRLF before the first boundary, as
    some clients send, and an epilogue after the closing one)."""
    out = bytearray(b"\r\n")
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part_bytes(part) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def stow_content_type(boundary: str = BOUNDARY) -> str:
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


@pytest.fixture(autouse=True)
def _no_heartbeat_writes(settings: Any) -> None:
    """Medical jobs (training, analyses) run inline here, for up to a minute. A job's heartbeat
    thread writes its row from a second connection of the shared in-memory SQLite database,
    which answers a write that meets another with "database table is locked" at once
    (shared-cache locks ignore the busy timeout): on a slow machine the job's own write could be
    the one refused. Heartbeats are tested in tests/core and on PostgreSQL in tests/integration."""
    settings.JOB_HEARTBEAT_SECONDS = 3600


@pytest.fixture
def stow(api: Any) -> Callable[..., Any]:
    """`stow(parts, client=api, url=STOW_URL)`: POST a STOW-RS body; returns the response."""

    def send(parts: Sequence[bytes | Path | str], client: Any = None, url: str = STOW_URL) -> Any:
        return (client or api).generic("POST", url, stow_body(parts), content_type=stow_content_type())

    return send
