"""Retired storage SOP classes (Ultrasound Image Storage 1.2.840.10008.5.1.4.1.1.6, ...) are
stored by STOW-RS and accepted by the listener: a PACS migrating old studies sends them.

`color-pl.dcm` (pydicom's test data) is an ultrasound image of the retired class."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from pydicom.uid import UID

from apps.medical.dicom_files import RETIRED_STORAGE_SOP_CLASSES, STORAGE_SOP_CLASSES
from apps.medical.listener import StorageListener
from apps.medical.models import Instance
from apps.medical.services import dicom_node_create
from core.tenancy.actors import Actor
from tests.medical.conftest import dicom_path
from tests.medical.test_listener import LISTENER_AE, MODALITY_AE, scu_associations

RETIRED_US = "color-pl.dcm"
ULTRASOUND_IMAGE_STORAGE_RETIRED = "1.2.840.10008.5.1.4.1.1.6"


@pytest.fixture
def associate(org: Any) -> Iterator[Callable[..., Any]]:
    """A listener, the node MODALITY_AE of acme, and `associate(*files)` to it (see test_listener)."""
    dicom_node_create(actor=Actor.system(org), ae_title=MODALITY_AE)
    scp = StorageListener(ae_title=LISTENER_AE, port=0, address="127.0.0.1")
    scp.start()
    try:
        with scu_associations(scp.port) as open_association:
            yield open_association
    finally:
        scp.stop()


def test_the_retired_storage_classes_come_from_pydicoms_dictionary() -> None:
    # then: the retired image, standalone and trial storage classes, and nothing that is not storage
    assert ULTRASOUND_IMAGE_STORAGE_RETIRED in RETIRED_STORAGE_SOP_CLASSES
    assert {"1.2.840.10008.5.1.4.1.1.5", "1.2.840.10008.5.1.4.1.1.3", "1.2.840.10008.5.1.4.1.1.88.1"} <= (
        RETIRED_STORAGE_SOP_CLASSES
    )
    assert all(UID(uid).is_retired for uid in RETIRED_STORAGE_SOP_CLASSES)
    assert "1.2.840.10008.1.20.2" not in STORAGE_SOP_CLASSES  # Storage Commitment Pull Model
    assert "1.2.840.10008.5.1.1.29" not in STORAGE_SOP_CLASSES  # Hardcopy Grayscale Image (print)


@pytest.mark.django_db
def test_stow_stores_an_instance_of_a_retired_storage_class(org: Any, stow: Callable[..., Any]) -> None:
    # given
    ds = pydicom.dcmread(dicom_path(RETIRED_US))
    assert ds.SOPClassUID == ULTRASOUND_IMAGE_STORAGE_RETIRED
    # when
    response = stow([RETIRED_US])
    # then
    assert response.status_code == 200, response.content
    instance = Instance.objects.get(organization=org, sop_instance_uid=ds.SOPInstanceUID)
    assert instance.sop_class_uid == ULTRASOUND_IMAGE_STORAGE_RETIRED
    with default_storage.open(instance.file, "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(dicom_path(RETIRED_US).read_bytes()).digest()


@pytest.mark.django_db(transaction=True)
def test_the_listener_accepts_and_stores_a_retired_storage_class(org: Any, associate: Callable[..., Any]) -> None:
    # given: an association proposing the retired class (pynetdicom's SCP list lacks it)
    assoc = associate(dicom_path(RETIRED_US))
    assert assoc.is_established
    [context] = [c for c in assoc.accepted_contexts if c.abstract_syntax == ULTRASOUND_IMAGE_STORAGE_RETIRED]
    # when
    status = assoc.send_c_store(dicom_path(RETIRED_US))
    # then
    assert status.Status == 0x0000
    assert Instance.objects.filter(organization=org, sop_class_uid=ULTRASOUND_IMAGE_STORAGE_RETIRED).count() == 1
    assert context.transfer_syntax


@pytest.mark.django_db
def test_a_print_management_class_is_still_refused(org: Any, stow: Callable[..., Any], tmp_path: Any) -> None:
    # given: an image claiming Hardcopy Grayscale Image Storage SOP Class (retired print management)
    ds = pydicom.dcmread(dicom_path(RETIRED_US))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.1.29")
    path = tmp_path / "hardcopy.dcm"
    ds.save_as(path, enforce_file_format=True)
    # when
    response = stow([path])
    # then: 409, SOP class not supported (0x0122), nothing stored
    assert response.status_code == 409, response.content
    [item] = response.json()["00081198"]["Value"]
    assert item["00081197"]["Value"] == [0x0122]
    assert not Instance.objects.filter(organization=org).exists()
