"""Portal upload: several DICOM files, or zips of them, stored like any received instance.

Each uploaded file (Django has already streamed large ones to a temporary file) and each member
of an uploaded zip is copied in chunks to a scratch file while its sha256 is computed, then goes
through `receiving.instances_receive` with `received_via=UPLOAD`: the same validation,
duplicates policy and audit as STOW-RS and C-STORE. Nothing is held in memory whole. The studies
that got new instances then go to the routing rules (`routing.studies_received_on_receipt`).

A zip is read member by member with limits (member count, uncompressed bytes), so a small zip
that inflates to terabytes is refused instead of filling the disk.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.core.files.uploadedfile import UploadedFile

from apps.medical.choices import ReceivedVia
from apps.medical.dicom_files import CANNOT_UNDERSTAND, InstanceRefused
from apps.medical.receiving import ReceivedFile, instances_receive
from apps.medical.routing import studies_received_on_receipt, studies_with_new_instances
from apps.medical.services import StoreOutcome
from core.storage import scratch_directory
from core.tenancy.actors import Actor

CHUNK_BYTES = 1024 * 1024
ZIP_MAX_MEMBERS = 20_000
ZIP_MAX_TOTAL_BYTES = 20 * 1024**3  # uncompressed, per zip
_IGNORED_ZIP_NAMES = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class UploadRow:
    """What became of one uploaded file (or zip member): stored, or refused with the reason."""

    name: str
    outcome: StoreOutcome | None = None
    refusal: InstanceRefused | None = None


@dataclass
class UploadReport:
    rows: list[UploadRow] = field(default_factory=list)

    @property
    def stored(self) -> list[UploadRow]:
        return [row for row in self.rows if row.outcome is not None]

    @property
    def refused(self) -> list[UploadRow]:
        return [row for row in self.rows if row.refusal is not None]


@dataclass(frozen=True)
class _Pending:
    name: str
    received: ReceivedFile | None = None
    refusal: InstanceRefused | None = None


def upload_receive(*, actor: Actor, uploads: Iterable[UploadedFile]) -> UploadReport:
    """Store every uploaded file and zip member in `actor`'s archive; one row per file, in order."""
    report = UploadReport()
    with scratch_directory(prefix="upload-") as folder:
        for pending in _received_files(uploads, folder):
            if pending.received is None:
                report.rows.append(UploadRow(name=pending.name, refusal=pending.refusal))
                continue
            result = instances_receive(actor=actor, files=[pending.received], received_via=ReceivedVia.UPLOAD)
            if result.stored:
                report.rows.append(UploadRow(name=pending.name, outcome=result.stored[0]))
            else:
                report.rows.append(UploadRow(name=pending.name, refusal=result.refused[0]))
            pending.received.path.unlink(missing_ok=True)  # stored (moved or copied) or refused: done with it
    # after every file is stored: a study uploaded in one go is analysed once, with all of it
    studies_received_on_receipt(
        actor=actor, study_ids=studies_with_new_instances(row.outcome for row in report.rows if row.outcome)
    )
    return report


def _received_files(uploads: Iterable[UploadedFile], folder: Path) -> Iterator[_Pending]:
    counter = 0
    for upload in uploads:
        name = upload.name or "upload"
        if _is_zip(upload):
            with zipfile.ZipFile(upload.file) as archive:  # type: ignore[arg-type]  # an UploadedFile's file is a binary file object
                yield from _zip_members(archive, name, folder)
            continue
        counter += 1
        yield _Pending(name=name, received=_write(upload.chunks(CHUNK_BYTES), folder / f"file-{counter}.dcm"))


def _is_zip(upload: UploadedFile) -> bool:
    """A zip by its content (a DICOM file starts with a 128-byte preamble, never with `PK`)."""
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return head == b"PK\x03\x04" and zipfile.is_zipfile(upload)


def _zip_members(archive: zipfile.ZipFile, zip_name: str, folder: Path) -> Iterator[_Pending]:
    total = 0
    members = [info for info in archive.infolist() if not info.is_dir() and not _ignored(info.filename)]
    for number, info in enumerate(members):
        name = f"{zip_name}: {info.filename}"
        if number >= ZIP_MAX_MEMBERS:
            yield _Pending(name=name, refusal=_refused(f"More than {ZIP_MAX_MEMBERS} files in one zip."))
            continue
        if info.flag_bits & 0x1:
            yield _Pending(name=name, refusal=_refused("The zip member is encrypted."))
            continue
        path = folder / f"zip-{number}.dcm"
        try:
            with archive.open(info) as member:
                received = _write(_bounded_chunks(member, ZIP_MAX_TOTAL_BYTES - total), path)
        except (zipfile.BadZipFile, _TooLarge, OSError, EOFError) as exc:
            path.unlink(missing_ok=True)
            yield _Pending(name=name, refusal=_refused(f"The zip member cannot be read: {exc}"))
            continue
        total += received.size
        yield _Pending(name=name, received=received)


def _ignored(filename: str) -> bool:
    return any(part in filename for part in _IGNORED_ZIP_NAMES)


class _TooLarge(Exception):
    pass


def _bounded_chunks(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    read = 0
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
        read += len(chunk)
        if read > limit:
            raise _TooLarge(f"the zip inflates to more than {ZIP_MAX_TOTAL_BYTES // 1024**3} GiB")
        yield chunk


def _write(chunks: Iterable[bytes], path: Path) -> ReceivedFile:
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return ReceivedFile(path=path, sha256=digest.hexdigest(), size=size)


def _refused(message: str) -> InstanceRefused:
    return InstanceRefused(CANNOT_UNDERSTAND, message)
