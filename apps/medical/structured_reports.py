"""DICOM objects that carry an AI result (and the clinician's verdict on it) back into the study.

Pure functions — pydicom/highdicom in, a pydicom `Dataset` out; no ORM, no storage — so the
analysis job (H3) and the report signing (H4) store what they return like any received instance,
and any DICOMweb viewer or PACS reads it.

`ai_result_sr` — a TID 1500 "Imaging Measurement Report" built with highdicom, encoded as a
**Comprehensive 3D SR** (1.2.840.10008.5.1.4.1.1.88.34). Why that IOD: IHE AI Results (AIR), the
profile the AI orchestration platforms implement, encodes results as TID 1500 in Comprehensive 3D
SR; it is
the class highdicom, OHIF's SR extension and dcmqi produce and read for TID 1500; and it leaves
room to add a SCOORD3D region (e.g. the Grad-CAM hot spot) later without changing SOP class,
which would break the "a new SR instance replaces the old one" chain. Enhanced SR would hold
today's content too, but nothing reads it better.

The content tree:

    Imaging Measurement Report (TID 1500)
      Language, Observation context (TID 1001): device observer = the algorithm
        [+ person observer = the verifying clinician, when verified]
      Procedure reported: coded from CID 100 by the source images' modality (`procedure_code`)
      Image Library (TID 1600): the source images of an acquisition modality (`_library_images`)
      Imaging Measurements
        Measurement Group (TID 1501) "AI finding" — study level
          Tracking identifier + UID, Finding (DCM 121071) = the suggested class,
          Algorithm identification (TID 4019: name, version, parameters kind + artifact sha256),
          Probability of the finding + one probability per class (TID 300, UCUM "1"),
          Source images (every image the finding refers to)
        Measurement Group "AI finding for one image" — one per `per_instance` row
        Measurement Group "Clinician's finding" — only when verified: Finding = the final label,
          Source images
      Qualitative Evaluations — only when verified: "Decision on AI finding" (CODE: accepted /
        rejected / changed / no AI suggestion), Findings and Impressions (TEXT) when written

Class names are the hospital's free text, so they are coded in the private scheme `99TESSERA`
(declared in CodingSchemeIdentificationSequence): code meaning = the label (LO, cut at 64
characters), code value = the label itself when it is a short plain identifier, else a hash of
the full label — unique and ≤ 16 characters (SH) either way (`label_code`).

`VerificationFlag` is UNVERIFIED for the AI result, with a series description saying it is not for
diagnostic use on its own; VERIFIED with the VerifyingObserverSequence (the clinician, their
organization, when they signed) for the signed report's SR.

`saliency_secondary_capture` — the blended Grad-CAM image as a Secondary Capture (RGB, 8 bit),
same patient and study, its own series, DERIVED\\SECONDARY, referencing its source image.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MANUFACTURER = "Tessera"
CODING_SCHEME = "99TESSERA"
# The UID root pydicom documents for generated UIDs; derived ("entropy") UIDs under it are
# deterministic, so the same inputs give the same tracking and device UIDs.
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."
# UTF-8: class labels, clinicians' text and names may be in any language.
_CHARACTER_SET = "ISO_IR 192"

AI_SERIES_DESCRIPTION = "AI result - not for diagnostic use on its own"
VERIFIED_SERIES_DESCRIPTION = "Verified report by clinician, with AI result"
SALIENCY_SERIES_DESCRIPTION = "AI saliency map (Grad-CAM) - not for diagnosis"

_LO_MAX = 64
_SH_MAX = 16
_PLAIN_CODE_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")

_UNITLESS = hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")
PROBABILITY_OF_FINDING = hd.sr.CodedConcept(
    value="PROBABILITY", scheme_designator=CODING_SCHEME, meaning="Probability of finding"
)
DECISION_ON_AI_FINDING = hd.sr.CodedConcept(
    value="AIDECISION", scheme_designator=CODING_SCHEME, meaning="Decision on AI finding"
)
# AiDecision values (apps.medical.choices) -> coded decision. Kept here as data rather than
# imported so this module stays free of Django.
DECISION_CODES: dict[str, hd.sr.CodedConcept] = {
    "accepted": hd.sr.CodedConcept("ACCEPTED", CODING_SCHEME, "Accepted the AI suggestion"),
    "rejected": hd.sr.CodedConcept("REJECTED", CODING_SCHEME, "Rejected the AI suggestion"),
    "changed": hd.sr.CodedConcept("CHANGED", CODING_SCHEME, "Changed the AI suggestion"),
    "": hd.sr.CodedConcept("NOAI", CODING_SCHEME, "No AI suggestion"),
}
_FINDINGS = hd.sr.CodedConcept("121070", "DCM", "Findings")
_IMPRESSIONS = hd.sr.CodedConcept("121073", "DCM", "Impressions")
_QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
_ALGORITHM_NAME = hd.sr.CodedConcept("111001", "DCM", "Algorithm Name")
_ALGORITHM_VERSION = hd.sr.CodedConcept("111003", "DCM", "Algorithm Version")
_ALGORITHM_PARAMETERS = hd.sr.CodedConcept("111002", "DCM", "Algorithm Parameters")

AI_FINDING_TRACKING = "AI finding"
CLINICIAN_FINDING_TRACKING = "Clinician's finding"

# CID 100 "Quantitative Diagnostic Imaging Procedures": a generic code per cross-sectional modality.
# Later editions of PS3.16 added "XR unspecified body region" (43468-8) and "Angiography"; the
# editions validators in use still check against (PixelMed 20220618, Debian's) do not have them
# and call them errors, so projection X-ray, angiography, ultrasound, secondary captures and
# anything unknown fall back to SCT "Imaging procedure", which every edition has.
_PROCEDURE_BY_MODALITY: dict[str, hd.sr.CodedConcept] = {
    "CT": hd.sr.CodedConcept.from_code(codes.cid100.CTUnspecifiedBodyRegion),
    "MR": hd.sr.CodedConcept.from_code(codes.cid100.MRIUnspecifiedBodyRegion),
    "NM": hd.sr.CodedConcept.from_code(codes.cid100.NMUnspecifiedBodyRegion),
    "PT": hd.sr.CodedConcept.from_code(codes.cid100.PETUnspecifiedBodyRegion),
}
_ACQUISITION_MODALITIES = frozenset(getattr(codes.cid29, name).value for name in codes.cid29.dir())
GENERIC_PROCEDURE = hd.sr.CodedConcept.from_code(codes.cid100.ImagingProcedure)
_PET_WHOLE_BODY = hd.sr.CodedConcept.from_code(codes.cid100.PETWholeBody)


@dataclass(frozen=True)
class Algorithm:
    """Who made the finding: the registered model's name and version, and its exact weights."""

    name: str
    version: str
    artifact_sha256: str
    kind: str = "medical.image_classifier"


@dataclass(frozen=True)
class AiFinding:
    """The model's study-level suggestion, all class probabilities and the images they concern."""

    label: str
    probability: float
    probabilities: Mapping[str, float]
    source_instances: Sequence[pydicom.Dataset]
    per_instance: Sequence[tuple[str, str, float]] = ()  # (sop_instance_uid, label, probability)


@dataclass(frozen=True)
class Verification:
    """A clinician's signature on the report, and what they decided about the AI's suggestion."""

    observer_name: str
    organization: str
    when: datetime
    decision: str
    final_label: str
    findings: str = ""
    impression: str = ""


@dataclass(frozen=True)
class AiResultContent:
    """What `ai_result_read` finds in an SR written by `ai_result_sr`."""

    label: str
    probability: float
    probabilities: dict[str, float]
    algorithm_name: str
    algorithm_version: str
    algorithm_parameters: list[str]
    source_sop_instance_uids: list[str]
    per_instance: list[tuple[str, str, float]]
    verification_flag: str
    verifying_observer: str | None = None
    verifying_organization: str | None = None
    decision: str | None = None
    final_label: str | None = None
    texts: dict[str, str] = field(default_factory=dict)


def label_code(label: str) -> hd.sr.CodedConcept:
    """The class label as a code in the private `99TESSERA` scheme.

    The code value is the label when it is a plain identifier of at most 16 characters (so a dump
    stays readable: `CXR`, `pneumonia`), otherwise `H` + 15 hex digits of its SHA-256 — distinct
    labels get distinct codes whatever their length or script. The meaning is the label, cut to
    the 64 characters LO allows.
    """
    if not label:
        raise ValueError("a class label cannot be empty")
    if len(label) <= _SH_MAX and _PLAIN_CODE_VALUE.fullmatch(label):
        value = label
    else:
        value = "H" + hashlib.sha256(label.encode("utf-8")).hexdigest()[: _SH_MAX - 1].upper()
    return hd.sr.CodedConcept(value=value, scheme_designator=CODING_SCHEME, meaning=label[:_LO_MAX])


def probability_concept(label: str) -> hd.sr.CodedConcept:
    """The measurement name for "probability of class <label>": `P` + the label's code value.

    Label code values are at most 16 characters, so the prefixed value is re-derived from the
    hash whenever prefixing would overflow SH.
    """
    class_value = label_code(label).value
    value = "P" + class_value
    if len(value) > _SH_MAX:
        value = "P" + hashlib.sha256(label.encode("utf-8")).hexdigest()[: _SH_MAX - 1].upper()
    meaning = f"Probability of {label}"[:_LO_MAX]
    return hd.sr.CodedConcept(value=value, scheme_designator=CODING_SCHEME, meaning=meaning)


def procedure_code(instances: Sequence[pydicom.Dataset]) -> hd.sr.CodedConcept:
    """The CID 100 code for the procedure the source images come from.

    By the first source image's Modality (CT -> LN 25045-6 "CT unspecified body region", MR ->
    25056-3, NM -> 49118-3, PT -> 44136-0 or 44139-4 "PET whole body" when the body part is
    WHOLEBODY); anything else (CR, DX, XA, US, OT secondary captures, ...) -> SCT 363679005
    "Imaging procedure" (see `_PROCEDURE_BY_MODALITY` for why not the newer XR codes). Body
    part otherwise picks no code: CID 100's region-specific entries are specific *techniques*
    (dynamic MRI of knee, CT perfusion head) a classifier's input says nothing about.
    """
    first = instances[0]
    modality = str(first.get("Modality", "")).upper()
    body_part = str(first.get("BodyPartExamined", "")).upper()
    if modality == "PT" and body_part == "WHOLEBODY":
        return _PET_WHOLE_BODY
    return _PROCEDURE_BY_MODALITY.get(modality, GENERIC_PROCEDURE)


def _derived_uid(*parts: str) -> str:
    return str(generate_uid(prefix=_UID_PREFIX, entropy_srcs=list(parts)))


def _evidence(instances: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Header copies of the source images that highdicom can inherit patient and study from.

    highdicom reads the patient/study module attributes of the first evidence instance directly
    (`evidence[0].PatientBirthDate`), but Type 2 attributes may be absent in real files (the
    MedNIST captures have no birth date, sex, study date...). Type 2 means "present, may be
    empty", so absent ones are added empty — which is also what the SR's own modules require.
    Pixel data is dropped: only headers travel.
    """
    copies = []
    for instance in instances:
        header = pydicom.Dataset()
        for element in instance:
            if element.tag.group in (0x7FE0,) or element.keyword in ("PixelData",):
                continue
            header.add(element)
        for keyword in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "AccessionNumber",
            "StudyID",
            "StudyDate",
            "StudyTime",
            "ReferringPhysicianName",
        ):
            if keyword not in header:
                setattr(header, keyword, "")
        copies.append(header)
    return copies


def _sources(study: Sequence[pydicom.Dataset] | pydicom.Dataset, finding: AiFinding) -> list[pydicom.Dataset]:
    """The images the SR references: the finding's sources, else every image of `study`."""
    if isinstance(study, pydicom.Dataset):
        study = [study]
    sources = list(finding.source_instances) or list(study)
    if not sources:
        raise ValueError("an AI result needs at least one source image")
    study_uids = {str(ds.StudyInstanceUID) for ds in [*study, *sources]}
    if len(study_uids) != 1:
        raise ValueError(f"the source images belong to {len(study_uids)} studies; an SR reports on one")
    unique: dict[str, pydicom.Dataset] = {}
    for ds in sources:
        unique.setdefault(str(ds.SOPInstanceUID), ds)
    return list(unique.values())


def _library_images(images: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The images the Image Library (TID 1600) can describe: those of an acquisition modality.

    TID 1602 requires each entry's Modality from CID 29 "Acquisition Modality", which highdicom
    derives from the SOP class; a Secondary Capture codes as OT, which CID 29 does not have
    (PixelMed: "not found in context group 29"). Such images are left out of the library — the
    library is an index, not the reference: every source image is still referenced by each
    measurement group and in the evidence sequence.
    """
    return [
        image
        for image in images
        # highdicom's own SOP class -> modality mapping: the one its Image Library entries will use.
        if hd.sr.templates._get_coded_modality(image.SOPClassUID).value in _ACQUISITION_MODALITIES
        and _describable(image)
    ]


def _describable(image: pydicom.Dataset) -> bool:
    """Whether highdicom can write the image's library entry descriptors (TID 1602-1604).

    They read the geometry a cross-sectional image (Pixel Spacing, Image Orientation and
    Position (Patient), Slice Thickness) or a projection radiograph (Patient Orientation, Imager
    Pixel Spacing) should carry; real files do not always (pydicom's `emri_small.dcm` has none).
    An image without it is left out of the index, like an OT one, and still referenced by every
    measurement group and the evidence: a missing optional header must not lose the AI result.
    """
    try:
        hd.sr.ImageLibraryEntryDescriptors(image)
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
    return True


def _algorithm_identification(algorithm: Algorithm) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=algorithm.name[:_LO_MAX],
        version=algorithm.version[:_LO_MAX],
        # No "Algorithm Manufacturer" (DCM 122405): it is a recent addition to TID 4019 that
        # PixelMed's template tables flag as "not in template"; the device observer carries the
        # manufacturer already.
        parameters=[f"kind={algorithm.kind}", f"artifact_sha256={algorithm.artifact_sha256}"],
    )


def _probability(name: hd.sr.CodedConcept, value: float) -> hd.sr.Measurement:
    """A probability as a TID 300 measurement, unit UCUM "1".

    No per-measurement image references: the group's source images apply to every measurement
    in it, and repeating them per class would make a 500-slice CT's SR (classes x slices) items
    larger than it needs to be.
    """
    probability = float(value)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"a probability is in [0, 1], got {probability}")
    return hd.sr.Measurement(name=name, value=probability, unit=_UNITLESS)


def _group_sources(images: Sequence[pydicom.Dataset]) -> list[hd.sr.SourceImageForMeasurementGroup]:
    return [hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in images]


def _ai_groups(
    *, finding: AiFinding, algorithm: Algorithm, sources: Sequence[pydicom.Dataset], sop_instance_uid: str
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    if finding.label not in finding.probabilities:
        raise ValueError(f"the finding {finding.label!r} is not one of the classes {sorted(finding.probabilities)}")
    measurements = [_probability(PROBABILITY_OF_FINDING, finding.probability)]
    measurements += [
        _probability(probability_concept(label), probability) for label, probability in finding.probabilities.items()
    ]
    groups = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=_derived_uid(sop_instance_uid, "ai-finding"), identifier=AI_FINDING_TRACKING
            ),
            finding_type=label_code(finding.label),
            algorithm_id=_algorithm_identification(algorithm),
            measurements=measurements,
            source_images=_group_sources(sources),
        )
    ]
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    for index, (instance_uid, label, probability) in enumerate(finding.per_instance, start=1):
        if instance_uid not in by_uid:
            raise ValueError(f"per-instance result for {instance_uid}, which is not a source image")
        image = by_uid[instance_uid]
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=_derived_uid(sop_instance_uid, "ai-instance", instance_uid),
                    identifier=f"{AI_FINDING_TRACKING} for image {index}",
                ),
                finding_type=label_code(label),
                algorithm_id=_algorithm_identification(algorithm),
                measurements=[_probability(PROBABILITY_OF_FINDING, probability)],
                source_images=_group_sources([image]),
            )
        )
    return groups


def _clinician_group(
    *, verification: Verification, sources: Sequence[pydicom.Dataset], sop_instance_uid: str
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if verification.decision not in DECISION_CODES:
        raise ValueError(f"unknown decision {verification.decision!r}; expected one of {sorted(DECISION_CODES)}")
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_derived_uid(sop_instance_uid, "clinician-finding"), identifier=CLINICIAN_FINDING_TRACKING
        ),
        finding_type=label_code(verification.final_label),
        source_images=_group_sources(sources),
    )


def _clinician_evaluations(verification: Verification) -> hd.sr.ContainerContentItem:
    """TID 1500's document-level "Qualitative Evaluations": the decision and the clinician's text.

    The decision is a CODE here rather than a qualitative evaluation inside the clinician's
    measurement group: TID 1501 constrains its evaluations' concept names (PixelMed reports a
    private one there as "not in template"), TID 1500's container takes any CODE or TEXT.
    """
    items: list[hd.sr.ContentItem] = [
        hd.sr.CodeContentItem(
            name=DECISION_ON_AI_FINDING,
            value=DECISION_CODES[verification.decision],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    ]
    texts = [(_FINDINGS, verification.findings), (_IMPRESSIONS, verification.impression)]
    items += [
        hd.sr.TextContentItem(name=name, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for name, text in texts
        if text.strip()
    ]
    container = hd.sr.ContainerContentItem(
        name=_QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _observation_context(algorithm: Algorithm, verification: Verification | None) -> hd.sr.ObservationContext:
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_derived_uid(
                "tessera-model", algorithm.kind, algorithm.name, algorithm.version, algorithm.artifact_sha256
            ),
            name=algorithm.name[:_LO_MAX],
            manufacturer_name=MANUFACTURER,
            model_name=f"{algorithm.name} v{algorithm.version}"[:_LO_MAX],
        ),
    )
    person = None
    if verification is not None:
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=verification.observer_name, organization_name=verification.organization[:_LO_MAX]
            ),
        )
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def ai_result_sr(
    *,
    study: Sequence[pydicom.Dataset] | pydicom.Dataset,
    finding: AiFinding,
    algorithm: Algorithm,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int = 1,
    verification: Verification | None = None,
    content_datetime: datetime | None = None,
) -> pydicom.Dataset:
    """The AI result as a TID 1500 Measurement Report (Comprehensive 3D SR), ready to store.

    Args:
        study: instances (headers suffice) of the study the result belongs to; patient and study
            modules are copied from the first source image.
        finding: the model's result; `source_instances` are the images referenced (all of `study`
            when empty).
        algorithm: the model version that produced it.
        series_instance_uid, sop_instance_uid, series_number, instance_number: the new object's
            identity (the caller allocates them so a re-run can replace, not duplicate).
        verification: the clinician's signature; makes the SR VERIFIED and adds their finding,
            decision and text.
        content_datetime: the document's content (and instance creation) date/time; now when
            omitted. Pass it for byte-identical output from identical inputs.

    Returns:
        A pydicom `Dataset` with file meta (Explicit VR Little Endian), valid to `dcmwrite`.

    Raises:
        ValueError: no source image, sources from several studies, a finding not among the
            classes, a probability outside [0, 1], an unknown decision.
    """
    sources = _sources(study, finding)
    evidence = _evidence(sources)
    groups = _ai_groups(finding=finding, algorithm=algorithm, sources=evidence, sop_instance_uid=sop_instance_uid)
    if verification is not None:
        groups.append(_clinician_group(verification=verification, sources=evidence, sop_instance_uid=sop_instance_uid))
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm, verification),
        procedure_reported=procedure_code(evidence),
        imaging_measurements=groups,
        referenced_images=_library_images(evidence) or None,
    )
    if verification is not None:
        report[0].ContentSequence.append(_clinician_evaluations(verification))

    when = content_datetime or datetime.now()
    with _copied_names_unchecked():
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report[0],
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=verification is not None,
            is_verified=verification is not None,
            verifying_observer_name=verification.observer_name if verification else None,
            verifying_organization=verification.organization[:_LO_MAX] if verification else None,
            series_description=VERIFIED_SERIES_DESCRIPTION if verification else AI_SERIES_DESCRIPTION,
            manufacturer_model_name=f"{algorithm.name} v{algorithm.version}"[:_LO_MAX],
            software_versions=algorithm.version[:_LO_MAX],
            content_date=when.date(),
            content_time=when.time(),
            specific_character_set=_CHARACTER_SET,
            coding_schemes=[
                hd.coding_schemes.CodingSchemeIdentificationItem(
                    designator=CODING_SCHEME,
                    name="Tessera model classes and decisions",
                    responsible_organization=MANUFACTURER,
                )
            ],
        )
    if verification is not None:
        # highdicom stamps the verification with "now"; the signature's time is the clinician's.
        sr.VerifyingObserverSequence[0].VerificationDateTime = pydicom.valuerep.DT(verification.when)
    _stamp_creation(sr, when)
    return sr


@contextlib.contextmanager
def _copied_names_unchecked() -> Iterator[None]:
    """Silence highdicom's "unlikely to represent the intended person name" for copied names.

    The patient's name is copied verbatim from the source images (a one-component name such as
    "Anonymous" is common in de-identified data); it is not ours to fix, and the warning would
    otherwise be logged for every analysis of such a study.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        yield


def _stamp_creation(ds: pydicom.Dataset, when: datetime) -> None:
    """Creation date/times = `when`, so the output is a function of the inputs.

    highdicom stamps "now" on the instance creation and on its own Contributing Equipment item
    (the library as processing equipment); both describe this object's making, at `when`.
    """
    ds.InstanceCreationDate = pydicom.valuerep.DA(when.date())
    ds.InstanceCreationTime = pydicom.valuerep.TM(when.time())
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item and str(item.get("ManufacturerModelName", "")) == "highdicom":
            item.ContributionDateTime = pydicom.valuerep.DT(when)


def _text_values(item: pydicom.Dataset, name: hd.sr.CodedConcept, *, recursive: bool = False) -> list[str]:
    found = hd.sr.utils.find_content_items(item, name=name, value_type=hd.sr.ValueTypeValues.TEXT, recursive=recursive)
    return [str(content.TextValue) for content in found]


def ai_result_read(ds: pydicom.Dataset) -> AiResultContent:
    """Parse an SR written by `ai_result_sr` back (with highdicom) into its values.

    For the tests and for anything that shows a stored SR. Class labels come back as the codes'
    meanings, so labels longer than the 64 characters of LO (49 in "Probability of <label>")
    come back cut.

    Raises:
        ValueError: `ds` is not a TID 1500 report with an AI finding group and its probability.
    """
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    report = sr.content
    if not isinstance(report, hd.sr.MeasurementReport):
        raise ValueError("not a TID 1500 Measurement Report")
    groups = report.get_image_measurement_groups()
    by_tracking = {group.tracking_identifier: group for group in groups}
    study_group = by_tracking.get(AI_FINDING_TRACKING)
    if study_group is None or study_group.finding_type is None:
        raise ValueError("the report has no AI finding group")

    probability = None
    probabilities: dict[str, float] = {}
    for measurement in study_group.get_measurements():
        if measurement.name == PROBABILITY_OF_FINDING:
            probability = float(measurement.value)
        elif measurement.name.scheme_designator == CODING_SCHEME:
            probabilities[measurement.name.meaning.removeprefix("Probability of ")] = float(measurement.value)
    if probability is None:
        raise ValueError("the AI finding group has no probability")

    group_item = study_group[0]
    names = _text_values(group_item, _ALGORITHM_NAME)
    versions = _text_values(group_item, _ALGORITHM_VERSION)
    if not names or not versions:
        raise ValueError("the AI finding group has no algorithm identification")

    per_instance = []
    for group in groups:
        tracking = group.tracking_identifier or ""
        if tracking.startswith(f"{AI_FINDING_TRACKING} for image") and group.finding_type is not None:
            value = group.get_measurements(name=PROBABILITY_OF_FINDING)[0].value
            image_uid = str(group.source_images[0].referenced_sop_instance_uid)
            per_instance.append((image_uid, group.finding_type.meaning, float(value)))

    verifying_observer = verifying_organization = decision = final_label = None
    observers = ds.get("VerifyingObserverSequence")
    if observers:
        verifying_observer = str(observers[0].VerifyingObserverName)
        verifying_organization = str(observers[0].VerifyingOrganization)
    clinician = by_tracking.get(CLINICIAN_FINDING_TRACKING)
    decisions = hd.sr.utils.find_content_items(
        report[0], name=DECISION_ON_AI_FINDING, value_type=hd.sr.ValueTypeValues.CODE, recursive=True
    )
    if decisions:
        decision_by_code = {code.value: key for key, code in DECISION_CODES.items()}
        decision = decision_by_code.get(decisions[0].ConceptCodeSequence[0].CodeValue)
    if clinician is not None:
        final_label = clinician.finding_type.meaning if clinician.finding_type is not None else None
    texts = {
        name.meaning: values[0]
        for name in (_FINDINGS, _IMPRESSIONS)
        if (values := _text_values(report[0], name, recursive=True))
    }
    return AiResultContent(
        label=study_group.finding_type.meaning,
        probability=probability,
        probabilities=probabilities,
        algorithm_name=names[0],
        algorithm_version=versions[0],
        algorithm_parameters=_text_values(group_item, _ALGORITHM_PARAMETERS),
        source_sop_instance_uids=[str(image.referenced_sop_instance_uid) for image in study_group.source_images],
        per_instance=per_instance,
        verification_flag=str(ds.VerificationFlag),
        verifying_observer=verifying_observer,
        verifying_organization=verifying_organization,
        decision=decision,
        final_label=final_label,
        texts=texts,
    )


_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # +x, -x; +y, -y; +z, -z (PS3.3 C.7.6.1.1.1)


def _direction_letters(cosines: Sequence[float]) -> str:
    """Patient-orientation letters of a direction, most significant axis first (obliques: 2-3)."""
    ranked = sorted(range(3), key=lambda axis: -abs(cosines[axis]))
    letters = [_AXIS_LETTERS[axis][0 if cosines[axis] > 0 else 1] for axis in ranked if abs(cosines[axis]) > 1e-4]
    return "".join(letters)


def _patient_orientation(source: pydicom.Dataset) -> tuple[str, str] | None:
    """The source's row/column directions as Patient Orientation letters, when it states them."""
    stated = source.get("PatientOrientation")
    if stated is not None and len(stated) == 2 and all(stated):
        return (str(stated[0]), str(stated[1]))
    cosines = source.get("ImageOrientationPatient")
    if cosines is not None and len(cosines) == 6:
        values = [float(value) for value in cosines]
        row, column = _direction_letters(values[:3]), _direction_letters(values[3:])
        if row and column:
            return (row, column)
    return None


def saliency_secondary_capture(
    *,
    source: pydicom.Dataset,
    overlay_rgb: np.ndarray,
    algorithm: Algorithm,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int = 1,
    content_datetime: datetime | None = None,
) -> pydicom.Dataset:
    """The blended saliency image (`saliency.blended_rgb`) as a Secondary Capture of the study.

    Args:
        source: the image the heat was computed on (headers suffice); patient and study are
            copied from it and it is referenced as the derivation source.
        overlay_rgb: (rows, columns, 3) uint8 — the source's own size, so a viewer can show the
            two side by side at the same scale.
        algorithm: the model version whose Grad-CAM this is (recorded as the device).
        content_datetime: content / capture / creation date-time; now when omitted.

    Returns:
        A Secondary Capture Image Storage `Dataset` (RGB, 8 bit, DERIVED\\SECONDARY, burned-in
        annotation NO — the colours are heat, not text), with file meta.

    Raises:
        ValueError: the array is not uint8 RGB of the source's rows x columns.
    """
    pixels = np.asarray(overlay_rgb)
    rows, columns = int(source.Rows), int(source.Columns)
    if pixels.dtype != np.uint8 or pixels.shape != (rows, columns, 3):
        raise ValueError(
            f"the saliency image must be uint8 ({rows}, {columns}, 3) like its source, "
            f"got {pixels.dtype} {pixels.shape}"
        )
    header = _evidence([source])[0]
    when = content_datetime or datetime.now()
    orientation = _patient_orientation(source)
    with _copied_names_unchecked():
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=header,
            pixel_array=np.ascontiguousarray(pixels),
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            patient_orientation=orientation or ("L", "P"),
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=f"{algorithm.name} v{algorithm.version}"[:_LO_MAX],
            software_versions=algorithm.version[:_LO_MAX],
            series_description=SALIENCY_SERIES_DESCRIPTION,
            content_date=when.date(),
            content_time=when.time(),
            transfer_syntax_uid=ExplicitVRLittleEndian,
            specific_character_set=_CHARACTER_SET,
        )
    if orientation is None:
        # highdicom insists on an orientation for patient-based images; the source states none
        # (a secondary capture such as MedNIST's), and Patient Orientation is Type 2C in the SC
        # image: present and empty says "unknown", where any letters would be a made-up claim.
        image["PatientOrientation"].value = None
    # Laterality is Type 2C in General Series: the source's value (or its empty "unknown");
    # present and empty when the source does not say, as the condition cannot be evaluated.
    image.add_new("Laterality", "CS", source.get("Laterality", None) or None)
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.BurnedInAnnotation = "NO"
    image.DerivationDescription = (
        f"Grad-CAM saliency of {algorithm.name} v{algorithm.version} blended over the source image"
    )[:1024]
    # Workstation: the capture was made by software (PS3.3 C.8.6.1 Conversion Type).
    image.ConversionType = "WSD"
    image.DateOfSecondaryCapture = pydicom.valuerep.DA(when.date())
    image.TimeOfSecondaryCapture = pydicom.valuerep.TM(when.time())
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    purpose = pydicom.Dataset()
    purpose.CodeValue = "121322"
    purpose.CodingSchemeDesignator = "DCM"
    purpose.CodeMeaning = "Source image for image processing operation"
    reference.PurposeOfReferenceCodeSequence = [purpose]
    image.SourceImageSequence = [reference]
    _stamp_creation(image, when)
    return image
