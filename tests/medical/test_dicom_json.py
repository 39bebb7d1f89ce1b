"""`dicom_json.dataset_attributes` writes exactly what pydicom's `Dataset.to_json_dict` writes
(with the archive's bulk data handler), for every DICOM file pydicom and pydicom-data ship:
its short path for text elements must not change a stored attribute."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from apps.medical.dicom_json import BULK_DATA_THRESHOLD, _bulk_uri, dataset_attributes
from tests.medical.conftest import CT, dicom_path


def _parse(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def test_the_attributes_are_pydicoms_json_for_every_test_file() -> None:
    compared = 0
    for path in sorted(set(get_testdata_files("*"))):
        if not Path(path).is_file():
            continue
        data = Path(path).read_bytes()
        try:
            expected = _parse(data).to_json_dict(
                bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri
            )
        except Exception:  # noqa: BLE001, S112  (not DICOM, or pydicom cannot write it as JSON: the fallback's case)
            continue
        assert dataset_attributes(_parse(data)) == expected, path
        compared += 1
    assert compared > 100  # pydicom's and pydicom-data's DICOM files


def test_the_short_path_leaves_nothing_for_later_code_to_miss() -> None:
    # given: a dataset whose text elements were never converted
    ds = pydicom.dcmread(dicom_path(CT))
    # when
    attributes = dataset_attributes(ds)
    # then: the dataset still reads normally afterwards (the elements convert when asked for)
    assert attributes["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert attributes["00080060"] == {"vr": "CS", "Value": ["CT"]}
    assert ds.Modality == "CT" and ds.PatientName == "CompressedSamples^CT1"
    assert ds.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri) == attributes


@pytest.mark.parametrize(
    ("raw_value", "expected"),
    [
        (b"ORIGINAL\\PRIMARY\\AXIAL", {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]}),
        (b"A\\\\B ", {"vr": "CS", "Value": ["A", "", "B"]}),
        (b"  ", {"vr": "CS"}),
        (b"", {"vr": "CS"}),
    ],
)
def test_multiple_and_empty_values_as_pydicom_writes_them(raw_value: bytes, expected: dict[str, object]) -> None:
    # given: ImageType (CS) with the raw value, in a dataset read from bytes
    ds = pydicom.dcmread(dicom_path(CT), stop_before_pixels=True)
    ds.ImageType = raw_value.decode()
    ds.save_as(buffer := io.BytesIO(), enforce_file_format=True)
    buffer.seek(0)
    fresh = pydicom.dcmread(buffer)
    # then
    assert dataset_attributes(fresh)["00080008"] == expected
