"""De-identification of one DICOM dataset by the PS3.15 Annex E Basic Application Level
Confidentiality Profile and its options, driven by Table E.1-1 (`apps.medical.annex_e`).

A pure module: `deidentify` takes a dataset and two callables (UID remapping and the per-patient
date shift, see `apps.medical.deid_store` for the database-backed ones) and returns a new dataset;
the input is never changed. The table's action is applied to every attribute wherever it occurs,
in the top-level dataset and in every item of every sequence (PS3.15 E.1.1: "whether contained in
the main dataset or embedded in an Item of a Sequence of Items").

How each action is carried out (the standard leaves these choices to the de-identifier):

- X: the attribute is removed.
- Z: zero length (the standard also allows a dummy; a zero-length value carries nothing and
  keeps a Type 2 attribute present). A sequence becomes an empty sequence.
- D: a dummy value of the VR (`dummy_value`): "ANONYMIZED" for text and names, 19000101 for dates,
  000000 for times, 0 for numbers, zero bytes of the same length for binary values, and for a UID
  the consistent `uid_for` replacement. A sequence keeps its items, with every value inside them
  replaced by the dummy of its VR ("the action is applicable to the Sequence and all of its
  contents").
- K: kept; a kept sequence has the profile applied to its items (the standard: "Keeping a
  Sequence requires recursively applying the profile rules to each Dataset in each Item").
- C: clean. This engine does not understand free text, so a cleaned text value gets the same
  dummy as D; a cleaned date (DA, DT) under Retain Longitudinal Temporal Information with Modified
  Dates is shifted by the patient's `date_shift_days`, a cleaned TM is kept (a shift in whole days
  leaves times unchanged); a cleaned sequence has the profile applied to its items; cleaned
  binary values (Overlay Data under Clean Graphics) become zero bytes of the same length.
- U: every UID value is replaced by `uid_for(old)`, so the same source UID maps to the same new
  UID wherever it occurs (SOP Instance UID, Referenced SOP Instance UID inside sequences, ...).
- Compound actions (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) pick one alternative by the Type the attribute
  may have in an IOD. We do not carry the IOD module tables, so we take the alternative that keeps
  the strictest IOD conformant: Z/D and X/Z/D -> D, X/D -> D, X/Z -> Z, and X/Z/U* -> U (the
  sequence is kept and the UIDs it contains are remapped). None of these leaves an original value.
- Several chosen options with different actions for one attribute (e.g. Calibration Date under
  both Retain Device Identity, K, and Modified Dates, C): the more protective one wins
  (X > Z > D > C > U > K).
- Attributes the table does not list are kept (the profile's table is the list of what to
  protect), except private attributes, which the table removes unless Retain Safe Private keeps
  the few in `SAFE_PRIVATE_ATTRIBUTES`.

The file meta information is replaced (PS3.15 E.1.1 item 7): Media Storage SOP Instance UID
follows the new SOP Instance UID, the implementation is ours and the preamble is zeroed. Pixel
data is never touched (we do not implement Clean Pixel Data); instances that may carry burned-in
text are flagged `needs_review` for the caller to quarantine.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from apps.medical import annex_e
from core.errors import ValidationFailed

# New UIDs are generated under pydicom's registered root (generate_uid's default prefix): a
# random, never-reused suffix under a root that identifies no hospital. An organization with its
# own registered root would pass it here.
UID_ROOT = "1.2.826.0.1.3680043.8.498."
IMPLEMENTATION_VERSION_NAME = "TESSERA_DEID"  # SH, at most 16 characters

DUMMY_TEXT = "ANONYMIZED"
DUMMY_DATE = "19000101"
DUMMY_TIME = "000000"
DUMMY_DATETIME = "19000101000000"
DUMMY_AGE = "000Y"

# Retain Safe Private (PS3.15 E.3.10): the private attributes kept, as (private creator, group,
# element within the block). Deliberately minimal: quantitative values research needs that carry
# no identity, taken from the standard's Table E.3.10-1 (Safe Private Attributes): diffusion
# b-values and directions, and PET SUV / activity scale factors. Everything else private goes.
SAFE_PRIVATE_ATTRIBUTES: frozenset[tuple[str, int, int]] = frozenset(
    {
        ("SIEMENS MR HEADER", 0x0019, 0x0C),  # B_value
        ("SIEMENS MR HEADER", 0x0019, 0x0D),  # DiffusionDirectionality
        ("SIEMENS MR HEADER", 0x0019, 0x0E),  # DiffusionGradientDirection
        ("GEMS_PARM_01", 0x0043, 0x39),  # Slop_int_6...9 (b-value and scale)
        ("Philips Imaging DD 001", 0x2001, 0x03),  # Diffusion B-Factor
        ("Philips PET Private Group", 0x7053, 0x00),  # SUV Factor
        ("Philips PET Private Group", 0x7053, 0x09),  # Activity Concentration Scale Factor
    }
)
_SAFE_PRIVATE_CREATORS = frozenset((creator, group) for creator, group, _ in SAFE_PRIVATE_ATTRIBUTES)

# Modalities and SOP classes that usually burn text into the pixels (when BurnedInAnnotation is
# absent the instance is held for review).
BURNED_IN_MODALITIES = frozenset({"US", "SC", "XA"})
SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
    }
)

# CID 7050 De-identification Method, coding scheme DCM.
CODE_BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[str, tuple[str, str]] = {
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_long_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_long_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}
# 113101 Clean Pixel Data is never written: this engine leaves the pixels as they are.

# One alternative per compound action (see the module docstring).
COMPOUND_RESOLUTION = {"Z/D": "D", "X/Z": "Z", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
# Most protective first: when chosen options disagree, the first of these wins.
_PROTECTIVENESS = ("X", "Z", "D", "C", "U", "K")

_BINARY_VRS = {"OB": 2, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8, "UN": 2}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"}


class DeidOptionsError(ValidationFailed):
    """Options an organization admin gave that do not describe a valid option set (a
    ValidationFailed, so the API's one error handler maps it; `fields` names the bad keys)."""


@dataclass(frozen=True)
class DeidOptions:
    """The Annex E options chosen on top of the Basic Profile (all off: the Basic Profile alone).

    Field names are the option columns of `apps.medical.annex_e.ProfileRow`.
    """

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    retain_long_full_dates: bool = False
    retain_long_modified_dates: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):
            if not isinstance(getattr(self, field.name), bool):
                raise DeidOptionsError(
                    f"Option {field.name!r} must be true or false.",
                    code="option_not_boolean",
                    fields={field.name: ["Must be true or false."]},
                )
        if self.retain_long_full_dates and self.retain_long_modified_dates:
            raise DeidOptionsError(
                "Retain Longitudinal Temporal Information: choose full dates or modified dates, not both.",
                code="options_conflict",
                fields={"retain_long_modified_dates": ["Cannot be combined with retain_long_full_dates."]},
            )

    @classmethod
    def from_dict(cls, data: object) -> DeidOptions:
        """Options from an admin's JSON object; unknown keys and non-boolean values are refused."""
        if not isinstance(data, Mapping):
            raise DeidOptionsError("De-identification options must be a JSON object.", code="options_not_object")
        known = {field.name for field in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise DeidOptionsError(
                f"Unknown de-identification option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}.",
                code="unknown_option",
                fields={key: ["Unknown option."] for key in unknown},
            )
        return cls(**{str(key): value for key, value in data.items()})

    def to_dict(self) -> dict[str, bool]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def chosen(self) -> tuple[str, ...]:
        """The names of the options that are on, in the table's column order."""
        return tuple(name for name in annex_e.OPTION_FIELDS if getattr(self, name))


assert {f.name for f in fields(DeidOptions)} == set(annex_e.OPTION_FIELDS)  # the table's option columns


@dataclass(frozen=True)
class DeidResult:
    """The de-identified copy, and whether a person must look at its pixels before it leaves."""

    dataset: Dataset
    needs_review: bool
    review_reason: str = ""


def new_uid() -> str:
    """A fresh UID under `UID_ROOT` (for a source UID never seen before)."""
    return str(generate_uid(prefix=UID_ROOT))


def patient_key(patient_id: str) -> str:
    """The key of a patient in the date-shift table: sha256 hex of the Patient ID, never the ID."""
    return hashlib.sha256(patient_id.encode("utf-8")).hexdigest()


def action_for(row: annex_e.ProfileRow, options: DeidOptions) -> str:
    """The one action (X, Z, D, K, C or U) this engine applies for a table row and option set."""
    option_actions = [action for name in options.chosen if (action := getattr(row, name)) is not None]
    if option_actions:
        # "A requirement for an Option, when implemented, overrides any requirement for the
        # underlying Profile"; between options, the more protective action.
        return min(option_actions, key=_PROTECTIVENESS.index)
    return COMPOUND_RESOLUTION.get(row.basic, row.basic)


def burned_in_review(dataset: Dataset) -> str:
    """Why the pixels may carry burned-in identification, or "" when nothing suggests it."""
    burned_in = str(dataset.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        return "BurnedInAnnotation is YES"
    if burned_in:
        return ""
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f"BurnedInAnnotation is absent on modality {modality}, which usually burns text in"
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        return "BurnedInAnnotation is absent on a secondary capture instance"
    return ""


def deidentify(
    dataset: Dataset,
    *,
    options: DeidOptions,
    uid_for: Callable[[str], str],
    date_shift_days: Callable[[str], int],
) -> DeidResult:
    """A de-identified copy of `dataset` by Table E.1-1 for `options`; the input is not changed.

    Args:
        dataset: the instance (a FileDataset keeps its file meta in the copy, replaced).
        options: the Annex E options on top of the Basic Profile.
        uid_for: the new UID for a source UID; must return the same new UID for the same source
            (within an organization) so studies stay linked.
        date_shift_days: days to add to every date of the patient with this (source) Patient ID;
            called only under Retain Longitudinal Temporal Information with Modified Dates.

    Returns:
        The copy, and `needs_review` with its reason when the pixels may carry burned-in text.
    """
    engine = _Engine(options=options, uid_for=uid_for, date_shift_days=date_shift_days, source=dataset)
    out = engine.dataset(dataset)
    _mark_deidentified(out, options)

    meta = getattr(dataset, "file_meta", None)
    result: Dataset = out
    if meta is not None:
        new_meta = _file_meta(meta, out, engine)
        syntax = new_meta.get("TransferSyntaxUID")
        result = FileDataset(
            "",
            out,
            file_meta=new_meta,
            preamble=b"\0" * 128,
            is_implicit_VR=syntax.is_implicit_VR if syntax else False,
            is_little_endian=syntax.is_little_endian if syntax else True,
        )
    reason = burned_in_review(dataset)
    return DeidResult(dataset=result, needs_review=bool(reason), review_reason=reason)


class _Engine:
    """One run of the profile over one instance (caches the UID map and the date shift)."""

    def __init__(
        self,
        *,
        options: DeidOptions,
        uid_for: Callable[[str], str],
        date_shift_days: Callable[[str], int],
        source: Dataset,
    ) -> None:
        self.options = options
        self._uid_for = uid_for
        self._date_shift_days = date_shift_days
        self._patient_id = str(source.get("PatientID", "") or "")
        self._shift: int | None = None
        self._uids: dict[str, str] = {}

    # -- values ---------------------------------------------------------------------------------

    def uid(self, old: str) -> str:
        old = str(old).strip().rstrip("\0")
        if not old:
            return new_uid()
        if old not in self._uids:
            self._uids[old] = str(self._uid_for(old))
        return self._uids[old]

    @property
    def shift_days(self) -> int:
        if self._shift is None:
            self._shift = int(self._date_shift_days(self._patient_id))
        return self._shift

    def dummy_value(self, elem: DataElement) -> Any:
        """The D action's value for a non-sequence element: non-zero length, consistent with the VR."""
        vr = _vr(elem)
        if vr == "UI":
            return _map_values(elem.value, self.uid) if not _is_empty(elem.value) else new_uid()
        if vr in _BINARY_VRS:
            length = len(elem.value) if isinstance(elem.value, bytes | bytearray) and elem.value else 0
            return b"\0" * (length or _BINARY_VRS[vr])
        if vr in _NUMBER_VRS:
            return 0.0 if vr in {"FL", "FD"} else 0
        if vr in {"DS", "IS"}:
            return "0"
        return {"DA": DUMMY_DATE, "TM": DUMMY_TIME, "DT": DUMMY_DATETIME, "AS": DUMMY_AGE}.get(vr, DUMMY_TEXT)

    # -- datasets and elements ------------------------------------------------------------------

    def dataset(self, source: Dataset) -> Dataset:
        """The profile applied to every element of a dataset (or sequence item)."""
        out = Dataset()
        for elem in source:
            new = self.element(elem, source)
            if new is not None:
                out.add(new)
        return out

    def dummy_dataset(self, source: Dataset) -> Dataset:
        """A sequence item under D: the same elements, every value the dummy of its VR."""
        out = Dataset()
        for elem in source:
            if elem.tag.is_private:  # private attributes follow their own row wherever they are
                private = self._private(elem, source)
                if private is not None:
                    out.add(private)
            elif _vr(elem) == "SQ":
                out.add(self._sequence(elem, [self.dummy_dataset(item) for item in elem.value]))
            else:
                out.add(DataElement(elem.tag, _vr(elem), self.dummy_value(elem)))
        return out

    def element(self, elem: DataElement, parent: Dataset) -> DataElement | None:
        tag = elem.tag
        if tag.is_private:
            return self._private(elem, parent)
        row = annex_e.row_for(int(tag))
        if row is None:
            if _vr(elem) == "SQ":  # not listed, kept, but the table applies to its items too
                return self._sequence(elem, [self.dataset(item) for item in elem.value])
            return copy.deepcopy(elem)
        return self.apply(action_for(row, self.options), elem)

    def apply(self, action: str, elem: DataElement) -> DataElement | None:
        vr = _vr(elem)
        if action == "X":
            return None
        if vr == "SQ":
            if action == "Z":
                return self._sequence(elem, [])
            if action == "D":
                return self._sequence(elem, [self.dummy_dataset(item) for item in elem.value])
            # K, C and U: the profile applied to the items (which remaps the UIDs they contain).
            return self._sequence(elem, [self.dataset(item) for item in elem.value])
        if action == "Z":
            return DataElement(elem.tag, vr, empty_value_for_VR(vr))
        if action == "D":
            return DataElement(elem.tag, vr, self.dummy_value(elem))
        if action == "K":
            return copy.deepcopy(elem)
        if action == "U":
            if vr != "UI" or _is_empty(elem.value):
                return copy.deepcopy(elem) if vr == "UI" else DataElement(elem.tag, vr, self.dummy_value(elem))
            return DataElement(elem.tag, vr, _map_values(elem.value, self.uid))
        if action == "C":
            return self._clean(elem)
        raise ValueError(f"unknown Annex E action {action!r}")

    def _clean(self, elem: DataElement) -> DataElement:
        vr = _vr(elem)
        if vr == "TM":
            return copy.deepcopy(elem)  # a shift in whole days leaves times as they are
        if vr in {"DA", "DT"}:
            if _is_empty(elem.value):
                return copy.deepcopy(elem)
            shift = shift_da if vr == "DA" else shift_dt
            dummy = DUMMY_DATE if vr == "DA" else DUMMY_DATETIME
            # A value we cannot read as a date is replaced, never passed through.
            return DataElement(elem.tag, vr, _map_values(elem.value, lambda v: shift(v, self.shift_days) or dummy))
        return DataElement(elem.tag, vr, self.dummy_value(elem))

    def _private(self, elem: DataElement, parent: Dataset) -> DataElement | None:
        # Table E.1-1: private attributes X; Retain Safe Private: C (keep the known-safe ones).
        if not self.options.retain_safe_private:
            return None
        group, element = elem.tag.group, elem.tag.element
        if elem.tag.is_private_creator:
            return copy.deepcopy(elem) if (str(elem.value), group) in _SAFE_PRIVATE_CREATORS else None
        if element < 0x1000:
            return None  # not in a private block
        creator_elem = parent.get(Tag(group, element >> 8))
        creator = str(creator_elem.value) if creator_elem is not None else ""
        if (creator, group, element & 0xFF) in SAFE_PRIVATE_ATTRIBUTES:
            return copy.deepcopy(elem)
        return None

    @staticmethod
    def _sequence(elem: DataElement, items: Iterable[Dataset]) -> DataElement:
        new = DataElement(elem.tag, "SQ", Sequence(list(items)))
        new.is_undefined_length = elem.is_undefined_length
        return new


# -- dates ------------------------------------------------------------------------------------------

_DA = re.compile(r"^(\d{4})(?:\.?(\d{2})(?:\.?(\d{2}))?)?$")  # YYYYMMDD, partial, or ACR-NEMA YYYY.MM.DD
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?((?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)([+-]\d{4})?$")


def _shift_ymd(year: str, month: str | None, day: str | None, days: int) -> str | None:
    """Shift a date of year, month or day precision by whole days, keeping its precision."""
    try:
        start = datetime.date(int(year), int(month or 1), int(day or 1))
        shifted = start + datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if day is not None:
        return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"
    if month is not None:
        return f"{shifted.year:04d}{shifted.month:02d}"
    return f"{shifted.year:04d}"


def shift_da(value: str, days: int) -> str | None:
    """A DA value moved by `days` (ranges "A-B", "A-", "-B" and partial dates too); None if unreadable."""
    value = str(value).strip()
    if "-" in value:
        parts = value.split("-")
        if len(parts) != 2:
            return None
        shifted = [shift_da(part, days) if part else "" for part in parts]
        return None if any(s is None for s in shifted) else "-".join(s or "" for s in shifted)
    match = _DA.match(value)
    return _shift_ymd(match[1], match[2], match[3], days) if match else None


def shift_dt(value: str, days: int) -> str | None:
    """A DT value whose date part is moved by `days`; time, fraction and UTC offset unchanged."""
    value = str(value).strip()
    match = _DT.match(value)
    if match:
        if match[4] and match[3] is None:
            return None  # a time without a full date is not a valid DT
        date = _shift_ymd(match[1], match[2], match[3], days)
        return None if date is None else date + match[4] + (match[5] or "")
    # A range (query-style values seen in the wild): "A-B" where the offset sign is not the split.
    for index, char in enumerate(value):
        if char == "-":
            left, right = value[:index], value[index + 1 :]
            if (not left or _DT.match(left)) and (not right or _DT.match(right)) and (left or right):
                new_left = shift_dt(left, days) if left else ""
                new_right = shift_dt(right, days) if right else ""
                if new_left is not None and new_right is not None:
                    return f"{new_left}-{new_right}"
    return None


# -- helpers ----------------------------------------------------------------------------------------


def _vr(elem: DataElement) -> str:
    # An ambiguous dictionary VR ("US or SS", "OB or OW") is resolved to its first choice.
    return str(elem.VR).split(" or ")[0]


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, MultiValue | list) and len(value) == 0)


def _map_values(value: Any, func: Callable[[str], str]) -> Any:
    if isinstance(value, MultiValue | list | tuple):
        return [func(str(v)) for v in value]
    return func(str(value))


def _code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def method_description(options: DeidOptions) -> list[str]:
    """De-identification Method (0012,0063) values, one LO (64 characters at most) each."""
    values = [f"DICOM PS3.15 {annex_e.EDITION} Annex E", CODE_BASIC_PROFILE[1]]
    values += [OPTION_CODES[name][1] for name in options.chosen]
    return [value[:64] for value in values]


def _mark_deidentified(out: Dataset, options: DeidOptions) -> None:
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = method_description(options)
    out.DeidentificationMethodCodeSequence = Sequence(
        [_code_item(CODE_BASIC_PROFILE)] + [_code_item(OPTION_CODES[name]) for name in options.chosen]
    )
    if options.retain_long_modified_dates:
        out.LongitudinalTemporalInformationModified = "MODIFIED"
    elif options.retain_long_full_dates:
        out.LongitudinalTemporalInformationModified = "UNMODIFIED"
    else:
        out.LongitudinalTemporalInformationModified = "REMOVED"


def _file_meta(source_meta: FileMetaDataset, out: Dataset, engine: _Engine) -> FileMetaDataset:
    """New file meta information describing the de-identifying application (PS3.15 E.1.1 item 7)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = out.get("SOPClassUID") or source_meta.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in source_meta:
        old = str(source_meta.MediaStorageSOPInstanceUID)
        meta.MediaStorageSOPInstanceUID = UID(old if engine.options.retain_uids else engine.uid(old))
    if "TransferSyntaxUID" in source_meta:
        meta.TransferSyntaxUID = source_meta.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta
