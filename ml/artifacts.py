"""Artifact storage with a sha256 manifest verified on every load.

A version's artifact is a directory of files written by its kind's `save` (or `import_artifact`).
`artifact_store` copies it into the `artifacts` Django storage (filesystem by default, S3 in
production) and returns the manifest: every file with its size and sha256. The manifest lives
in the database row, so a file changed in storage is detected: `artifact_fetch` re-hashes
every file it brings back and refuses to hand over anything that does not match.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, storages

from core.storage import file_sha256, scratch_directory


class ArtifactIntegrityError(Exception):
    """An artifact file is missing or its sha256 does not match the manifest."""


def artifact_storage() -> Storage:
    return storages["artifacts"]


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """A single hash identifying the whole artifact (sha256 of the canonical manifest JSON)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_manifest(directory: Path, *, kind: str, artifact_format: str) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        files[relative] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    if not files:
        raise ValueError("The model kind wrote no artifact files.")
    return {"kind": kind, "format": artifact_format, "files": files}


def artifact_store(directory: Path, *, prefix: str, kind: str, artifact_format: str) -> dict[str, Any]:
    """Upload every file under `directory` to `prefix/` in artifact storage; return the manifest."""
    manifest = build_manifest(directory, kind=kind, artifact_format=artifact_format)
    storage = artifact_storage()
    for relative in manifest["files"]:
        name = f"{prefix}/{relative}"
        if storage.exists(name):
            storage.delete(name)  # a retried training job overwrites its own half-written upload
        with (directory / relative).open("rb") as handle:
            saved = storage.save(name, File(handle))
        if saved != name:
            raise ArtifactIntegrityError(f"Storage renamed {name!r} to {saved!r}; refusing an ambiguous artifact.")
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    manifest_name = f"{prefix}/MANIFEST.json"
    if storage.exists(manifest_name):
        storage.delete(manifest_name)
    storage.save(manifest_name, File(io.BytesIO(manifest_bytes)))
    return manifest


def artifact_fetch(*, prefix: str, manifest: dict[str, Any], destination: Path) -> Path:
    """Copy the artifact into `destination` (local), verifying each file's sha256.

    Raises:
        ArtifactIntegrityError: a file is missing, or its content differs from the manifest.
    """
    storage = artifact_storage()
    staging = Path(tempfile.mkdtemp(prefix="artifact-", dir=_ensure_dir(destination.parent)))
    try:
        for relative, entry in manifest["files"].items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with storage.open(f"{prefix}/{relative}", "rb") as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            except (FileNotFoundError, OSError) as exc:
                raise ArtifactIntegrityError(f"Artifact file {relative!r} is missing from storage.") from exc
            actual = file_sha256(target)
            if actual != entry["sha256"]:
                raise ArtifactIntegrityError(
                    f"Artifact file {relative!r} failed its sha256 check "
                    f"(expected {entry['sha256'][:12]}…, found {actual[:12]}…); refusing to load it."
                )
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)
        return destination
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def artifact_zip(*, prefix: str, manifest: dict[str, Any], handle: Any) -> None:
    """Write the verified artifact plus MANIFEST.json as a zip into the binary `handle`."""
    with scratch_directory(prefix="export-") as tmp:
        local = artifact_fetch(prefix=prefix, manifest=manifest, destination=tmp / "artifact")
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in manifest["files"]:
                archive.write(local / relative, arcname=relative)
            archive.writestr("MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True))


def _ensure_dir(path: Path | str) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
