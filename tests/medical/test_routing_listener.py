"""Routing rules on C-STORE: a study sent to the DICOM listener is analysed once, when the
association ends, however many instances it carried. The listener serves from its own threads
with their own database connections, so these tests commit their rows (`transaction=True`);
the analysis job runs inline in the listener's thread (eager Celery)."""

from __future__ import annotations

import threading
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


class Routed:
    """Counts the listener's routing calls (one per association that stored something new).

    The tests wait on it instead of polling the database: the shared in-memory SQLite database
    answers a write in the listener's thread with "table is locked" while this thread reads
    (shared-cache locks ignore the busy timeout)."""

    def __init__(self) -> None:
        self.calls = 0
        self.changed = threading.Condition()

    def wait(self, calls: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.calls >= calls, timeout=WAIT_SECONDS), self.calls


@pytest.fixture
def routed_calls(monkeypatch: pytest.MonkeyPatch) -> Routed:
    from apps.medical import listener as listener_module

    routed = Routed()
    original = listener_module.studies_received_on_receipt

    def counted(**kwargs: Any) -> Any:
        try:
            return original(**kwargs)  # the analysis job runs inline (eager Celery) in here
        finally:
            with routed.changed:
                routed.calls += 1
                routed.changed.notify_all()

    monkeypatch.setattr(listener_module, "studies_received_on_receipt", counted)
    return routed


def finished_analyses(routed: Routed, *, calls: int = 1) -> list[Analysis]:
    """The analyses once the listener routed `calls` associations (their jobs ran inline)."""
    routed.wait(calls)
    analyses = list(Analysis.objects.select_related("job"))
    assert all(row.job.status in TERMINAL_STATUSES for row in analyses), analyses
    return analyses


def test_a_study_stored_by_c_store_is_analysed_once_when_the_association_ends(
    org: Any, routed: Any, listener: StorageListener, routed_calls: Routed
) -> None:
    # when an association stores three chest X-rays of one study
    files = mednist_files("CXR", count=3)
    assert send(listener.port, files) == [0x0000] * 3
    # then one analysis, by the rule, of all three
    (analysis,) = finished_analyses(routed_calls)
    assert analysis.trigger == AnalysisTrigger.ROUTING
    assert analysis.routing_rule_id == routed.pk
    assert analysis.job.status == JobStatus.SUCCEEDED, analysis.job.error
    assert analysis.findings.filter(level="instance").count() == 3
    assert Instance.objects.filter(received_via=ReceivedVia.CSTORE).count() == 3
    # and its SR is in the study
    assert Instance.objects.filter(sop_instance_uid=analysis.sr_sop_instance_uid, received_via="ai").exists()


def test_an_association_storing_nothing_new_routes_nothing(
    org: Any, routed: Any, listener: StorageListener, routed_calls: Routed
) -> None:
    files = mednist_files("CXR", count=1)
    send(listener.port, files)
    finished_analyses(routed_calls)
    # when the same instance is sent again (the same bytes: a no-op)
    send(listener.port, files)
    time.sleep(1.0)  # the listener handles the release in its own thread
    # then no second analysis
    assert Analysis.objects.count() == 1
