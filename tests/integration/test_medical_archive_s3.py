"""The archive on S3-compatible object storage (`STORAGE_BACKEND=s3`, django-storages) instead of
the filesystem: moto's S3 server runs as a subprocess on a free port, the storages point at it,
and a study goes STOW-RS → QIDO-RS → WADO-RS (byte-identical retrieve, frames, metadata) → a
deletion that removes its objects from the bucket.

WADO-RS reads an instance's object whole (pydicom parses the stream); there is no ranged read of
single frames to check, so `/frames` is checked for its values."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage, storages
from django.test import override_settings

from apps.medical.models import Instance
from tests.medical.conftest import CT, MULTIFRAME_J2K, dicom_path, stow_body, stow_content_type
from tests.medical.test_wado import multipart_parts
from tests.realservices import wait_until_serving

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = "/api/v1/medical/dicomweb"
BUCKET = "tessera-archive"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto takes any
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server (`moto[server]`) on a free port, stopped after the module."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        wait_until_serving(
            server,
            lambda: _accepts(port),
            lambda: log.read_text()[-4000:],
            what="moto's server",
            seconds=30,
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Iterator[Any]:
    """The storages as core/settings/base.py configures them for STORAGE_BACKEND=s3, on moto."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    options = {
        "bucket_name": BUCKET,
        "endpoint_url": s3_endpoint,
        "region_name": REGION,
        "default_acl": None,
        "querystring_auth": True,
        "access_key": CREDENTIALS["aws_access_key_id"],
        "secret_key": CREDENTIALS["aws_secret_access_key"],
    }
    storages = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "media"}},
        "artifacts": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": "artifacts"}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client: Any) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def _uids(name: str) -> tuple[str, str, str]:
    ds = pydicom.dcmread(dicom_path(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_stow_qido_wado_and_delete_on_s3(api: Any, s3_storage: Any) -> None:
    # given: the storage really is S3 on moto
    assert type(storages["default"]).__name__ == "S3Storage"
    assert default_storage.exists("nothing-here") is False  # the lazy default storage is the S3 one too
    files = [CT, MULTIFRAME_J2K]
    # when: STOW-RS
    stored = api.generic("POST", f"{ROOT}/studies", stow_body(files), content_type=stow_content_type())
    # then: both stored, each an object of the bucket named by its sha256
    assert stored.status_code == 200, stored.content
    keys = _keys(s3_storage)
    assert len(keys) == 2 and all(key.startswith("media/") for key in keys)
    for name in files:
        digest = hashlib.sha256(dicom_path(name).read_bytes()).hexdigest()
        instance = Instance.objects.get(sop_instance_uid=_uids(name)[2])
        assert instance.sha256 == digest
        assert f"media/{instance.file}" in keys
        body = s3_storage.get_object(Bucket=BUCKET, Key=f"media/{instance.file}")["Body"].read()
        assert body == dicom_path(name).read_bytes()

    # QIDO-RS finds the study
    ct_study, ct_series, ct_sop = _uids(CT)
    found = api.get(f"{ROOT}/studies", {"StudyInstanceUID": ct_study}, HTTP_ACCEPT="application/dicom+json")
    assert [item["0020000D"]["Value"][0] for item in found.json()] == [ct_study]

    # WADO-RS: the instance byte-identical, its metadata, and frames of the multi-frame JPEG 2000
    instance_url = f"{ROOT}/studies/{ct_study}/series/{ct_series}/instances/{ct_sop}"
    retrieved = api.get(instance_url, HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert retrieved.status_code == 200
    [(_, data)] = multipart_parts(retrieved)
    assert data == dicom_path(CT).read_bytes()
    metadata = api.get(f"{instance_url}/metadata", HTTP_ACCEPT="application/dicom+json")
    assert metadata.json()[0]["00080018"]["Value"] == [ct_sop]
    mr_study, mr_series, mr_sop = _uids(MULTIFRAME_J2K)
    frames = api.get(
        f"{ROOT}/studies/{mr_study}/series/{mr_series}/instances/{mr_sop}/frames/2,7",
        HTTP_ACCEPT="multipart/related; type=application/octet-stream; transfer-syntax=*",
    )
    pixels = pydicom.dcmread(dicom_path(MULTIFRAME_J2K)).pixel_array
    assert [part for _, part in multipart_parts(frames)] == [
        np.ascontiguousarray(pixels[index]).astype("<u2").tobytes() for index in (1, 6)
    ]

    # when: the CT's study is deleted
    ct_key = f"media/{Instance.objects.get(sop_instance_uid=ct_sop).file}"
    deleted = api.delete(
        f"/api/v1/medical/studies/{ct_study}/", data='{"reason": "test"}', content_type="application/json"
    )
    # then: its object is gone from the bucket, the other study's stays, and its UIDs are not found
    assert deleted.status_code == 204, deleted.content
    assert _keys(s3_storage) == keys - {ct_key}
    assert api.get(instance_url, HTTP_ACCEPT='multipart/related; type="application/dicom"').status_code == 404


def test_a_refused_instance_leaves_no_object_on_s3(api: Any, s3_storage: Any, tmp_path: Path) -> None:
    # given: a file cut inside its pixel data beside a good one
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(dicom_path(CT).read_bytes()[:-1000])
    # when
    response = api.generic(
        "POST", f"{ROOT}/studies", stow_body([cut, MULTIFRAME_J2K]), content_type=stow_content_type()
    )
    # then: 202, only the good instance's object
    assert response.status_code == 202, response.content
    [key] = _keys(s3_storage)
    assert key == f"media/{Instance.objects.get().file}"
