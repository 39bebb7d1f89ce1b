"""Routing rules on C-STORE: a study sent to the DICOM listener is analysed once, when the
association ends, however many instances it carried. The listener serves from its own threads
with their own database connections, so these tests commit their rows (`transaction=True`);
the analysis job runs inline in the listener's thread (eager Celery)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

from apps.medical.choices import AnalysisTrigger, ReceivedVia
from apps.medical.listener import StorageListener
from apps.medical.models import Analysis, Instance
from apps.medical.routing import routing_rule_create
from apps.medical.services import dicom_node_create
from core.jobs.choices import TERMINAL_STATUSES, JobStatus
from core.tenancy.actors import Actor
from tests.medical.diagnosis_fixtures import classifier_version, mednist_files, requires_mednist

pytestmark = [pytest.mark.django_db(transaction=True), requires_mednist]

LISTENER_AE = "TESSERA"
MODALITY_AE = "XRAY_ROOM_1"
WAIT_SECONDS = 120


@pytest.fixture
def listener() -> Iterator[StorageListener]:
    scp = StorageListener(ae_title=LISTENER_AE, port=0, address="127.0.0.1")
    scp.start()
    yield scp
    scp.stop()


@pytest.fixture
def routed(org: Any) -> Any:
    """A node allowed to send, and a rule sending chest X-rays to the classifier."""
    actor = Actor.system(org)
    dicom_node_create(actor=actor, ae_title=MODALITY_AE)
    version = classifier_version(org)
    return routing_rule_create(
        actor=actor, name="chest", registered_model=version.registered_model, series_description_pattern="cxr"
    )


def send(port: int, files: list[Path]) -> list[int]:
    """One association storing every file; released at the end. Returns the C-STORE statuses."""
    ae = AE(ae_title=MODALITY_AE)
    ae.add_requested_context(Verification)
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTENER_AE)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(path).Status) for path in files]
    finally:
        assoc.release()


def finished_analyses(expected: int) -> list[Analysis]:
    """Wait (the listener's thread routes after the release) until `expected` analyses are done."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        analyses = list(Analysis.objects.select_related("job"))
        if len(analyses) >= expected and all(row.job.status in TERMINAL_STATUSES for row in analyses):
            return analyses
        time.sleep(0.2)
    raise AssertionError(f"{expected} finished analyses expected; have {list(Analysis.objects.all())}")


def test_a_study_stored_by_c_store_is_analysed_once_when_the_association_ends(
    org: Any, routed: Any, listener: StorageListener
) -> None:
    # when an association stores three chest X-rays of one study
    files = mednist_files("CXR", count=3)
    assert send(listener.port, files) == [0x0000] * 3
    # then one analysis, by the rule, of all three
    (analysis,) = finished_analyses(1)
    assert analysis.trigger == AnalysisTrigger.ROUTING
    assert analysis.routing_rule_id == routed.pk
    assert analysis.job.status == JobStatus.SUCCEEDED, analysis.job.error
    assert analysis.findings.filter(level="instance").count() == 3
    assert Instance.objects.filter(received_via=ReceivedVia.CSTORE).count() == 3
    # and its SR is in the study
    assert Instance.objects.filter(sop_instance_uid=analysis.sr_sop_instance_uid, received_via="ai").exists()


def test_an_association_storing_nothing_new_routes_nothing(org: Any, routed: Any, listener: StorageListener) -> None:
    files = mednist_files("CXR", count=1)
    send(listener.port, files)
    finished_analyses(1)
    # when the same instance is sent again (the same bytes: a no-op)
    send(listener.port, files)
    time.sleep(1.0)  # the listener handles the release in its own thread
    # then no second analysis
    assert Analysis.objects.count() == 1
