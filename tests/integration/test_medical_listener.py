"""The DICOM listener as `make run` starts it (`manage.py dicom_listener`, its own process) on
PostgreSQL: a real pynetdicom SCU echoes and stores real files; the rows are in the database,
the instances come back from WADO-RS byte for byte as stored, unknown AE titles are refused,
two associations storing into one series at once leave its counts right, and SIGTERM stops
the process cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association

from apps.medical.models import Instance, Series, Study
from apps.medical.services import dicom_node_create
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, MR, MULTIFRAME_J2K, dicom_path
from tests.medical.test_listener import LISTENER_AE, MODALITY_AE, scu_associations
from tests.realservices import REPO_ROOT, RealServices, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

START_TIMEOUT_S = 60.0


@dataclass
class ListenerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listener(real_services: RealServices, settings: Any, tmp_path: Path) -> Iterator[ListenerProcess]:
    """`manage.py dicom_listener` on this test's database and media folder."""
    assert connection.vendor == "postgresql"
    port = _free_port()
    log_path = tmp_path / "listener.log"
    env = worker_env(services=real_services, settings=settings, var_dir=tmp_path / "listener-var")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "dicom_listener", "--port", str(port), "--bind", "127.0.0.1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = ListenerProcess(process=process, port=port, log_path=log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, running.logs()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"not listening after {START_TIMEOUT_S:.0f} s:\n{running.logs()}"
            time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def node(org: Any) -> Any:
    return dicom_node_create(actor=Actor.system(org), ae_title=MODALITY_AE, host="127.0.0.1")


@pytest.fixture
def associate(listener: ListenerProcess) -> Iterator[Callable[..., Association]]:
    with scu_associations(listener.port) as open_association:
        yield open_association


def _retrieve(api: Any, instance: Instance) -> bytes:
    series = instance.series
    response = api.get(
        f"/api/v1/medical/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert response.status_code == 200, response.content[:300] if not response.streaming else response.status_code
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def test_echo_and_store_through_the_listener_process(
    listener: ListenerProcess, node: Any, org: Any, api: Any, associate: Callable[..., Association]
) -> None:
    # given
    files = [dicom_path(name) for name in (CT, MR, MULTIFRAME_J2K, "SC_rgb_rle.dcm", "JPEG-LL.dcm")]
    assoc = associate(*files)
    assert assoc.is_established, listener.logs()
    # when
    echo = assoc.send_c_echo()
    statuses = [assoc.send_c_store(path).Status for path in files]
    assoc.release()
    # then
    assert echo.Status == 0x0000
    assert statuses == [0x0000] * len(files), listener.logs()
    for path in files:
        source = pydicom.dcmread(path)
        instance = Instance.objects.select_related("series__study").get(
            organization=org, sop_instance_uid=source.SOPInstanceUID
        )
        assert instance.received_via == "cstore"
        assert instance.transfer_syntax_uid == source.file_meta.TransferSyntaxUID
        with default_storage.open(instance.file, "rb") as handle:
            stored = handle.read()
        assert len(stored) == instance.size_bytes
        # WADO-RS gives back the stored bytes
        assert stored in _retrieve(api, instance)
    assert AuditEvent.objects.filter(organization=org, action="medical.instance.store").count() == len(files)
    assert all(
        event.request_id.startswith(f"dimse:{MODALITY_AE}:")
        for event in AuditEvent.objects.filter(organization=org, action="medical.instance.store")
    )
    logs = listener.logs()
    assert f"Association from AE '{MODALITY_AE}' at 127.0.0.1 accepted" in logs
    assert f"{len(files)} instance(s) accepted" in logs


def test_unknown_titles_are_refused_and_nothing_is_stored(
    listener: ListenerProcess, node: Any, associate: Callable[..., Association]
) -> None:
    # when
    assoc = associate(dicom_path(CT), calling="STRANGER")
    # then
    assert assoc.is_rejected
    primitive = assoc.acceptor.primitive
    assert primitive is not None
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (0x01, 0x01, 0x03)
    assert not Instance.objects.exists()
    assert "Association from AE 'STRANGER' at 127.0.0.1 rejected" in listener.logs()


def test_two_associations_into_one_series_at_once_keep_the_counts(
    listener: ListenerProcess, node: Any, org: Any, tmp_path: Path
) -> None:
    # given: 20 instances of one new series, sent half by each of two associations in parallel
    source = pydicom.dcmread(dicom_path(CT))
    source.StudyInstanceUID, source.SeriesInstanceUID = generate_uid(), generate_uid()
    paths = []
    for number in range(20):
        source.SOPInstanceUID = generate_uid()
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        source.InstanceNumber = number + 1
        path = tmp_path / f"ct-{number}.dcm"
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    statuses: list[int] = []

    def send(part: list[Path]) -> None:
        ae = AE(ae_title=MODALITY_AE)
        ae.add_requested_context(source.SOPClassUID, source.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", listener.port, ae_title=LISTENER_AE)
        assert assoc.is_established
        statuses.extend(int(assoc.send_c_store(path).Status) for path in part)
        assoc.release()

    # when
    threads = [threading.Thread(target=send, args=(paths[start::2],)) for start in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # then
    assert statuses == [0] * 20, listener.logs()
    series = Series.objects.get(organization=org, series_instance_uid=source.SeriesInstanceUID)
    study = Study.objects.get(organization=org, study_instance_uid=source.StudyInstanceUID)
    assert series.number_of_instances == 20 == series.instances.count()
    assert (study.number_of_series, study.number_of_instances) == (1, 20)


def test_sigterm_stops_the_listener_cleanly(listener: ListenerProcess, node: Any) -> None:
    # when
    listener.process.send_signal(signal.SIGTERM)
    code = listener.process.wait(timeout=15)
    # then
    assert code == 0, listener.logs()
    assert "DICOM listener stopped." in listener.logs()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", listener.port)) != 0
