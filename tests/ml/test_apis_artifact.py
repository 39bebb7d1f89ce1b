"""Artifact download (zip + manifest) and tamper detection on download and on load."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def _tamper(version) -> None:
    """Change one byte of the stored weights, as an attacker with storage access would."""
    from ml.artifacts import artifact_storage

    path = artifact_storage().path(f"{version.artifact_path}/weights.pt")
    with open(path, "r+b") as handle:
        handle.seek(-1, io.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, io.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))


def test_download_is_a_zip_with_the_artifact_and_its_manifest(api, org, ml_admin, train):
    # given
    version = train(org, user=ml_admin).version
    # when
    response = api.get("/api/v1/ml/models/tiny/versions/1/artifact/")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="tiny-v1.zip"'
    assert response["X-Artifact-SHA256"] == version.artifact_sha256
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    response.close()
    assert sorted(archive.namelist()) == ["MANIFEST.json", "weights.pt"]
    manifest = json.loads(archive.read("MANIFEST.json"))
    assert manifest == version.manifest
    assert hashlib.sha256(archive.read("weights.pt")).hexdigest() == manifest["files"]["weights.pt"]["sha256"]


def test_download_is_audited(api, org, import_version):
    # given
    from core.audit.models import AuditEvent

    version = import_version(org)
    # when
    api.get("/api/v1/ml/models/tiny/versions/1/artifact/").close()
    # then
    event = AuditEvent.objects.get(action="ml.version.export")
    assert event.outcome == "success"
    assert event.details == {"model": "tiny", "number": 1, "sha256": version.artifact_sha256}


def test_download_even_when_the_client_accepts_only_zip(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.get("/api/v1/ml/models/tiny/versions/1/artifact/", HTTP_ACCEPT="application/zip")
    missing = api.get("/api/v1/ml/models/tiny/versions/2/artifact/", HTTP_ACCEPT="application/zip")
    # then
    assert response.status_code == 200
    response.close()
    assert_error(missing, 404, "not_found")


def test_tampered_artifact_is_refused_on_load_with_a_clear_message(org, ml_admin, train):
    # given
    from ml.artifacts import ArtifactIntegrityError
    from ml.runtime import cache_info, predict

    version = train(org, user=ml_admin).version
    _tamper(version)
    # when / then
    with pytest.raises(ArtifactIntegrityError, match=r"'weights.pt' failed its sha256 check .* refusing to load it"):
        predict(version, [[1.0, 1.0]])
    assert cache_info()["loads"] == 0


def test_tampered_artifact_download_is_409_and_audited_as_a_failure(api, org, import_version):
    # given
    from core.audit.models import AuditEvent

    version = import_version(org)
    _tamper(version)
    # when
    response = api.get("/api/v1/ml/models/tiny/versions/1/artifact/")
    # then
    error = assert_error(response, 409, "artifact_integrity")
    assert "weights.pt" in error["message"]
    assert "sha256" in error["message"]
    event = AuditEvent.objects.get(action="ml.version.export")
    assert event.outcome == "failure"
    assert "sha256" in event.details["error"]


def test_missing_artifact_file_is_409(api, org, import_version):
    # given
    from ml.artifacts import artifact_storage

    version = import_version(org)
    artifact_storage().delete(f"{version.artifact_path}/weights.pt")
    # when
    response = api.get("/api/v1/ml/models/tiny/versions/1/artifact/")
    # then
    assert "missing" in assert_error(response, 409, "artifact_integrity")["message"]
