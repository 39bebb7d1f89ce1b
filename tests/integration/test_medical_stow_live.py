"""STOW-RS against a real gunicorn on the PostgreSQL test database, with real clients.

Django's test client never sends `Transfer-Encoding: chunked`, and under WSGI Django 5.2 reads
such a body as empty (ticket #35838); `request.body` also raises above the upload limit. So the
archive is checked here through the server itself: a chunked body of several MB sent with
http.client, dicomweb-client's `store_instances` (which chunks any body over 1 MB) and its
`search_for_studies`, a Content-Length body above API_MAX_UPLOAD_MB (STOW streams, so the
limit does not apply to it, while it still applies to the rest of the API), and two clients
storing the same new study at once.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from pydicom.data import get_testdata_file

from tests.medical.conftest import BOUNDARY, CT, MR, stow_body, stow_content_type
from tests.medical.test_stow import ct_copies
from tests.realservices import REPO_ROOT, RealServices, wait_until_serving

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = "/api/v1/medical/dicomweb"
ROUNDS = 4
LARGE_FILES = ["RG1_UNCR.dcm", "MR2_UNCR.dcm", "RG1_J2KR.dcm"]  # pydicom-data: 7.2, 2.1 and 4.3 MB


class GunicornServer:
    """A gunicorn serving this test's database and media folder."""

    def __init__(self, port: int, key: str, log: Path) -> None:
        self.port = port
        self.key = key
        self.log = log
        self.url = f"http://127.0.0.1:{port}{ROOT}"

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection()
        try:
            conn.request(
                method, path, body=body, headers={"Authorization": f"Bearer {self.key}", **(headers or {})}, **kwargs
            )
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gunicorn(
    real_services: RealServices, settings: Any, tmp_path: Path, make_api_key: Callable[..., str], org: Any
) -> Iterator[GunicornServer]:
    """gunicorn (2 threads, so two requests run at once) on the test database, API_MAX_UPLOAD_MB=1."""
    key = make_api_key(org, ("medical",))
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DATABASE_URL": real_services.database_url,
        "CELERY_BROKER_URL": real_services.broker_url,
        "VAR_DIR": str(tmp_path / "server-var"),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "SCRATCH_DIR": str(tmp_path / "server-scratch"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "API_MAX_UPLOAD_MB": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if real_services.cache_url:
        env["CACHE_URL"] = real_services.cache_url
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "core.wsgi:application", "-b", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "-w", "1", "--threads", "2", "--timeout", "300"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    live = GunicornServer(port, key, log)
    try:
        wait_until_serving(
            server,
            lambda: live.request("GET", f"{ROOT}/studies", headers={"Accept": "application/dicom+json"})[0] == 200,
            live.logs,
            what="gunicorn",
        )
        yield live
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _large_files() -> list[Path]:
    paths = [get_testdata_file(name) for name in LARGE_FILES]
    missing = [name for name, path in zip(LARGE_FILES, paths, strict=True) if path is None]
    assert not missing, f"pydicom-data files missing: {missing}"
    return [Path(str(path)) for path in paths]


def _assert_stored_identical(org: Any, paths: list[Path]) -> None:
    from apps.medical.models import Instance

    stored = {row.sop_instance_uid: row for row in Instance.objects.filter(organization=org)}
    for path in paths:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert uid in stored, f"{path.name} ({uid}) not stored"
        with default_storage.open(stored[uid].file, "rb") as handle:
            assert handle.read() == path.read_bytes(), f"{path.name} not byte-identical"


def _announce_only(server: GunicornServer, path: str, length: int) -> tuple[int, bytes]:
    """POST headers announcing `length` bytes and no body: the size limit answers before any read
    (sending the body would break the pipe once the server has answered and closed)."""
    conn = server.connection()
    try:
        conn.putrequest("POST", path)
        conn.putheader("Authorization", f"Bearer {server.key}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _referenced_count(body: bytes) -> int:
    return len(json.loads(body).get("00081199", {}).get("Value", []))


def test_a_chunked_body_of_several_mb_is_stored_byte_identical(
    gunicorn: GunicornServer, org: Any, tmp_path: Path
) -> None:
    # given: 20 CT instances and pydicom-data's large files, about 14 MB
    paths = ct_copies(tmp_path / "cts", 20) + _large_files()
    body = stow_body(paths)
    assert len(body) > 10 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        for offset in range(0, len(body), 65536):
            yield body[offset : offset + 65536]

    # when: Transfer-Encoding: chunked, no Content-Length
    status, headers, answer = gunicorn.request(
        "POST",
        f"{ROOT}/studies",
        body=chunks(),
        headers={"Content-Type": stow_content_type(), "Accept": "application/dicom+json"},
        encode_chunked=True,
    )

    # then: every instance stored (not "200 and nothing stored"), byte-identical
    assert status == 200, (answer[:2000], gunicorn.logs())
    assert headers["Content-Type"] == "application/dicom+json"
    assert _referenced_count(answer) == len(paths)
    _assert_stored_identical(org, paths)


def test_dicomweb_client_stores_a_chunked_body_and_searches(gunicorn: GunicornServer, org: Any, tmp_path: Path) -> None:
    from dicomweb_client.api import DICOMwebClient

    # given: 30 CT instances and a 2 MB MR, above dicomweb-client's 1 MB chunking threshold
    paths = [*ct_copies(tmp_path / "cts", 30), _large_files()[1]]
    datasets = [pydicom.dcmread(path) for path in paths]
    client = DICOMwebClient(url=gunicorn.url, headers={"Authorization": f"Bearer {gunicorn.key}"})

    # when
    answer = client.store_instances(datasets=datasets)

    # then: all referenced, none failed, stored
    assert len(answer.ReferencedSOPSequence) == len(paths), gunicorn.logs()
    assert "FailedSOPSequence" not in answer
    from apps.medical.models import Instance

    assert Instance.objects.filter(organization=org).count() == len(paths)

    # and: QIDO-RS finds both studies with their counts
    studies = client.search_for_studies()
    found = {study["0020000D"]["Value"][0]: study for study in studies}
    ct_study = str(datasets[0].StudyInstanceUID)
    assert set(found) == {ct_study, str(datasets[-1].StudyInstanceUID)}
    assert found[ct_study]["00201208"]["Value"] == [30]  # NumberOfStudyRelatedInstances
    only_ct = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert [study["0020000D"]["Value"][0] for study in only_ct] == [ct_study]


def test_a_body_above_the_upload_limit_is_accepted_by_stow_only(
    gunicorn: GunicornServer, org: Any, tmp_path: Path
) -> None:
    # given: API_MAX_UPLOAD_MB=1 on the server; a 4.4 MB STOW body with a Content-Length (also above
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB, where `request.body` would raise)
    paths = [*ct_copies(tmp_path / "cts", 3), _large_files()[2]]
    body = stow_body(paths)
    assert len(body) > 4 * 1024 * 1024

    # when
    status, _, answer = gunicorn.request(
        "POST", f"{ROOT}/studies", body=body, headers={"Content-Type": stow_content_type()}
    )
    limited, refusal = _announce_only(gunicorn, f"{ROOT}/series", len(body))

    # then: STOW streams it; another API endpoint refuses the same size with a 413
    assert status == 200, (answer[:2000], gunicorn.logs())
    _assert_stored_identical(org, paths)
    assert limited == 413, refusal[:500]
    assert json.loads(refusal)["error"]["code"] == "too_large"


def test_a_malformed_chunked_body_is_a_400_and_stores_nothing(gunicorn: GunicornServer, org: Any) -> None:
    # given: a body cut before its closing boundary, sent chunked
    body = stow_body([CT, MR])[:-2000]

    # when
    status, _, answer = gunicorn.request(
        "POST",
        f"{ROOT}/studies",
        body=iter([body[:5000], body[5000:]]),
        headers={"Content-Type": stow_content_type()},
        encode_chunked=True,
    )

    # then
    assert status == 400, answer[:500]
    assert json.loads(answer)["error"]["code"] == "bad_multipart"
    from apps.medical.models import Instance, Study

    assert (Instance.objects.count(), Study.objects.count()) == (0, 0)


@pytest.mark.parametrize("same_instances", [False, True], ids=["different-instances", "same-instances"])
def test_two_clients_storing_the_same_new_study_at_once(
    gunicorn: GunicornServer, org: Any, tmp_path: Path, same_instances: bool
) -> None:
    from apps.medical.models import Instance, Patient, Series, Study

    for round_ in range(ROUNDS):  # the race is timing-dependent: several tries per run
        # given: two bodies of one new study and series (different instances, or the same ones twice)
        study_uid, series_uid = f"1.2.826.0.1.3680043.8.498.4242.{round_}", f"1.2.826.0.1.3680043.8.498.4343.{round_}"
        changes = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, "PatientID": f"P{round_}"}
        first = ct_copies(tmp_path / f"a{round_}", 10, **changes)
        second = first if same_instances else ct_copies(tmp_path / f"b{round_}", 10, **changes)
        bodies = [stow_body(first), stow_body(second)]
        barrier = threading.Barrier(2)
        results: list[tuple[int, bytes]] = []

        def send(body: bytes, barrier: threading.Barrier = barrier, results: list[Any] = results) -> None:
            barrier.wait()
            status, _, answer = gunicorn.request(
                "POST", f"{ROOT}/studies", body=body, headers={"Content-Type": stow_content_type(BOUNDARY)}
            )
            results.append((status, answer))

        # when: both at once (gunicorn runs two requests in parallel)
        threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        # then: both answered 200; one patient, study and series row; the counts are right
        assert [status for status, _ in results] == [200, 200], (round_, results, gunicorn.logs())
        expected = 10 if same_instances else 20
        study = Study.objects.get(study_instance_uid=study_uid)
        assert Patient.objects.filter(patient_id=f"P{round_}").count() == 1
        assert Series.objects.filter(study=study).count() == 1
        assert Instance.objects.filter(series__study=study).count() == expected
        series = Series.objects.get(study=study)
        assert (study.number_of_series, study.number_of_instances, study.modalities_in_study) == (1, expected, "CT")
        assert series.number_of_instances == expected
        _assert_stored_identical(org, first + second)
