"""The DICOM listener (apps/medical/listener.py) through a real pynetdicom SCU: association
acceptance by calling AE title, host and called AE title; C-ECHO; C-STORE of real files in
native and compressed transfer syntaxes, refusals and the duplicates policy.

The listener serves from its own threads with their own database connections, so these tests
commit their rows (`transaction=True`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

from apps.medical.choices import DuplicatePolicy, ReceivedVia
from apps.medical.listener import StorageListener, failure_status, node_actor, peer_matches
from apps.medical.models import Instance
from apps.medical.services import archive_settings_update, dicom_node_create, dicom_node_update
from core.audit.models import AuditEvent
from core.errors import PermissionDenied
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, MR, MULTIFRAME_J2K, dicom_path

pytestmark = pytest.mark.django_db(transaction=True)

LISTENER_AE = "TESSERA"
MODALITY_AE = "CT_SCANNER"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener() -> Iterator[StorageListener]:
    scp = StorageListener(ae_title=LISTENER_AE, port=0, address="127.0.0.1")
    scp.start()
    yield scp
    scp.stop()


@pytest.fixture
def send_files_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SCU sends a file's encoded data set without decoding it (as many modalities and
    PACS do), instead of pydicom's read and re-encode."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


@pytest.fixture
def node(org: Any) -> Any:
    return dicom_node_create(actor=Actor.system(org), ae_title=MODALITY_AE, description="CT in room 3")


@contextlib.contextmanager
def scu_associations(port: int) -> Iterator[Callable[..., Association]]:
    """`associate(*files, calling=..., called=...)`: a pynetdicom SCU association to the listener
    at `port` proposing Verification and each file's SOP class in its own transfer syntax; every
    one still established is released when the block ends."""
    opened: list[Association] = []

    def open_association(*files: Path, calling: str = MODALITY_AE, called: str = LISTENER_AE) -> Association:
        ae = AE(ae_title=calling)
        ae.add_requested_context(Verification)
        for path in files:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        opened.append(assoc)
        return assoc

    try:
        yield open_association
    finally:
        for assoc in opened:
            if assoc.is_established:
                assoc.release()


@pytest.fixture
def associate(listener: StorageListener) -> Iterator[Callable[..., Association]]:
    with scu_associations(listener.port) as open_association:
        yield open_association


def rejection(assoc: Association) -> tuple[int, int, int]:
    primitive = assoc.acceptor.primitive
    assert primitive is not None
    return primitive.result, primitive.result_source, primitive.diagnostic  # type: ignore[return-value]  # set on a rejection


def stored_dataset(instance: Instance) -> Dataset:
    with default_storage.open(instance.file, "rb") as handle:
        return pydicom.dcmread(handle)


def modified_copy(source: Path, target: Path, **changes: Any) -> Path:
    dataset = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(target, enforce_file_format=True)
    return target


# --- association --------------------------------------------------------------------------------


def test_c_echo_from_a_configured_node_succeeds(node: Any, associate: Callable[..., Association]) -> None:
    # given
    assoc = associate()
    assert assoc.is_established
    # when
    status = assoc.send_c_echo()
    # then
    assert status.Status == 0x0000


def test_an_unknown_calling_ae_title_is_rejected_at_association(
    node: Any, associate: Callable[..., Association]
) -> None:
    # when
    assoc = associate(calling="NOBODY")
    # then: A-ASSOCIATE-RJ, rejected-permanent, service user, calling AE title not recognised
    assert assoc.is_rejected
    assert rejection(assoc) == (0x01, 0x01, 0x03)


def test_an_inactive_node_is_rejected(org: Any, node: Any, associate: Callable[..., Association]) -> None:
    # given
    dicom_node_update(actor=Actor.system(org), node=node, data={"active": False})
    # when
    assoc = associate()
    # then
    assert assoc.is_rejected
    assert rejection(assoc) == (0x01, 0x01, 0x03)


def test_a_peer_other_than_the_nodes_host_is_rejected(
    org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given: the node may only call from 10.9.8.7
    dicom_node_update(actor=Actor.system(org), node=node, data={"host": "10.9.8.7"})
    # when: it calls from 127.0.0.1
    assoc = associate()
    # then
    assert assoc.is_rejected
    assert rejection(assoc) == (0x01, 0x01, 0x03)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_peer_at_the_nodes_host_is_accepted(
    host: str, org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given
    dicom_node_update(actor=Actor.system(org), node=node, data={"host": host})
    # when
    assoc = associate()
    # then
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000


def test_a_called_ae_title_other_than_the_listeners_is_rejected(
    node: Any, associate: Callable[..., Association]
) -> None:
    # when
    assoc = associate(called="SOMEONE_ELSE")
    # then: called AE title not recognised
    assert assoc.is_rejected
    assert rejection(assoc) == (0x01, 0x01, 0x07)


def test_a_deleted_nodes_title_is_rejected(org: Any, associate: Callable[..., Association]) -> None:
    # given: a title that was configured and then removed
    from apps.medical.services import dicom_node_delete

    node = dicom_node_create(actor=Actor.system(org), ae_title="OLD_PACS")
    dicom_node_delete(actor=Actor.system(org), node=node)
    # when
    assoc = associate(calling="OLD_PACS")
    # then
    assert assoc.is_rejected


@pytest.mark.parametrize(
    ("host", "address", "expected"),
    [
        ("", "192.0.2.1", True),
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "::ffff:192.0.2.1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("2001:db8::1", "2001:db8:0:0::1", True),
        ("localhost", "127.0.0.1", True),
        ("no-such-host.invalid", "127.0.0.1", False),
    ],
)
def test_peer_matches(host: str, address: str, expected: bool) -> None:
    # when / then
    assert peer_matches(host, address) is expected


# --- C-STORE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        CT,  # explicit VR little endian
        MR,
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",  # deflated
        MULTIFRAME_J2K,  # JPEG 2000 lossless, 10 frames
        "SC_jpeg_no_color_transform.dcm",  # JPEG baseline
        "JPEG-LL.dcm",  # JPEG lossless
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS
        "MR_small_RLE.dcm",  # RLE
    ],
)
def test_c_store_stores_the_instance_as_sent(
    name: str, org: Any, node: Any, associate: Callable[..., Association], send_files_as_they_are: None
) -> None:
    # given
    source = dicom_path(name)
    expected = pydicom.dcmread(source)
    assoc = associate(source)
    # when
    status = assoc.send_c_store(source)
    # then: success, one instance in the node's organization, received via C-STORE
    assert status.Status == 0x0000
    instance = Instance.objects.get(organization=org, sop_instance_uid=expected.SOPInstanceUID)
    assert instance.received_via == ReceivedVia.CSTORE
    assert instance.transfer_syntax_uid == expected.file_meta.TransferSyntaxUID
    # and the stored file is the data set byte for byte as sent, after the association's file
    # meta, in the same transfer syntax, with the same pixels
    stored = stored_dataset(instance)
    assert stored.file_meta.TransferSyntaxUID == expected.file_meta.TransferSyntaxUID
    with default_storage.open(instance.file, "rb") as handle:
        stored_bytes = handle.read()
    source_bytes = source.read_bytes()
    assert stored_bytes.endswith(source_bytes[_data_set_offset(source) :])
    assert np.array_equal(stored.pixel_array, expected.pixel_array)


def _data_set_offset(path: Path) -> int:
    with path.open("rb") as handle:
        pydicom.filereader.read_preamble(handle, False)
        pydicom.filereader._read_file_meta_info(handle)
        return handle.tell()


def test_c_store_of_a_re_encoded_data_set_keeps_its_pixels(
    org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given: a Dataset (not a file), which the SCU encodes itself
    dataset = pydicom.dcmread(dicom_path(CT))
    assoc = associate(dicom_path(CT))
    # when
    status = assoc.send_c_store(dataset)
    # then
    assert status.Status == 0x0000
    stored = stored_dataset(Instance.objects.get(organization=org))
    assert stored.SOPInstanceUID == dataset.SOPInstanceUID
    assert np.array_equal(stored.pixel_array, dataset.pixel_array)


def test_the_audit_row_names_the_calling_ae_and_the_peer(
    org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given
    assoc = associate(dicom_path(CT))
    # when
    assert assoc.send_c_store(dicom_path(CT)).Status == 0x0000
    # then
    event = AuditEvent.objects.get(organization=org, action="medical.instance.store")
    assert event.request_id.startswith(f"dimse:{MODALITY_AE}:")
    assert event.ip_address == "127.0.0.1"
    assert event.details["received_via"] == ReceivedVia.CSTORE
    # and: the actor is the sending node (its id, AE title and address), not "system"
    assert event.actor_label == f"dicom-node:{node.pk}:{MODALITY_AE}@127.0.0.1"
    assert event.actor_user is None and event.actor_api_key is None


def test_the_node_actor_has_no_role_and_only_the_medical_scope(org: Any, node: Any) -> None:
    # when
    actor = node_actor(node, "::ffff:10.1.2.3")
    # then: an external system, never an org admin; the IPv4-mapped peer is written as IPv4
    assert actor.label == f"dicom-node:{node.pk}:{MODALITY_AE}@10.1.2.3"
    assert (actor.user, actor.api_key, actor.is_org_admin) == (None, None, False)
    assert actor.scopes == frozenset({"medical"})
    with pytest.raises(PermissionDenied):
        actor.require_org_admin("delete studies", key_scope="medical")


def test_instances_go_to_the_archive_of_the_calling_nodes_organization(
    org: Any, other_org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given: another organization's modality
    dicom_node_create(actor=Actor.system(other_org), ae_title="GLOBEX_MR")
    assoc = associate(dicom_path(MR), calling="GLOBEX_MR")
    # when
    assert assoc.send_c_store(dicom_path(MR)).Status == 0x0000
    # then
    assert Instance.objects.filter(organization=other_org).count() == 1
    assert not Instance.objects.filter(organization=org).exists()


@pytest.mark.parametrize(
    ("missing", "status"),
    [("StudyInstanceUID", 0xA900), ("SeriesInstanceUID", 0xA900), ("SOPInstanceUID", 0xA900)],
)
def test_a_data_set_without_its_uids_is_refused_and_nothing_is_stored(
    missing: str,
    status: int,
    node: Any,
    associate: Callable[..., Association],
    tmp_path: Path,
    send_files_as_they_are: None,
) -> None:
    # given: CT_small without one of its UIDs (the file meta still names the instance)
    source = modified_copy(dicom_path(CT), tmp_path / "broken.dcm", **{missing: None})
    assoc = associate(source)
    # when
    answer = assoc.send_c_store(source)
    # then: a failure status with a comment, and no row, no file, no audit row of a store
    assert answer.Status == status
    assert "Missing or invalid" in str(answer.ErrorComment)
    assert not Instance.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="medical.instance").exists()
    assert not _stored_files()


def test_pixel_data_shorter_than_the_image_is_refused(
    node: Any, associate: Callable[..., Association], tmp_path: Path
) -> None:
    # given: CT_small whose pixel data lost half its bytes (a consistent but short element)
    dataset = pydicom.dcmread(dicom_path(CT))
    source = modified_copy(
        dicom_path(CT), tmp_path / "short.dcm", PixelData=dataset.PixelData[: len(dataset.PixelData) // 2]
    )
    assoc = associate(source)
    # when
    answer = assoc.send_c_store(source)
    # then
    assert answer.Status == 0xC000
    assert not Instance.objects.exists()
    assert not _stored_files()


def _stored_files() -> list[str]:
    root = Path(default_storage.location)  # type: ignore[attr-defined]  # FileSystemStorage in tests
    return [str(path) for path in root.rglob("*.dcm")] if root.exists() else []


@pytest.mark.parametrize(
    ("policy", "status", "stored_name"),
    [
        # warning "elements discarded": the stored copy stays
        (DuplicatePolicy.KEEP, 0xB006, "CompressedSamples^CT1"),
        # failure "duplicate SOP instance"
        (DuplicatePolicy.REJECT, 0x0111, "CompressedSamples^CT1"),
        (DuplicatePolicy.OVERWRITE, 0x0000, "Changed^Name"),
    ],
)
def test_a_different_copy_of_a_stored_instance_follows_the_duplicates_policy(
    policy: str,
    status: int,
    stored_name: str,
    org: Any,
    node: Any,
    associate: Callable[..., Association],
    tmp_path: Path,
) -> None:
    # given: CT_small stored, then a different copy with the same SOP Instance UID
    archive_settings_update(actor=Actor.system(org), duplicate_policy=policy)
    changed = modified_copy(dicom_path(CT), tmp_path / "changed.dcm", PatientName="Changed^Name")
    assoc = associate(dicom_path(CT))
    assert assoc.send_c_store(dicom_path(CT)).Status == 0x0000
    # when
    answer = assoc.send_c_store(changed)
    # then
    assert answer.Status == status
    instance = Instance.objects.get(organization=org)
    assert str(stored_dataset(instance).PatientName) == stored_name


def test_the_same_bytes_twice_are_a_success_and_a_no_op(
    org: Any, node: Any, associate: Callable[..., Association]
) -> None:
    # given
    assoc = associate(dicom_path(CT))
    assert assoc.send_c_store(dicom_path(CT)).Status == 0x0000
    # when
    answer = assoc.send_c_store(dicom_path(CT))
    # then
    assert answer.Status == 0x0000
    assert Instance.objects.filter(organization=org).count() == 1
    assert AuditEvent.objects.filter(action="medical.instance.store").count() == 1


def test_an_error_of_the_archive_answers_out_of_resources(
    node: Any, associate: Callable[..., Association], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: storage fails (a full disk)
    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("apps.medical.listener.instance_store", full_disk)
    assoc = associate(dicom_path(CT))
    # when
    answer = assoc.send_c_store(dicom_path(CT))
    # then: the sender may retry later
    assert answer.Status == 0xA700
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("reason", "status"),
    [(0xC000, 0xC000), (0xA900, 0xA900), (0x0122, 0x0122), (0x0111, 0x0111), (0xC122, 0xC122), (0x1234, 0xC000)],
)
def test_failure_status(reason: int, status: int) -> None:
    # when / then
    assert failure_status(reason) == status


# --- the management command -------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [["--port", "70000"], ["--ae-title", "A" * 17], ["--ae-title", "BACK\\SLASH"]])
def test_the_command_refuses_bad_options(arguments: list[str]) -> None:
    # when / then
    with pytest.raises(CommandError):
        call_command("dicom_listener", *arguments)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    # given: the listener as `make run` starts it
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "dicom_listener", "--port", str(port), "--bind", "127.0.0.1"],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_ENV": "test", "VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        # when
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    # then
    assert process.returncode == 0, output.decode()
    text = output.decode()
    assert f"DICOM listener TESSERA on port {port}" in text
    assert "DICOM listener stopped." in text
