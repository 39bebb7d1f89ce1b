"""`apps.medical.structured_reports`: the AI result SR (TID 1500) and the saliency secondary capture.

Every object is written as the archive stores it (`dcmwrite(..., enforce_file_format=True)`) and
checked by the external validators (dicom3tools' dciodvfy, PixelMed's DicomSRValidator) and by
reading it back with highdicom. Sources are real files: MedNIST captures and pydicom's CT and MR.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from apps.medical import saliency
from apps.medical.structured_reports import (
    AI_SERIES_DESCRIPTION,
    CODING_SCHEME,
    DECISION_CODES,
    PROBABILITY_OF_FINDING,
    SALIENCY_SERIES_DESCRIPTION,
    VERIFIED_SERIES_DESCRIPTION,
    AiFinding,
    Algorithm,
    Verification,
    ai_result_read,
    ai_result_sr,
    label_code,
    probability_concept,
    saliency_secondary_capture,
)
from fixtures.medical_synthetic import synthetic_chests
from tests.conftest import SHARED_DATA
from tests.medical.dicom_validators import (
    dciodvfy_errors,
    dciodvfy_warnings,
    pixelmed_sr_report,
    require_validator,
)

MEDNIST_DICOM = SHARED_DATA / "medical_mednist" / "dicom"
WHEN = datetime(2025, 3, 14, 9, 26, 53)
SIGNED = datetime(2025, 3, 14, 11, 5, 0, tzinfo=UTC)
ALGORITHM = Algorithm(name="chest-xray-classifier", version="7", artifact_sha256="0f" * 32)
MEDNIST_CLASSES = ("AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT")

# dciodvfy warnings that are not ours to fix, each with why:
ACCEPTED_DCIODVFY_WARNINGS = (
    # The private coding scheme of the hospital's class labels: dciodvfy knows only the standard
    # designators; PS3.16 reserves the "99" prefix for exactly this, and the SR declares it in
    # the Coding Scheme Identification Sequence.
    f"Unrecognized defined term <{CODING_SCHEME}>",
    # The MedNIST sources have no study date, time or ID; they are Type 2, copied empty.
    "needed to build DICOMDIR - Study Date",
    "needed to build DICOMDIR - Study Time",
    "needed to build DICOMDIR - Study ID",
    # emri_small's Patient ID is empty (Type 2); copied with the patient module.
    "needed to build DICOMDIR - Patient ID",
    # The patient's name is copied from the source ("Anonymous", a one-component name).
    "Retired Person Name form",
    # CT_small's patient weight is 0; copied with the patient module.
    "Value is zero for value 1 of attribute <Patient's Weight>",
)

requires_mednist = pytest.mark.skipif(not MEDNIST_DICOM.exists(), reason="MedNIST sample data not present")


def mednist(label: str, count: int) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path) for path in sorted((MEDNIST_DICOM / label).glob("*.dcm"))[:count]]


def pydicom_file(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(str(get_testdata_file(name)))


def uniform_probabilities(classes: tuple[str, ...], top: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(classes) - 1)
    return {label: (p if label == top else rest) for label in classes}


def write(ds: pydicom.Dataset, path: Path) -> Path:
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def our_dciodvfy_warnings(path: Path, *, accepted: tuple[str, ...] = ACCEPTED_DCIODVFY_WARNINGS) -> list[str]:
    return [warning for warning in dciodvfy_warnings(path) if not any(text in warning for text in accepted)]


def build_case(name: str) -> dict[str, Any]:
    """One SR case: its inputs and the dataset `ai_result_sr` returns for them."""
    if name == "mednist-2-class-unverified":
        sources = mednist("CXR", 2)
        finding = AiFinding(
            label="CXR",
            probability=0.875,
            probabilities={"CXR": 0.875, "Hand": 0.125},
            source_instances=sources,
            per_instance=[(str(ds.SOPInstanceUID), "CXR", 0.875 - 0.1 * i) for i, ds in enumerate(sources)],
        )
        verification = None
    elif name == "mednist-6-class-verified":
        sources = mednist("Hand", 2) + mednist("CXR", 1)  # one study (MedNIST shares one study UID)
        finding = AiFinding(
            label="Hand",
            probability=0.6,
            probabilities=uniform_probabilities(MEDNIST_CLASSES, "Hand", 0.6),
            source_instances=sources,
        )
        verification = Verification(
            observer_name="Müller^Jürgen^^Dr.",
            organization="St. Mary's Hospital",
            when=SIGNED,
            decision="changed",
            final_label="CXR",
            findings="Thorax, keine Fraktur, Ödem ausgeschlossen.",
            impression="Chest radiograph, not a hand.",
        )
    elif name == "ct-2-class-unverified":
        sources = [pydicom_file("CT_small.dcm")]
        finding = AiFinding(
            label="nodule",
            probability=0.7,
            probabilities={"nodule": 0.7, "no nodule": 0.3},
            source_instances=sources,
            per_instance=[(str(sources[0].SOPInstanceUID), "nodule", 0.7)],
        )
        verification = None
    elif name == "mr-3-class-verified":
        sources = [pydicom_file("MR_small.dcm")]
        finding = AiFinding(
            label="normal",
            probability=0.8,
            probabilities={"normal": 0.8, "lesion": 0.15, "artefact": 0.05},
            source_instances=sources,
        )
        verification = Verification(
            observer_name="Doe^Jane",
            organization="General Hospital",
            when=SIGNED,
            decision="accepted",
            final_label="normal",
        )
    elif name == "cr-synthetic-unverified":  # a projection radiograph: its own library descriptors
        sources = [next(synthetic_chests(1)).dataset]
        finding = AiFinding(
            label="nodule", probability=0.9, probabilities={"no finding": 0.1, "nodule": 0.9}, source_instances=sources
        )
        verification = None
    elif name == "mr-multiframe-without-geometry":  # emri_small has no Pixel Spacing nor orientation
        sources = [pydicom_file("emri_small.dcm")]
        finding = AiFinding(
            label="lesion", probability=0.55, probabilities={"lesion": 0.55, "normal": 0.45}, source_instances=sources
        )
        verification = None
    else:
        raise ValueError(name)
    ds = ai_result_sr(
        study=sources,
        finding=finding,
        algorithm=ALGORITHM,
        series_instance_uid=generate_uid(entropy_srcs=[name, "series"]),
        sop_instance_uid=generate_uid(entropy_srcs=[name, "sop"]),
        series_number=9001,
        verification=verification,
        content_datetime=WHEN,
    )
    return {"sources": sources, "finding": finding, "verification": verification, "ds": ds}


CASES = [
    pytest.param("mednist-2-class-unverified", marks=requires_mednist),
    pytest.param("mednist-6-class-verified", marks=requires_mednist),
    "ct-2-class-unverified",
    "mr-3-class-verified",
    "cr-synthetic-unverified",
    "mr-multiframe-without-geometry",
]


@pytest.fixture(scope="module")
def sr_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Lazily built and written SR cases, and PixelMed's report on each (one JVM run per file)."""
    directory = tmp_path_factory.mktemp("sr")
    cases: dict[str, dict[str, Any]] = {}
    reports: dict[str, Any] = {}

    def case(name: str) -> dict[str, Any]:
        if name not in cases:
            built = build_case(name)
            built["path"] = write(built["ds"], directory / f"{name}.dcm")
            cases[name] = built
        return cases[name]

    def pixelmed(name: str) -> Any:
        if name not in reports:
            reports[name] = pixelmed_sr_report(case(name)["path"])
        return reports[name]

    return {"case": case, "pixelmed": pixelmed}


@pytest.mark.parametrize("name", CASES)
def test_every_sr_passes_dciodvfy_without_errors(sr_files: dict[str, Any], name: str) -> None:
    # given
    require_validator("dciodvfy")
    path = sr_files["case"](name)["path"]
    # when
    errors = dciodvfy_errors(path)
    # then
    assert errors == []
    assert our_dciodvfy_warnings(path) == []


@pytest.mark.parametrize("name", CASES)
def test_every_sr_is_a_valid_tid_1500_for_pixelmed(sr_files: dict[str, Any], name: str) -> None:
    # given
    require_validator("pixelmed")
    # when
    report = sr_files["pixelmed"](name)
    # then
    assert report.iod == "Comprehensive3DSR", report.output
    assert report.root_template == "TID_1500 (MeasurementReport)", report.output
    assert report.complete, report.output
    assert report.errors == []
    # Every content item matched a template row (a wrong root concept makes all of them warn).
    assert report.warnings == []


def test_pixelmed_report_catches_a_broken_sr(sr_files: dict[str, Any], tmp_path: Path) -> None:
    """The assertions above can fail: a bad observer type and a wrong concept in a group show."""
    # given
    require_validator("pixelmed")
    ds = pydicom.dcmread(sr_files["case"]("ct-2-class-unverified")["path"])
    observer_type = next(item for item in ds.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "121005")
    observer_type.ConceptCodeSequence[0].CodeValue = "999999"
    measurements = next(item for item in ds.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "126010")
    group = measurements.ContentSequence[0]
    group.ContentSequence[0].ConceptNameCodeSequence[0].CodeValue = "NOTATRACKER"
    path = write(ds, tmp_path / "broken.dcm")
    # when
    report = pixelmed_sr_report(path)
    # then
    assert report.root_template == "TID_1500 (MeasurementReport)"
    assert any("not found in context group 270" in error for error in report.errors), report.output
    assert any("NOTATRACKER" in warning for warning in report.items_not_in_template), report.output


@pytest.mark.parametrize("name", CASES)
def test_sr_parses_back_with_highdicom(sr_files: dict[str, Any], name: str) -> None:
    # given
    case = sr_files["case"](name)
    finding: AiFinding = case["finding"]
    source_uids = [str(ds.SOPInstanceUID) for ds in case["sources"]]
    # when
    sr = hd.sr.srread(case["path"])
    # then
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    report = sr.content
    assert isinstance(report, hd.sr.MeasurementReport)
    ai_group = next(g for g in report.get_image_measurement_groups() if g.tracking_identifier == "AI finding")
    assert ai_group.finding_type == label_code(finding.label)
    assert ai_group.finding_type.meaning == finding.label
    probability = ai_group.get_measurements(name=PROBABILITY_OF_FINDING)
    assert [m.value for m in probability] == pytest.approx([finding.probability])
    assert probability[0].unit == hd.sr.CodedConcept("1", "UCUM", "no units")
    for label, value in finding.probabilities.items():
        assert [m.value for m in ai_group.get_measurements(name=probability_concept(label))] == pytest.approx([value])
    texts = {
        item.name.meaning: item.value
        for item in hd.sr.utils.find_content_items(ai_group[0], value_type=hd.sr.ValueTypeValues.TEXT)
    }
    assert texts["Algorithm Name"] == ALGORITHM.name
    assert texts["Algorithm Version"] == ALGORITHM.version
    assert [str(image.referenced_sop_instance_uid) for image in ai_group.source_images] == source_uids
    assert [str(uid) for _, _, uid, _ in sr.get_evidence()] == source_uids
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == case["sources"][0].StudyInstanceUID
    device = report.get_observer_contexts(observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"))
    attributes = device[0].observer_identifying_attributes
    assert isinstance(attributes, hd.sr.DeviceObserverIdentifyingAttributes)
    assert attributes.manufacturer_name == "Tessera"


@pytest.mark.parametrize("name", CASES)
def test_ai_result_read_returns_what_went_in(sr_files: dict[str, Any], name: str) -> None:
    # given
    case = sr_files["case"](name)
    finding: AiFinding = case["finding"]
    verification: Verification | None = case["verification"]
    # when
    content = ai_result_read(pydicom.dcmread(case["path"]))
    # then
    assert content.label == finding.label
    assert content.probability == pytest.approx(finding.probability)
    assert content.probabilities == pytest.approx(dict(finding.probabilities))
    assert (content.algorithm_name, content.algorithm_version) == (ALGORITHM.name, ALGORITHM.version)
    assert f"artifact_sha256={ALGORITHM.artifact_sha256}" in content.algorithm_parameters
    assert content.source_sop_instance_uids == [str(ds.SOPInstanceUID) for ds in case["sources"]]
    assert [row[:2] for row in content.per_instance] == [row[:2] for row in finding.per_instance]
    assert [row[2] for row in content.per_instance] == pytest.approx([row[2] for row in finding.per_instance])
    if verification is None:
        assert content.verification_flag == "UNVERIFIED"
        assert (content.verifying_observer, content.decision, content.final_label) == (None, None, None)
    else:
        assert content.verification_flag == "VERIFIED"
        assert content.verifying_observer == verification.observer_name
        assert content.verifying_organization == verification.organization
        assert content.decision == verification.decision
        assert content.final_label == verification.final_label
        expected_texts = {"Findings": verification.findings, "Impressions": verification.impression}
        assert content.texts == {key: text for key, text in expected_texts.items() if text}


@pytest.mark.parametrize("name", CASES)
def test_verification_flag_observer_and_series_description(sr_files: dict[str, Any], name: str) -> None:
    # given
    case = sr_files["case"](name)
    verification: Verification | None = case["verification"]
    # when
    ds = pydicom.dcmread(case["path"])
    # then
    assert ds.Modality == "SR"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.CompletionFlag == "COMPLETE"
    if verification is None:
        assert ds.VerificationFlag == "UNVERIFIED"
        assert ds.PreliminaryFlag == "PRELIMINARY"
        assert "VerifyingObserverSequence" not in ds
        assert ds.SeriesDescription == AI_SERIES_DESCRIPTION
    else:
        assert ds.VerificationFlag == "VERIFIED"
        assert ds.PreliminaryFlag == "FINAL"
        observer = ds.VerifyingObserverSequence[0]
        assert str(observer.VerifyingObserverName) == verification.observer_name
        assert observer.VerifyingOrganization == verification.organization
        assert pydicom.valuerep.DT(observer.VerificationDateTime) == verification.when
        assert ds.SeriesDescription == VERIFIED_SERIES_DESCRIPTION
        content = hd.sr.srread(case["path"]).content
        assert isinstance(content, hd.sr.MeasurementReport)
        person = content.get_observer_contexts(observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"))
        assert str(person[0].observer_identifying_attributes.name) == verification.observer_name
    assert len(ds.SeriesDescription) <= 64


@pytest.mark.parametrize("name", CASES)
def test_patient_and_study_are_the_sources(sr_files: dict[str, Any], name: str) -> None:
    # given
    case = sr_files["case"](name)
    source = case["sources"][0]
    # when
    ds = pydicom.dcmread(case["path"])
    # then
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber"):
        assert str(ds.get(keyword, "")) == str(source.get(keyword, "")), keyword
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ct-2-class-unverified", ("25045-6", "LN")),
        ("mr-3-class-verified", ("25056-3", "LN")),
        pytest.param("mednist-2-class-unverified", ("363679005", "SCT"), marks=requires_mednist),
        ("cr-synthetic-unverified", ("363679005", "SCT")),  # no XR code PixelMed's CID 100 knows
    ],
)
def test_procedure_reported_is_coded_from_cid_100(
    sr_files: dict[str, Any], name: str, expected: tuple[str, str]
) -> None:
    # when
    report = hd.sr.srread(sr_files["case"](name)["path"]).content
    procedures = hd.sr.utils.find_content_items(
        report[0], name=hd.sr.CodedConcept("121058", "DCM", "Procedure reported")
    )
    # then
    assert [(item.value.value, item.value.scheme_designator) for item in procedures] == [expected]


def test_image_library_lists_acquisition_images(sr_files: dict[str, Any]) -> None:
    # given
    case = sr_files["case"]("ct-2-class-unverified")
    # when
    report = hd.sr.srread(case["path"]).content
    library = hd.sr.utils.find_content_items(
        report[0], name=hd.sr.CodedConcept("111028", "DCM", "Image Library"), value_type=hd.sr.ValueTypeValues.CONTAINER
    )
    images = hd.sr.utils.find_content_items(library[0], value_type=hd.sr.ValueTypeValues.IMAGE, recursive=True)
    # then
    assert [item.referenced_sop_instance_uid for item in images] == [case["sources"][0].SOPInstanceUID]


def test_same_inputs_give_the_same_bytes() -> None:
    # given
    first, second = build_case("ct-2-class-unverified")["ds"], build_case("ct-2-class-unverified")["ds"]
    # when
    encoded = []
    for ds in (first, second):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        encoded.append(buffer.getvalue())
    # then
    assert encoded[0] == encoded[1]


def test_label_codes_are_valid_and_distinct() -> None:
    # given
    labels = ["CXR", "no nodule", "x" * 16, "x" * 17, "Pneumothorax (left) — suspected", "肺炎", "a" * 80, "a" * 81]
    # when
    codes = [label_code(label) for label in labels]
    probability_codes = [probability_concept(label) for label in labels]
    # then
    assert codes[0].value == "CXR"
    assert codes[2].value == "x" * 16
    for code in codes + probability_codes:
        assert 0 < len(code.value) <= 16
        assert "\\" not in code.value and code.value.isascii()
        assert code.scheme_designator == CODING_SCHEME
        assert len(code.meaning) <= 64
    assert len({code.value for code in codes}) == len(labels)
    assert len({code.value for code in probability_codes}) == len(labels)
    assert not {code.value for code in codes} & {code.value for code in probability_codes}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "pneumonia"}, "not one of the classes"),
        ({"probability": 1.5}, "a probability is in"),
        ({"per_instance": [("1.2.3.4", "nodule", 0.5)]}, "not a source image"),
    ],
)
def test_bad_findings_are_refused(change: dict[str, Any], message: str) -> None:
    # given
    ct = pydicom_file("CT_small.dcm")
    values: dict[str, Any] = {
        "label": "nodule",
        "probability": 0.7,
        "probabilities": {"nodule": 0.7, "no nodule": 0.3},
        "source_instances": [ct],
    }
    # when / then
    with pytest.raises(ValueError, match=message):
        ai_result_sr(
            study=ct,
            finding=AiFinding(**{**values, **change}),
            algorithm=ALGORITHM,
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
            series_number=1,
        )


def test_sources_from_two_studies_and_unknown_decisions_are_refused() -> None:
    # given
    ct, mr = pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")
    both = AiFinding(label="a", probability=0.5, probabilities={"a": 0.5, "b": 0.5}, source_instances=[ct, mr])
    one = AiFinding(label="a", probability=0.5, probabilities={"a": 0.5, "b": 0.5}, source_instances=[ct])
    unknown = Verification(observer_name="Doe^Jane", organization="H", when=SIGNED, decision="maybe", final_label="a")
    # when / then
    with pytest.raises(ValueError, match="2 studies"):
        ai_result_sr(
            study=[ct, mr],
            finding=both,
            algorithm=ALGORITHM,
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
            series_number=1,
        )
    with pytest.raises(ValueError, match="unknown decision"):
        ai_result_sr(
            study=ct,
            finding=one,
            algorithm=ALGORITHM,
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
            series_number=1,
            verification=unknown,
        )
    assert set(DECISION_CODES) == {"accepted", "rejected", "changed", ""}


# --- the saliency secondary capture ---------------------------------------------------------------


def display_image(ds: pydicom.Dataset) -> np.ndarray:
    pixels = ds.pixel_array.astype(np.float64)
    span = max(float(pixels.max() - pixels.min()), 1.0)
    return np.rint((pixels - pixels.min()) / span * 255).astype(np.uint8)


def saliency_case(source: pydicom.Dataset) -> tuple[np.ndarray, pydicom.Dataset]:
    heat = np.zeros((32, 32), dtype=np.float32)
    heat[8:20, 10:24] = np.linspace(0.2, 1.0, 14, dtype=np.float32)
    rgb = saliency.blended_rgb(display_image(source), heat)
    sc = saliency_secondary_capture(
        source=source,
        overlay_rgb=rgb,
        algorithm=ALGORITHM,
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
        series_number=9002,
        content_datetime=WHEN,
    )
    return rgb, sc


SC_SOURCES = [
    pytest.param(lambda: mednist("CXR", 1)[0], id="mednist", marks=requires_mednist),
    pytest.param(lambda: pydicom_file("CT_small.dcm"), id="ct"),
    pytest.param(lambda: pydicom_file("MR_small.dcm"), id="mr"),
]


@pytest.mark.parametrize("load", SC_SOURCES)
def test_saliency_secondary_capture_passes_dciodvfy(load: Any, tmp_path: Path) -> None:
    # given
    require_validator("dciodvfy")
    _, sc = saliency_case(load())
    path = write(sc, tmp_path / "saliency.dcm")
    # when
    errors = dciodvfy_errors(path)
    # then
    assert errors == []
    # Laterality: present and empty ("unknown") when the source does not say, as Type 2C asks.
    accepted = (*ACCEPTED_DCIODVFY_WARNINGS, "attribute <Laterality>")
    assert our_dciodvfy_warnings(path, accepted=accepted) == []


@pytest.mark.parametrize("load", SC_SOURCES)
def test_saliency_secondary_capture_is_the_source_size_and_references_it(load: Any, tmp_path: Path) -> None:
    # given
    source = load()
    rgb, sc = saliency_case(source)
    # when
    ds = pydicom.dcmread(write(sc, tmp_path / "saliency.dcm"))
    # then
    assert (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.BitsAllocated) == ("RGB", 3, 8)
    assert np.array_equal(ds.pixel_array, rgb)
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.BurnedInAnnotation == "NO"
    assert ds.SeriesDescription == SALIENCY_SERIES_DESCRIPTION
    assert "Grad-CAM" in ds.SeriesDescription
    reference = ds.SourceImageSequence[0]
    assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (
        source.SOPClassUID,
        source.SOPInstanceUID,
    )
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PatientID == source.PatientID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID


def test_saliency_secondary_capture_refuses_a_wrong_size() -> None:
    # given
    ct = pydicom_file("CT_small.dcm")
    # when / then
    with pytest.raises(ValueError, match="like its source"):
        saliency_secondary_capture(
            source=ct,
            overlay_rgb=np.zeros((ct.Rows // 2, ct.Columns, 3), dtype=np.uint8),
            algorithm=ALGORITHM,
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
            series_number=1,
        )
