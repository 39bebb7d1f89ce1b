"""Tests of `apps.medical.deidentify` (and the data of `apps.medical.annex_e`).

The oracle is PS3.15 Table E.1-1 itself: a PHI-laden dataset carrying every attribute of the table
that pydicom can write (each with a value of its VR, every sequence with a nested item of PHI) is
de-identified under each option set, and every attribute must show exactly the outcome the table's
action gives (removed, zero length, dummy, kept, remapped UID, shifted date). Then real files from
pydicom's test data go through the engine and round-trip through dcmwrite/dcmread.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pydicom
import pytest
from pydicom import datadict
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from apps.medical import annex_e
from apps.medical.deidentify import (
    SAFE_PRIVATE_ATTRIBUTES,
    UID_ROOT,
    DeidOptions,
    DeidOptionsError,
    deidentify,
    new_uid,
    patient_key,
    shift_da,
    shift_dt,
)

SHIFT_DAYS = 10
PHI_TEXT = "PHI Doe 555-12"
PHI_DATE, SHIFTED_DATE = "20200115", "20200125"
PHI_DATETIME, SHIFTED_DATETIME = "20200115103000.000000", "20200125103000.000000"
PHI_TIME = "103000"
# Groups pydicom keeps out of a dataset body: command (0000) and file meta (0002, tested through
# the file meta), so those rows are not in the oracle dataset.
SKIPPED_GROUPS = {0x0000, 0x0002}

# The engine's documented choice among a compound action's alternatives (apps.medical.deidentify):
# the one that keeps the strictest IOD conformant.
COMPOUND = {"Z/D": "D", "X/Z": "Z", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}

OPTION_SETS: list[dict[str, bool]] = [
    {},
    *({name: True} for name in annex_e.OPTION_FIELDS),
    {name: True for name in annex_e.OPTION_FIELDS if name != "retain_long_modified_dates"},
    {name: True for name in annex_e.OPTION_FIELDS if name != "retain_long_full_dates"},
]


def option_set_id(options: dict[str, bool]) -> str:
    if not options:
        return "basic"
    if len(options) == 1:
        return next(iter(options))
    return "all-full-dates" if "retain_long_full_dates" in options else "all-modified-dates"


class UidMap:
    """A consistent `uid_for`: the same source UID always gets the same new UID."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def __call__(self, old: str) -> str:
        return self.mapping.setdefault(old, new_uid())


def shift_for(patient_id: str) -> int:
    return SHIFT_DAYS


def expected_action(row: annex_e.ProfileRow, options: dict[str, bool]) -> str:
    """The table's action for a row under an option set (an option's entry replaces the profile's)."""
    chosen = [getattr(row, name) for name in annex_e.OPTION_FIELDS if options.get(name) and getattr(row, name)]
    if chosen:
        return "C" if "C" in chosen else chosen[0]  # option columns hold only K and C (tested below)
    return COMPOUND.get(row.basic, row.basic)


def dictionary_vr(tag: int) -> str:
    return datadict.dictionary_VR(tag).split(" or ")[0]


def phi_value(tag: int, vr: str) -> Any:
    """An identifying-looking value of the VR (UIDs unique per tag, so remapping is visible)."""
    text = {
        "AE": "PHI_AE",
        "AS": "045Y",
        "CS": "PHI",
        "DA": PHI_DATE,
        "DT": PHI_DATETIME,
        "TM": PHI_TIME,
        "DS": "12.5",
        "IS": "42",
        "PN": "Doe^John",
        "UR": "http://phi.example/doe",
        "UI": f"1.2.3.4.{tag}",
    }
    if vr in text:
        return text[vr]
    if vr in {"LO", "LT", "SH", "ST", "UC", "UT"}:
        return PHI_TEXT
    if vr in {"US", "SS", "UL", "SL", "UV", "SV"}:
        return 7
    if vr in {"FL", "FD"}:
        return 1.5
    if vr == "AT":
        return 0x00100010
    if vr in {"OB", "OW", "OF", "OL", "OD", "OV", "UN"}:
        return b"\x01\x02\x03\x04\x05\x06\x07\x08"
    raise AssertionError(f"no PHI value for VR {vr}")


def nested_item(top_sop_uid: str) -> Dataset:
    """The item every sequence of the oracle dataset carries: PHI, a reference, a coded value."""
    item = Dataset()
    item.PatientName = "Doe^Jane"
    item.StudyDate = PHI_DATE
    item.ReferencedSOPInstanceUID = top_sop_uid  # the same UID as the top level's: must follow it
    item.CodeMeaning = "Chest"  # not in the table: kept
    return item


PATTERN_ELEMENTS = [
    (0x50000005, "US", annex_e.CURVE_DATA),
    (0x50003000, "OW", annex_e.CURVE_DATA),
    (0x60003000, "OW", annex_e.OVERLAY_DATA),
    (0x60004000, "LT", annex_e.OVERLAY_COMMENTS),
]
NOT_IN_TABLE = {0x00080060: ("CS", "CT"), 0x00280010: ("US", 2), 0x00280011: ("US", 2), 0x60000010: ("US", 2)}
PIXELS = bytes(range(8))


def oracle_rows() -> list[tuple[int, annex_e.ProfileRow]]:
    """(tag, row) for every row with a tag pydicom knows and can put in a dataset body."""
    rows = []
    for row in annex_e.ROWS:
        tag = row.tag_int
        if tag is None or tag >> 16 in SKIPPED_GROUPS or tag not in datadict.DicomDictionary:
            continue
        rows.append((tag, row))
    return rows


def phi_dataset(sop_uid: str = "1.2.3.4.999.1", study_uid: str = "1.2.3.4.999.2") -> Dataset:
    """A dataset carrying every writable attribute of Table E.1-1, with file meta."""
    ds = Dataset()
    for tag, _row in oracle_rows():
        vr = dictionary_vr(tag)
        if vr == "SQ":
            ds.add(DataElement(tag, "SQ", Sequence([nested_item(sop_uid)])))
        else:
            ds.add(DataElement(tag, vr, phi_value(tag, vr)))
    for tag, vr, _pattern in PATTERN_ELEMENTS:
        ds.add(DataElement(tag, vr, phi_value(tag, vr)))
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.PatientID = "MRN-0042"
    ds.SOPClassUID = CTImageStorage
    for tag, (vr, value) in NOT_IN_TABLE.items():
        ds.add_new(tag, vr, value)
    ds.PixelData = PIXELS
    ds["PixelData"].VR = "OW"
    # Private: one unknown block (removed always) and a safe Siemens b-value beside an unsafe one.
    ds.private_block(0x0009, "ACME PHI", create=True).add_new(0x01, "LO", PHI_TEXT)
    siemens = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    siemens.add_new(0x0C, "IS", "1000")
    siemens.add_new(0x08, "LO", PHI_TEXT)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def run(ds: Dataset, options: dict[str, bool], uids: UidMap | None = None) -> tuple[Dataset, UidMap]:
    uids = uids or UidMap()
    result = deidentify(ds, options=DeidOptions.from_dict(options), uid_for=uids, date_shift_days=shift_for)
    return result.dataset, uids


def assert_nested_item(item: Dataset, source: Dataset, options: dict[str, bool], uids: UidMap) -> None:
    """A kept/cleaned sequence's item: the table applied to each of its attributes."""
    assert item.PatientName == ""  # Z
    ref = source.ReferencedSOPInstanceUID
    assert item.ReferencedSOPInstanceUID == (ref if options.get("retain_uids") else uids.mapping[ref])
    if options.get("retain_long_full_dates"):
        assert item.StudyDate == PHI_DATE
    elif options.get("retain_long_modified_dates"):
        assert item.StudyDate == SHIFTED_DATE
    else:
        assert item.StudyDate == ""
    assert item.CodeMeaning == "Chest"


def assert_dummy(value: Any, original: Any, vr: str, uids: UidMap) -> None:
    if vr == "UI":
        assert value == uids.mapping[original]
        return
    assert value not in (None, "", b""), "D gives a non-zero length value"
    if vr in {"OB", "OW", "OF", "OL", "OD", "OV", "UN"}:
        assert value == b"\0" * len(original)
    elif vr not in {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT", "DS", "IS"}:
        assert value != original
        assert "Doe" not in str(value)


def assert_outcome(out: Dataset, tag: int, vr: str, action: str, source: Dataset, options: dict, uids: UidMap) -> None:
    original = source[tag].value
    label = f"{datadict.keyword_for_tag(tag) or hex(tag)} action {action}"
    if action == "X":
        assert tag not in out, label
        return
    assert tag in out, label
    value = out[tag].value
    if vr == "SQ":
        if action == "Z":
            assert len(value) == 0, label
        elif action == "D":
            assert len(value) == 1, label
            item = value[0]
            assert item.PatientName == "ANONYMIZED" and item.CodeMeaning == "ANONYMIZED", label
            assert item.StudyDate == "19000101", label
            assert item.ReferencedSOPInstanceUID == uids.mapping[original[0].ReferencedSOPInstanceUID], label
        else:  # K, C, U: the profile applied inside
            assert len(value) == 1, label
            assert_nested_item(value[0], original[0], options, uids)
        return
    if action == "Z":
        assert value in (None, "", b""), label
    elif action == "K":
        assert value == original, label
    elif action == "U":
        assert value == uids.mapping[original] and value != original, label
        assert value.startswith(UID_ROOT), label
    elif action == "D":
        assert_dummy(value, original, vr, uids)
    elif action == "C":
        if vr == "DA":
            assert value == SHIFTED_DATE, label
        elif vr == "DT":
            assert value == SHIFTED_DATETIME, label
        elif vr == "TM":
            assert value == original, label
        else:
            assert_dummy(value, original, vr, uids)
    else:
        raise AssertionError(f"unexpected action {action}")


# -- the table as data -------------------------------------------------------------------------------


def test_table_is_the_2024b_edition_with_every_row() -> None:
    assert annex_e.EDITION == "2024b"
    assert len(annex_e.ROWS) == 621
    assert len({row.tag for row in annex_e.ROWS}) == len(annex_e.ROWS)
    assert {row.basic for row in annex_e.ROWS} <= {"D", "Z", "X", "K", "C", "U", *COMPOUND}
    for row in annex_e.ROWS:
        for name in annex_e.OPTION_FIELDS:
            assert getattr(row, name) in (None, "K", "C"), (row.tag, name)


@pytest.mark.parametrize(
    ("keyword", "basic", "option", "option_action"),
    [
        ("PatientName", "Z", None, None),
        ("PatientID", "Z/D", None, None),  # Z up to 2024a; 2024b allows a dummy (Z/D)
        ("PatientBirthDate", "Z", None, None),
        ("StudyDate", "Z", "retain_long_modified_dates", "C"),
        ("StudyDate", "Z", "retain_long_full_dates", "K"),
        ("AccessionNumber", "Z", None, None),
        ("InstitutionName", "X/Z/D", "retain_institution_identity", "K"),
        ("StudyInstanceUID", "U", "retain_uids", "K"),
        ("SOPInstanceUID", "U", "retain_uids", "K"),
        ("FrameOfReferenceUID", "U", "retain_uids", "K"),
        ("ReferringPhysicianName", "Z", None, None),
        ("OperatorsName", "X/Z/D", None, None),
        ("StudyDescription", "X", "clean_descriptors", "C"),
        ("SeriesDescription", "X", "clean_descriptors", "C"),
        ("PatientAge", "X", "retain_patient_characteristics", "K"),
        ("PatientSex", "Z", "retain_patient_characteristics", "K"),
        ("DeviceSerialNumber", "X/Z/D", "retain_device_identity", "K"),
        ("ReferencedImageSequence", "X/Z/U*", "retain_uids", "K"),
        ("MediaStorageSOPInstanceUID", "U", "retain_uids", "K"),
    ],
)
def test_rows_checked_by_hand(keyword: str, basic: str, option: str | None, option_action: str | None) -> None:
    row = annex_e.row_for(datadict.tag_for_keyword(keyword) or 0)
    assert row is not None
    assert row.basic == basic
    if option:
        assert getattr(row, option) == option_action


def test_patterns_and_private_rows() -> None:
    private = annex_e.row_for(0x00091001)
    assert private is not None and private.basic == "X" and private.retain_safe_private == "C"
    assert annex_e.row_for(0x50223000) is annex_e.BY_PATTERN[annex_e.CURVE_DATA]
    assert annex_e.row_for(0x601E3000) is annex_e.BY_PATTERN[annex_e.OVERLAY_DATA]
    assert annex_e.row_for(0x60004000) is annex_e.BY_PATTERN[annex_e.OVERLAY_COMMENTS]
    assert annex_e.row_for(0x60000010) is None  # Overlay Rows: not in the table
    assert annex_e.BY_PATTERN[annex_e.OVERLAY_DATA].clean_graphics == "C"


# -- the oracle: every attribute of the table, every option set --------------------------------------


@pytest.mark.parametrize("options", OPTION_SETS, ids=option_set_id)
def test_every_attribute_gets_the_tables_action(options: dict[str, bool]) -> None:
    # given a dataset carrying every writable attribute of Table E.1-1, nested sequences included
    source = phi_dataset()
    pristine = copy.deepcopy(source)
    # when it is de-identified with this option set
    out, uids = run(source, options)
    # then each attribute shows exactly the table's action
    for tag, row in oracle_rows():
        assert_outcome(out, tag, dictionary_vr(tag), expected_action(row, options), source, options, uids)
    for tag, vr, pattern in PATTERN_ELEMENTS:
        assert_outcome(out, tag, vr, expected_action(annex_e.BY_PATTERN[pattern], options), source, options, uids)
    # attributes outside the table are kept, pixels byte for byte
    for tag, (_vr, value) in NOT_IN_TABLE.items():
        assert out[tag].value == value
    assert out.SOPClassUID == CTImageStorage
    assert out.PixelData == PIXELS
    # private attributes: removed, unless Retain Safe Private keeps the known-safe ones
    if options.get("retain_safe_private"):
        assert out.get_private_item(0x0019, 0x0C, "SIEMENS MR HEADER").value == "1000"
    else:
        assert not any(elem.tag.is_private for elem in out)
    assert not any(elem.tag.group == 0x0009 for elem in out)
    assert (0x0019, 0x1008) not in out
    # the file meta follows the SOP Instance UID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    # the input is untouched
    assert source == pristine
    assert source.file_meta == pristine.file_meta
    # and the result is a writable, readable DICOM file
    back = round_trip(out)
    assert back.SOPInstanceUID == out.SOPInstanceUID
    assert back.PixelData == PIXELS


@pytest.mark.parametrize("options", OPTION_SETS, ids=option_set_id)
def test_deidentification_is_recorded(options: dict[str, bool]) -> None:
    out, _ = run(phi_dataset(), options)
    assert out.PatientIdentityRemoved == "YES"
    codes = [(item.CodeValue, item.CodingSchemeDesignator) for item in out.DeidentificationMethodCodeSequence]
    expected = {
        "retain_safe_private": "113111",
        "retain_uids": "113110",
        "retain_device_identity": "113109",
        "retain_institution_identity": "113112",
        "retain_patient_characteristics": "113108",
        "retain_long_full_dates": "113106",
        "retain_long_modified_dates": "113107",
        "clean_descriptors": "113105",
        "clean_structured_content": "113104",
        "clean_graphics": "113103",
    }
    assert codes[0] == ("113100", "DCM")
    assert sorted(value for value, _ in codes[1:]) == sorted(expected[name] for name in options)
    assert "113101" not in {value for value, _ in codes}  # pixels are not cleaned
    assert all(scheme == "DCM" for _, scheme in codes)
    method = list(out.DeidentificationMethod)
    assert "Basic Application Confidentiality Profile" in method
    assert all(len(value) <= 64 for value in method)
    if options.get("retain_long_modified_dates"):
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    elif options.get("retain_long_full_dates"):
        assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    else:
        assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_command_group_rows_and_private_attributes_inside_sequences() -> None:
    # given elements the oracle dataset cannot carry to a file (command group 0000) and a private
    # attribute inside a sequence that the profile replaces with dummies
    source = Dataset()
    source.add_new(0x00001000, "UI", "1.2.3.4.5")  # Affected SOP Instance UID: X, Retain UIDs K
    source.add_new(0x00001001, "UI", "1.2.3.4.6")  # Requested SOP Instance UID: U, Retain UIDs K
    item = nested_item("1.2.3.4.7")
    item.private_block(0x0009, "ACME PHI", create=True).add_new(0x01, "LO", PHI_TEXT)
    source.ContentSequence = Sequence([item])  # D
    source.ReferencedStudySequence = Sequence([copy.deepcopy(item)])  # X/Z -> Z; Retain UIDs K
    # when
    basic, uids = run(source, {})
    kept, _ = run(source, {"retain_uids": True})
    # then
    assert 0x00001000 not in basic
    assert basic[0x00001001].value == uids.mapping["1.2.3.4.6"]
    assert kept[0x00001000].value == "1.2.3.4.5" and kept[0x00001001].value == "1.2.3.4.6"
    assert not any(elem.tag.is_private for elem in basic.iterall())
    assert basic.ContentSequence[0].PatientName == "ANONYMIZED"
    assert len(basic.ReferencedStudySequence) == 0
    assert kept.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.3.4.7"
    assert not any(elem.tag.is_private for elem in kept.iterall())


# -- UIDs across a study --------------------------------------------------------------------------


def test_uids_are_remapped_consistently_across_a_study() -> None:
    # given two instances of one study; the second references the first from two sequences
    first = phi_dataset(sop_uid="1.2.3.4.999.10", study_uid="1.2.3.4.999.20")
    second = phi_dataset(sop_uid="1.2.3.4.999.11", study_uid="1.2.3.4.999.20")
    second.SourceImageSequence = Sequence([nested_item("1.2.3.4.999.10")])
    second.ReferencedImageSequence = Sequence([nested_item("1.2.3.4.999.10")])
    uids = UidMap()
    # when both are de-identified with the same mapping
    out_first, _ = run(first, {}, uids)
    out_second, _ = run(second, {}, uids)
    # then the study and frame of reference stay shared, instances distinct, references follow
    assert out_first.StudyInstanceUID == out_second.StudyInstanceUID != "1.2.3.4.999.20"
    assert out_first.FrameOfReferenceUID == out_second.FrameOfReferenceUID
    assert out_first.SOPInstanceUID != out_second.SOPInstanceUID
    assert out_second.SourceImageSequence[0].ReferencedSOPInstanceUID == out_first.SOPInstanceUID
    assert out_second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out_first.SOPInstanceUID
    assert out_first.file_meta.MediaStorageSOPInstanceUID == out_first.SOPInstanceUID
    # and no source UID remains anywhere in either copy
    source_uids = set(uids.mapping)
    for out in (out_first, out_second):
        for elem in out.iterall():
            if elem.VR == "UI" and elem.tag != 0x00080016:
                assert elem.value not in source_uids, elem


def test_retain_uids_keeps_them() -> None:
    source = phi_dataset()
    out, _ = run(source, {"retain_uids": True})
    assert out.SOPInstanceUID == source.SOPInstanceUID
    assert out.StudyInstanceUID == source.StudyInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID


# -- dates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200115", 10, "20200125"),
        ("20200225", 10, "20200306"),  # across a leap-year February
        ("20200105", -10, "20191226"),
        ("2020.01.15", 1, "20200116"),  # ACR-NEMA form, written back as DA
        ("202001", 40, "202002"),  # partial dates keep their precision
        ("2020", 400, "2021"),
        ("20200101-20200131", 1, "20200102-20200201"),
        ("-20200131", 1, "-20200201"),
        ("20200101-", 1, "20200102-"),
        ("not a date", 1, None),
        ("20201340", 1, None),
    ],
)
def test_shift_da(value: str, days: int, expected: str | None) -> None:
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200115103000.123456+0100", 10, "20200125103000.123456+0100"),
        ("20200115103000", -15, "20191231103000"),
        ("20200115", 1, "20200116"),
        ("2020", 1, "2020"),
        ("20200115103000-0500", 1, "20200116103000-0500"),  # a negative UTC offset is not a range
        ("20200101-20200102", 1, "20200102-20200103"),
        ("garbage", 1, None),
    ],
)
def test_shift_dt(value: str, days: int, expected: str | None) -> None:
    assert shift_dt(value, days) == expected


def test_modified_dates_shift_multi_valued_and_replace_unreadable_values() -> None:
    source = phi_dataset()
    source.CalibrationDate = ["20200101", "20200201"]  # DA, VM 1-n, in the table (C under modified dates)
    source.AcquisitionDateTime = "20200115103000.5+0100"
    source.StudyTime = "103000.25"
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        source.ContentDate = "31/12/2020"  # not a DA: replaced, never passed through
    result = deidentify(
        source,
        options=DeidOptions(retain_long_modified_dates=True),
        uid_for=UidMap(),
        date_shift_days=lambda patient_id: 3 if patient_id == "MRN-0042" else 999,
    )
    out = result.dataset
    assert list(out.CalibrationDate) == ["20200104", "20200204"]
    assert out.AcquisitionDateTime == "20200118103000.5+0100"
    assert out.StudyTime == "103000.25"
    assert out.ContentDate == "19000101"
    round_trip(out)


def test_patient_key_is_a_sha256_of_the_id() -> None:
    assert patient_key("MRN-0042") == patient_key("MRN-0042")
    assert len(patient_key("MRN-0042")) == 64 and "MRN" not in patient_key("MRN-0042")
    assert patient_key("MRN-0042") != patient_key("MRN-0043")
    assert new_uid().startswith(UID_ROOT) and new_uid() != new_uid()


# -- options ------------------------------------------------------------------------------------------


def test_options_round_trip_and_validation() -> None:
    options = DeidOptions.from_dict({"retain_uids": True, "clean_descriptors": True})
    assert DeidOptions.from_dict(options.to_dict()) == options
    assert options.chosen == ("retain_uids", "clean_descriptors")
    assert DeidOptions.from_dict({}) == DeidOptions()
    with pytest.raises(DeidOptionsError) as unknown:
        DeidOptions.from_dict({"retain_uids": True, "retain_everything": True})
    assert unknown.value.code == "unknown_option" and "retain_everything" in unknown.value.fields
    with pytest.raises(DeidOptionsError) as not_bool:
        DeidOptions.from_dict({"retain_uids": "yes"})
    assert not_bool.value.code == "option_not_boolean"
    with pytest.raises(DeidOptionsError) as conflict:
        DeidOptions.from_dict({"retain_long_full_dates": True, "retain_long_modified_dates": True})
    assert conflict.value.code == "options_conflict"
    with pytest.raises(DeidOptionsError) as not_object:
        DeidOptions.from_dict(["retain_uids"])
    assert not_object.value.code == "options_not_object"


def test_safe_private_list_is_minimal_and_documented() -> None:
    assert 0 < len(SAFE_PRIVATE_ATTRIBUTES) <= 10
    assert all(group % 2 == 1 and 0 <= element <= 0xFF for _, group, element in SAFE_PRIVATE_ATTRIBUTES)


# -- real files ---------------------------------------------------------------------------------------


def round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def read_testdata(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, name
    return pydicom.dcmread(path)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm"])  # RLE: encapsulated pixels
@pytest.mark.parametrize("options", [{}, {"retain_long_modified_dates": True, "retain_patient_characteristics": True}])
def test_real_files_round_trip(name: str, options: dict[str, bool]) -> None:
    # given a real file
    source = read_testdata(name)
    before = source.to_json_dict()
    uids = UidMap()
    # when it is de-identified and written to a file
    result = deidentify(source, options=DeidOptions.from_dict(options), uid_for=uids, date_shift_days=shift_for)
    back = round_trip(result.dataset)
    # then it reads back de-identified, its pixels byte for byte, the input unchanged
    assert not result.needs_review
    assert back.PixelData == source.PixelData
    assert back.PatientName == ""
    assert back.PatientID == "ANONYMIZED"
    assert back.SOPInstanceUID == uids.mapping[source.SOPInstanceUID]
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert back.preamble == b"\0" * 128
    assert "InstitutionName" not in back or back.InstitutionName == "ANONYMIZED"
    assert not any(elem.tag.is_private for elem in back)
    if options.get("retain_long_modified_dates"):
        assert back.StudyDate == shift_da(source.StudyDate, SHIFT_DAYS)
        assert back.PatientSex == source.PatientSex
    else:
        assert back.StudyDate == ""
    assert back.PatientIdentityRemoved == "YES"
    assert source.to_json_dict() == before


def test_ultrasound_without_burned_in_annotation_needs_review() -> None:
    source = read_testdata("US1_UNCR.dcm")
    assert "BurnedInAnnotation" not in source
    result = deidentify(source, options=DeidOptions(), uid_for=UidMap(), date_shift_days=shift_for)
    assert result.needs_review and "US" in result.review_reason
    assert round_trip(result.dataset).PixelData == source.PixelData


def test_secondary_capture_needs_review() -> None:
    source = read_testdata("SC_rgb.dcm")
    source.Modality = "OT"
    result = deidentify(source, options=DeidOptions(), uid_for=UidMap(), date_shift_days=shift_for)
    assert result.needs_review and "secondary capture" in result.review_reason


@pytest.mark.parametrize(("modality", "burned_in", "needs_review"), [("CT", "YES", True), ("US", "NO", False)])
def test_burned_in_annotation_decides(modality: str, burned_in: str, needs_review: bool) -> None:
    source = read_testdata("CT_small.dcm")
    source.Modality = modality
    source.BurnedInAnnotation = burned_in
    result = deidentify(source, options=DeidOptions(), uid_for=UidMap(), date_shift_days=shift_for)
    assert result.needs_review is needs_review
