"""What the archive accepts as a DICOM instance, and the attributes it indexes from one.

`instance_inspect(path)` reads a received file strictly and either returns what the index needs
or raises `InstanceRefused` with the PS3.18 / PS3.4 failure reason a STOW-RS answer or a C-STORE
status carries. pydicom is lenient on purpose (it parses many cut files without a word), so the
checks here are the archive's own:

- the file has the 128-byte preamble, `DICM` and a File Meta Information group (never read
  with `force=True`);
- no element is shorter than its declared length (a file cut inside an element);
- an image has its pixel data, of the length rows x columns x samples x bits x frames give for
  a native transfer syntax, or a complete encapsulated fragment sequence with at least one
  fragment per frame for a compressed one (a file cut at an element boundary before or inside
  the pixel data);
- Study, Series and SOP Instance UIDs and the SOP Class UID are present and are valid UIDs;
- the SOP class is a storage SOP class: pynetdicom's list of every current one, plus the
  retired ones of pydicom's UID dictionary (`RETIRED_STORAGE_SOP_CLASSES`), which old studies a
  PACS migrates still carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import get_expected_length
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pynetdicom import AllStoragePresentationContexts

# Failure reasons (PS3.18 Table I.2-1 / PS3.4 Annex B) a STOW-RS FailedSOPSequence item carries.
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4.2.1.4: the archive's "reject" duplicates policy
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900  # also: the instance belongs to another study than the URL names
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
# Warning reasons (PS3.18 Table I.2-2) on a ReferencedSOPSequence item.
WARNING_ELEMENTS_DISCARDED = 0xB006  # "keep" duplicates policy: the copy just sent was discarded

# Retired storage SOP classes (PS3.4 Annex B as it once stood; pydicom's UID dictionary marks
# them retired): Ultrasound (Multi-frame) Image, Nuclear Medicine Image, X-Ray Angiographic
# Bi-Plane Image, the Standalone Overlay / Curve / Modality LUT / VOI LUT / PET Curve classes, and
# the "- Trial" SR, VL and Waveform classes. An archive migrated from an old PACS holds them, and
# dcm4chee and Orthanc store them; pynetdicom's storage list has only the current classes. The
# print management classes ("... Storage SOP Class") and Storage Commitment are not storage.
_RETIRED_STORAGE_NAME = re.compile(r"Storage( - Trial)?$")
RETIRED_STORAGE_SOP_CLASSES: frozenset[str] = frozenset(
    uid
    for uid, (name, kind, _, retired, _) in UID_dictionary.items()
    if kind == "SOP Class"
    and retired == "Retired"
    and _RETIRED_STORAGE_NAME.search(name)
    and not name.startswith("Storage Commitment")
)
STORAGE_SOP_CLASSES: frozenset[str] = (
    frozenset(str(context.abstract_syntax) for context in AllStoragePresentationContexts) | RETIRED_STORAGE_SOP_CLASSES
)
# Storage SOP classes whose IOD requires pixel data (Image Pixel module, Type 1): every
# "... Image Storage" class, and the image-like ones named otherwise. A file of these classes
# without pixel data is a file cut before its pixel data, whatever else pydicom read.
_PIXEL_CLASS_NAMES = {"Segmentation Storage", "Label Map Segmentation Storage", "Enhanced US Volume Storage"}
IMAGE_SOP_CLASSES: frozenset[str] = frozenset(
    uid for uid in STORAGE_SOP_CLASSES if "Image Storage" in UID(uid).name or UID(uid).name in _PIXEL_CLASS_NAMES
)

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA = Tag(0x7FE0, 0x0010)
_PIXEL_TAGS = (_PIXEL_DATA, Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))  # Pixel, Float Pixel, Double Float Pixel


class InstanceRefused(Exception):
    """The archive does not store this file. `reason` is the PS3.18 FailureReason code."""

    def __init__(self, reason: int, message: str, *, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


@dataclass(frozen=True)
class InspectedInstance:
    """A file the archive accepts: its dataset (pixel data left as read) and its identity."""

    dataset: Dataset
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str


def is_valid_uid(value: object) -> bool:
    """PS3.5 9.1: digits and dots, no leading zeros in a component, at most 64 characters."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID.match(value))


def instance_inspect(path: Path) -> InspectedInstance:
    """Read the file at `path` strictly; raise InstanceRefused with the reason if it is not storable."""
    try:
        dataset = pydicom.dcmread(path)
        cut_at_the_end = _ends_inside_an_element(dataset, path.stat().st_size)
    except InvalidDicomError as exc:
        raise InstanceRefused(CANNOT_UNDERSTAND, f"Not a DICOM Part 10 file: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (pydicom raises many kinds on malformed input)
        raise InstanceRefused(CANNOT_UNDERSTAND, f"The file could not be parsed: {exc}") from None
    sop_class_uid = _text(dataset, "SOPClassUID") or _text(dataset.file_meta, "MediaStorageSOPClassUID")
    sop_instance_uid = _text(dataset, "SOPInstanceUID") or _text(dataset.file_meta, "MediaStorageSOPInstanceUID")

    def refuse(reason: int, message: str) -> InstanceRefused:
        return InstanceRefused(reason, message, sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid)

    transfer_syntax_uid = _text(dataset.file_meta, "TransferSyntaxUID")
    if not transfer_syntax_uid:
        raise refuse(CANNOT_UNDERSTAND, "The File Meta Information has no Transfer Syntax UID.")
    if not dataset._dict:
        # pydicom drops the whole data set when an undefined-length value runs into the end of
        # the file (a file cut inside encapsulated pixel data): what is left is the meta header
        raise refuse(CANNOT_UNDERSTAND, "The file holds no data set after its File Meta Information (truncated?).")
    if cut_at_the_end:
        raise refuse(CANNOT_UNDERSTAND, "The file is truncated: it ends inside its last element.")
    short = _first_short_element(dataset)
    if short is not None:
        raise refuse(CANNOT_UNDERSTAND, f"The file is truncated: element {short} is shorter than its declared length.")
    if is_valid_uid(sop_class_uid) and sop_class_uid not in STORAGE_SOP_CLASSES:
        # before the UID checks: a DICOMDIR (Media Storage Directory) has no Study Instance UID,
        # and its answer is "SOP class not supported", not "does not match"
        raise refuse(SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop_class_uid} is not a storage SOP class.")
    missing = [
        keyword
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
        if not is_valid_uid(_text(dataset, keyword))
    ]
    if missing:
        raise refuse(DATA_SET_DOES_NOT_MATCH, f"Missing or invalid {', '.join(missing)}.")
    if sop_class_uid not in STORAGE_SOP_CLASSES:
        raise refuse(SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop_class_uid} is not a storage SOP class.")
    _check_pixel_data(dataset, transfer_syntax_uid, refuse)
    if sop_class_uid in IMAGE_SOP_CLASSES and not any(tag in dataset for tag in _PIXEL_TAGS):
        raise refuse(CANNOT_UNDERSTAND, "The image has no pixel data (the file may be truncated).")
    return InspectedInstance(
        dataset=dataset,
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        study_instance_uid=_text(dataset, "StudyInstanceUID"),
        series_instance_uid=_text(dataset, "SeriesInstanceUID"),
        transfer_syntax_uid=transfer_syntax_uid,
    )


def _text(dataset: Dataset, keyword: str) -> str:
    try:
        value = dataset.get(keyword)
    except Exception:  # noqa: BLE001  (a malformed value raises on conversion)
        return ""
    return str(value).strip() if value is not None else ""


def _ends_inside_an_element(dataset: Dataset, file_size: int) -> bool:
    """Whether the file ends inside its last top-level element's header or delimiter.

    pydicom stops without a word when fewer than 8 bytes of an element header are left, and
    reads an undefined-length value whose sequence delimiter lost its 4 length bytes; both are
    files cut a few bytes short. Called before any element is converted (they are still raw,
    with their file positions). A last element that is a sequence is not checked here.
    """
    if not dataset._dict or _text(dataset.file_meta, "TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return False  # a deflated data set's positions are in the inflated stream, not the file
    last = list(dataset._dict.values())[-1]
    if not isinstance(last, RawDataElement) or last.value is None:
        return False
    # an undefined length: the value, then the (FFFE,E0DD) delimiter and its 4 length bytes
    undefined = last.length == _UNDEFINED_LENGTH
    end = last.value_tell + (len(last.value) + 8 if undefined else last.length)
    return end > file_size or 0 < file_size - end < 8


def _first_short_element(dataset: Dataset) -> str | None:
    """The first element (recursively) whose value is shorter than its declared length, if any."""
    for tag, element in dataset._dict.items():
        if isinstance(element, RawDataElement):
            if (
                element.length != _UNDEFINED_LENGTH
                and element.value is not None
                and len(element.value) < element.length
            ):
                return str(Tag(tag))
        elif isinstance(element.value, Sequence):
            for item in element.value:
                found = _first_short_element(item)
                if found is not None:
                    return found
    return None


def expected_native_length(dataset: Dataset) -> int:
    """Bytes of native (uncompressed) pixel data the image attributes call for (PS3.5 8.1.1).

    pydicom's own count: it knows that YBR_FULL_422 is stored subsampled (two samples per pixel,
    PS3.3 C.7.6.3.1.2) and that 1-bit frames are packed across frame boundaries.
    """
    return int(get_expected_length(dataset, unit="bytes"))


def _check_pixel_data(dataset: Dataset, transfer_syntax_uid: str, refuse: Callable[[int, str], Exception]) -> None:
    has_pixels = any(tag in dataset for tag in _PIXEL_TAGS)
    is_image = "Rows" in dataset and "Columns" in dataset
    if not is_image:
        if has_pixels:
            raise refuse(DATA_SET_DOES_NOT_MATCH, "Pixel data without Rows and Columns.")
        return
    if not has_pixels:
        raise refuse(CANNOT_UNDERSTAND, "The image has no pixel data (the file may be truncated).")
    if _PIXEL_DATA not in dataset:
        return  # float pixel data: its length check is the element's own
    try:
        syntax = pydicom.uid.UID(transfer_syntax_uid)
        encapsulated = syntax.is_encapsulated if syntax.is_transfer_syntax else None
        if encapsulated is None:
            raise refuse(TRANSFER_SYNTAX_NOT_SUPPORTED, f"Unknown transfer syntax {transfer_syntax_uid}.")
        if not dataset.get("BitsAllocated"):
            raise refuse(DATA_SET_DOES_NOT_MATCH, "The image has no Bits Allocated.")
        value: Any = dataset.PixelData
        if encapsulated:
            frames = int(dataset.get("NumberOfFrames") or 1)
            # The first item is the Basic Offset Table, empty in most files (PS3.5 A.4): the
            # frames' fragments are the items after it.
            fragments = list(pydicom.encaps.generate_fragments(value))[1:]
            if len(fragments) < frames or not all(fragments):
                raise refuse(CANNOT_UNDERSTAND, "The encapsulated pixel data is incomplete (truncated file?).")
        elif len(value) < expected_native_length(dataset):
            raise refuse(
                CANNOT_UNDERSTAND,
                f"The pixel data has {len(value)} bytes where the image attributes call for "
                f"{expected_native_length(dataset)} (truncated file?).",
            )
    except InstanceRefused:
        raise
    except Exception as exc:  # noqa: BLE001  (any failure to read the pixel data is a refusal)
        raise refuse(CANNOT_UNDERSTAND, f"The pixel data could not be read: {exc}") from None
