"""Files that belong to rows: one way to store them, name them, hash them and clean them up.

Every domain stores uploads (images, videos, CSVs, zips, DICOM) next to the rows that describe
them. The order is always the same and so is the failure rule:

    with stored_files() as files:
        image_name = files.save(media_name(org_id=org.pk, domain="traffic", folder="images", suffix=".jpg"), data)
        with transaction.atomic():
            DetectionRun.objects.create(..., image=image_name)

1. save the files (`StoredFiles.save`), 2. write the rows in a transaction inside the block,
3. any exception leaving the block deletes every file saved in it, so a refused or failed
request leaves nothing behind. Keep the `transaction.atomic()` inside the block: a rollback of
an outer transaction after the block has exited cannot be seen here.

Scratch work (extracting a zip, decoding a video, a training run's working folder) happens in
`scratch_directory()` / `scratch_file()`, under one configured folder, removed on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, default_storage
from django.utils import timezone

logger = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1 << 20


def media_name(*, org_id: int, domain: str, folder: str, suffix: str = "") -> str:
    """A fresh, unguessable storage name: `<domain>/org-<id>/<folder>/YYYY/MM/DD/<uuid><suffix>`.

    The organization is in the path so an operator can find (or delete) one tenant's files; the
    date keeps folders small; the random part means a client-supplied file name never decides
    where a file lands (no traversal, no collisions).
    """
    if suffix and not suffix.startswith("."):
        suffix = f".{suffix}"
    return f"{domain}/org-{org_id}/{folder}/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}{suffix.lower()}"


@dataclass
class StoredFiles:
    """The files saved inside one `stored_files()` block (deleted again if the block fails)."""

    storage: Storage
    names: list[str] = field(default_factory=list)

    def save(self, name: str, content: bytes | File[Any] | IO[bytes]) -> str:
        """Save `content` under `name` (or the storage's free variant of it); returns the stored name."""
        if isinstance(content, bytes):
            content = ContentFile(content)
        elif not isinstance(content, File):
            content = File(content)
        stored = self.storage.save(name, content)
        self.names.append(stored)
        return stored

    def adopt(self, name: str) -> str:
        """Make an already stored file part of this block (deleted if the block fails)."""
        self.names.append(name)
        return name

    def delete_all(self) -> None:
        for name in reversed(self.names):
            try:
                self.storage.delete(name)
            except Exception:  # cleanup must not hide the original error
                logger.exception("Could not delete %s after a failed write", name)
        self.names.clear()


@contextlib.contextmanager
def stored_files(storage: Storage | None = None) -> Iterator[StoredFiles]:
    """Save files, write rows, and delete the files again on any failure (see the module docstring)."""
    files = StoredFiles(storage=storage or default_storage)
    try:
        yield files
    except BaseException:
        files.delete_all()
        raise


def storage_delete(names: Iterable[str], storage: Storage | None = None) -> None:
    """Delete stored files that no row refers to any more (missing ones are ignored)."""
    StoredFiles(storage=storage or default_storage, names=[name for name in names if name]).delete_all()


def scratch_root() -> Path:
    """The folder every scratch directory lives in (`SCRATCH_DIR`, on local disk)."""
    path = Path(settings.SCRATCH_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def scratch_directory(prefix: str = "work-") -> Iterator[Path]:
    """A private working folder under `scratch_root()`, removed with everything in it on exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_file(source: Iterable[bytes], *, suffix: str = "") -> Iterator[Path]:
    """Write the chunks of `source` (an upload's `.chunks()`, a storage file) to a scratch file.

    The file is removed on exit. Use it when a library needs a real path (OpenCV, zipfile, pandas
    on a seekable file) and the upload may be too large for memory.
    """
    with scratch_directory(prefix="file-") as folder:
        path = folder / f"data{suffix}"
        with path.open("wb") as out:
            for chunk in source:
                out.write(chunk)
        yield path


def file_sha256(source: Path | IO[bytes] | Iterable[bytes]) -> str:
    """Hex sha256 of a file on disk, an open binary handle (read from where it is, then rewound
    when seekable) or an iterable of chunks such as `UploadedFile.chunks()`."""
    digest = hashlib.sha256()
    if isinstance(source, Path):
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
        return digest.hexdigest()
    if hasattr(source, "read"):
        stream = cast(IO[bytes], source)
        start = stream.tell() if stream.seekable() else None
        for chunk in iter(lambda: stream.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
        if start is not None:
            stream.seek(start)
        return digest.hexdigest()
    for chunk in cast(Iterable[bytes], source):
        digest.update(chunk)
    return digest.hexdigest()
