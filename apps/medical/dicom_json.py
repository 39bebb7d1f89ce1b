"""From a dataset to what the index stores: the QIDO-RS columns per level and the DICOM JSON
(PS3.18 F.2) of the instance without its bulk data.

Bulk values (pixel data and any binary value over `BULK_DATA_THRESHOLD` bytes) are not copied
into the database: their JSON carries `"BulkDataURI": "bulk/<tag>"`, relative to the instance,
which WADO-RS `/metadata` turns into an absolute URI for the request's host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.hooks import hooks
from pydicom.jsonrep import convert_to_python_number
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR, BYTES_VR, VR, PersonName

BULK_DATA_THRESHOLD = 1024
BULK_URI_PREFIX = "bulk/"


@dataclass(frozen=True)
class IndexAttributes:
    """The column values of the Patient, Study, Series and Instance rows for one dataset."""

    patient: dict[str, str]
    study: dict[str, str]
    series: dict[str, Any]
    instance: dict[str, Any]


def _text(dataset: Dataset, keyword: str, max_length: int) -> str:
    try:
        value = dataset.get(keyword)
    except Exception:  # noqa: BLE001  (a malformed value, e.g. a bad IS, raises on conversion: index it empty)
        return ""
    if value is None:
        return ""
    if isinstance(value, PersonName):  # iterable (its characters), but one value: never join it
        return str(value).strip()[:max_length]
    if isinstance(value, list | tuple) or (hasattr(value, "__iter__") and not isinstance(value, str | bytes)):
        try:
            value = "\\".join(str(part) for part in value)
        except TypeError:
            value = str(value)
    return str(value).strip()[:max_length]


def _integer(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None


def index_attributes(dataset: Dataset) -> IndexAttributes:
    """The indexed columns (lengths clipped to the columns', so no value can fail an insert)."""
    return IndexAttributes(
        patient={
            "patient_id": _text(dataset, "PatientID", 64),
            "issuer_of_patient_id": _text(dataset, "IssuerOfPatientID", 64),
            "patient_name": _text(dataset, "PatientName", 324),
            "birth_date": _text(dataset, "PatientBirthDate", 8),
            "sex": _text(dataset, "PatientSex", 16),
        },
        study={
            "study_date": _text(dataset, "StudyDate", 8),
            "study_time": _text(dataset, "StudyTime", 16),
            "accession_number": _text(dataset, "AccessionNumber", 16),
            "study_id": _text(dataset, "StudyID", 16),
            "study_description": _text(dataset, "StudyDescription", 64),
            "referring_physician_name": _text(dataset, "ReferringPhysicianName", 324),
        },
        series={
            "modality": _text(dataset, "Modality", 16),
            "series_number": _integer(dataset, "SeriesNumber"),
            "series_description": _text(dataset, "SeriesDescription", 64),
            "body_part_examined": _text(dataset, "BodyPartExamined", 16),
            "series_date": _text(dataset, "SeriesDate", 8),
            "series_time": _text(dataset, "SeriesTime", 16),
            "performed_procedure_step_start_date": _text(dataset, "PerformedProcedureStepStartDate", 8),
            "performed_procedure_step_start_time": _text(dataset, "PerformedProcedureStepStartTime", 16),
        },
        instance={
            "instance_number": _integer(dataset, "InstanceNumber"),
            "rows": _integer(dataset, "Rows"),
            "columns": _integer(dataset, "Columns"),
            "number_of_frames": _integer(dataset, "NumberOfFrames"),
            "burned_in_annotation": _text(dataset, "BurnedInAnnotation", 3),
        },
    )


def _bulk_uri(element: DataElement) -> str:
    return f"{BULK_URI_PREFIX}{element.tag:08X}"


# VRs whose DICOM JSON is the converted value itself (text and numbers: the general branch of
# pydicom's `DataElement.to_json_dict`); binary, ambiguous, SQ, PN and AT elements take pydicom's
# own path.
_OWN_PATH_VRS = frozenset(BYTES_VR | AMBIGUOUS_VR | {VR.SQ, VR.PN, VR.AT})
_SPECIFIC_CHARACTER_SET = BaseTag(0x00080005)


def _value_multiplicity(value: Any) -> int:
    """`DataElement.VM` of a converted value (pydicom 3's rules)."""
    if value is None:
        return 0
    if isinstance(value, str | bytes | PersonName):
        return 1 if value else 0
    try:
        iter(value)
    except TypeError:
        return 1
    return len(value)


def _value_json(raw: RawDataElement, dataset: Dataset, encoding: Any) -> dict[str, Any] | None:
    """The DICOM JSON of a raw text or number element, exactly as `DataElement.to_json_dict`
    writes it, or None for any other element (then pydicom's own path runs).

    It runs pydicom's own conversion hooks (VR lookup, value conversion with the dataset's
    character set) and pydicom's own rules (value multiplicity, empty values, numbers as JSON
    numbers); it leaves out building a DataElement, caching it in the dataset, and its
    properties, which were most of a STOW-RS request's time."""
    if raw.value is None and raw.length != 0:  # a deferred read: pydicom's path reads it
        return None
    data: dict[str, Any] = {}
    hooks.raw_element_vr(raw, data, encoding=encoding, ds=dataset)
    vr = data["VR"]
    if vr in _OWN_PATH_VRS:
        return None
    hooks.raw_element_value(raw, data, encoding=encoding, ds=dataset)
    if data["VR"] != vr:  # the value did not fit its VR (pydicom made it UN)
        return None
    value = data["value"]
    multiplicity = _value_multiplicity(value)
    if multiplicity == 0:
        return {"vr": vr}
    values = list(value) if multiplicity > 1 else [value]
    return {"vr": vr, "Value": convert_to_python_number(values, vr)}


def _to_json_dict(dataset: Dataset) -> dict[str, Any]:
    """`dataset.to_json_dict(...)` with the bulk data handler, text and number elements on the short path."""
    if config.data_element_callback or hooks.raw_element_kwargs:  # customised conversion: pydicom's way
        return dataset.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri)
    character_set = dataset.original_character_set or dataset._character_set
    attributes: dict[str, Any] = {}
    elements = dataset._dict
    for tag in list(elements):  # Dataset.to_json_dict's order: the dataset's keys
        raw = elements[tag]
        json_element = None
        if isinstance(raw, RawDataElement):
            encoding = default_encoding if tag == _SPECIFIC_CHARACTER_SET else character_set
            json_element = _value_json(raw, dataset, encoding)
        if json_element is None:
            json_element = dataset[tag].to_json_dict(
                bulk_data_element_handler=_bulk_uri, bulk_data_threshold=BULK_DATA_THRESHOLD
            )
        attributes[f"{tag:08X}"] = json_element
    return attributes


def dataset_attributes(dataset: Dataset) -> dict[str, Any]:
    """The dataset as DICOM JSON, bulk values as relative `bulk/<tag>` URIs (file meta excluded).

    The same as pydicom's `Dataset.to_json_dict` (tests/medical/test_dicom_json.py checks it on
    every pydicom test file), two to three times as fast."""
    try:
        return _to_json_dict(dataset)
    except Exception:  # noqa: BLE001  (pydicom cannot write some malformed values as JSON; keep the others)
        attributes: dict[str, Any] = {}
        for element in dataset:
            try:
                single = Dataset()
                single.add(element)
                attributes.update(
                    single.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri)
                )
            except Exception:  # noqa: BLE001, S112  (this one element cannot be written as JSON: leave it out)
                continue
        return attributes
