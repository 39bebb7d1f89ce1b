"""From a dataset to what the index stores: the QIDO-RS columns per level and the DICOM JSON
(PS3.18 F.2) of the instance without its bulk data.

Bulk values (pixel data and any binary value over `BULK_DATA_THRESHOLD` bytes) are not copied
into the database: their JSON carries `"BulkDataURI": "bulk/<tag>"`, relative to the instance,
which WADO-RS `/metadata` turns into an absolute URI for the request's host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

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


def dataset_attributes(dataset: Dataset) -> dict[str, Any]:
    """The dataset as DICOM JSON, bulk values as relative `bulk/<tag>` URIs (file meta excluded)."""
    try:
        return dataset.to_json_dict(bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_bulk_uri)
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
