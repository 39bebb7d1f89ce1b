"""What the archive refuses, with which PS3.18 FailureReason, and that a refusal leaves nothing:
pydicom's own malformed files, real files cut at many lengths, non-storage SOP classes, missing
and invalid UIDs; the others in the same request are stored and the status follows (200 all,
202 some, 409 none)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from apps.medical.dicom_files import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH,
    SOP_CLASS_NOT_SUPPORTED,
    InstanceRefused,
    instance_inspect,
)
from apps.medical.models import Instance, Study
from tests.medical.conftest import CT, MR, MULTIFRAME, MULTIFRAME_J2K, dicom_path
from tests.medical.test_stow import (
    assert_archive_holds,
    assert_nothing_stored,
    failed,
    item_code,
    item_uid,
    referenced,
    sop_uid,
    store_audits,
)

pytestmark = pytest.mark.django_db

Stow = Callable[..., Any]


# --- pydicom's malformed files ----------------------------------------------------------------------

# (file, reason): every one of pydicom's / pydicom-data's files that is broken or not an instance
MALFORMED = [
    ("no_meta.dcm", CANNOT_UNDERSTAND),  # no preamble, no File Meta Information
    ("ExplVR_LitEndNoMeta.dcm", CANNOT_UNDERSTAND),
    ("ExplVR_BigEndNoMeta.dcm", CANNOT_UNDERSTAND),
    ("rtstruct.dcm", CANNOT_UNDERSTAND),  # pydicom's copy has no preamble
    ("MR_truncated.dcm", CANNOT_UNDERSTAND),  # cut inside the pixel data
    ("rtplan_truncated.dcm", CANNOT_UNDERSTAND),  # cut inside a sequence
    ("meta_missing_tsyntax.dcm", CANNOT_UNDERSTAND),
    ("badVR.dcm", CANNOT_UNDERSTAND),  # Rows is IS "1A"
    ("emri_small_jpeg_2k_lossless_too_short.dcm", CANNOT_UNDERSTAND),  # cut inside its pixel data
    ("no_meta_group_length.dcm", DATA_SET_DOES_NOT_MATCH),  # a fragment without UIDs
    ("bad_sequence.dcm", DATA_SET_DOES_NOT_MATCH),
    ("UN_sequence.dcm", DATA_SET_DOES_NOT_MATCH),
    ("JPEGLSNearLossless_08.dcm", DATA_SET_DOES_NOT_MATCH),  # no Study/Series Instance UID
    ("DICOMDIR", SOP_CLASS_NOT_SUPPORTED),  # Media Storage Directory: not a storage class
    ("README.txt", CANNOT_UNDERSTAND),
]


@pytest.mark.parametrize(("name", "reason"), MALFORMED, ids=[name for name, _ in MALFORMED])
def test_malformed_files_are_refused_with_their_reason(stow: Stow, org: Any, name: str, reason: int) -> None:
    # when
    response = stow([name])

    # then: 409, one failed item with the reason, nothing kept
    assert response.status_code == 409, response.content
    (item,) = failed(response)
    assert item_code(item) == reason, (name, response.json(), response.get("Warning"))
    assert referenced(response) == []
    assert_nothing_stored(org)


def test_a_refused_file_beside_good_ones_is_202_and_the_good_ones_are_stored(stow: Stow, org: Any) -> None:
    # when: good, broken, good, broken
    response = stow([CT, "MR_truncated.dcm", MULTIFRAME_J2K, "no_meta.dcm"])

    # then
    assert response.status_code == 202, response.content
    assert [item_uid(item) for item in referenced(response)] == [sop_uid(CT), sop_uid(MULTIFRAME_J2K)]
    assert sorted(item_code(item) for item in failed(response)) == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND]
    truncated = pydicom.dcmread(dicom_path("MR_truncated.dcm"), stop_before_pixels=True).SOPInstanceUID
    assert truncated in {item_uid(item) for item in failed(response)}  # identified when the header is readable
    assert_archive_holds(org, [CT, MULTIFRAME_J2K])
    assert {event.details["sha256"] for event in store_audits(org)} == {
        instance.sha256 for instance in Instance.objects.all()
    }
    assert "Warning" in response


def test_every_pydicom_test_file_is_stored_or_refused_never_an_error(stow: Stow, org: Any) -> None:
    # given: every file pydicom and pydicom-data ship (directories and non-DICOM files included)
    from pydicom.data import get_testdata_files

    paths = sorted({Path(name) for name in get_testdata_files() if Path(name).is_file()})
    paths = [path for path in paths if path.stat().st_size < 1_000_000]  # the large ones: the integration test

    # when: in bodies of 20
    for start in range(0, len(paths), 20):
        response = stow(paths[start : start + 20])

        # then: a STOW answer, never a 500; every failure carries a standard reason
        assert response.status_code in {200, 202, 409}, response.content
        reasons = {item_code(item) for item in failed(response)}
        assert reasons <= {CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH, SOP_CLASS_NOT_SUPPORTED, 0xB006}, reasons
    assert Instance.objects.filter(organization=org).count() > 50


# --- cut files ----------------------------------------------------------------------------------------


def pixel_data_offset(path: Path) -> int:
    """Where the Pixel Data value starts in the file (its raw element, not yet converted, knows)."""
    element = pydicom.dcmread(path)._dict[Tag(0x7FE0, 0x0010)]
    assert isinstance(element, RawDataElement)
    return int(element.value_tell)


def _cut_points(path: Path) -> list[int]:
    """20 lengths spread over the file, plus the interesting ones: inside the preamble, right
    after the File Meta Information, just before / at / inside the pixel data, a few bytes short."""
    data = path.read_bytes()
    with path.open("rb") as handle:
        pydicom.filereader.read_preamble(handle, False)
        pydicom.filereader._read_file_meta_info(handle)
        after_meta = handle.tell()
    value_at = pixel_data_offset(path)
    points = {len(data) * step // 20 for step in range(1, 20)}
    points |= {1, 100, 132, after_meta, after_meta + 5, value_at - 12, value_at - 4, value_at, value_at + 8}
    points |= {value_at + 300, len(data) - 100, len(data) - 8, len(data) - 4, len(data) - 1}
    return sorted(point for point in points if 0 < point < len(data))


@pytest.mark.parametrize("name", [CT, MULTIFRAME, MULTIFRAME_J2K, "SC_rgb_rle.dcm", "JPEG2000.dcm"])
def test_a_file_cut_anywhere_is_refused_and_leaves_nothing(stow: Stow, org: Any, tmp_path: Path, name: str) -> None:
    # given
    source = dicom_path(name)
    data = source.read_bytes()
    cuts = _cut_points(source)
    assert len(cuts) >= 20

    # when: each cut sent on its own (one body of all of them, then each alone for the reason)
    paths = []
    for cut in cuts:
        path = tmp_path / f"cut-{cut}.dcm"
        path.write_bytes(data[:cut])
        paths.append(path)
    response = stow(paths)

    # then: every one refused, nothing kept; cut after the UIDs it is "cannot understand"
    assert response.status_code == 409, (name, [item_uid(item) for item in referenced(response)])
    assert len(failed(response)) == len(cuts)
    codes = {cut: item_code(item) for cut, item in zip(cuts, failed(response), strict=True)}
    assert set(codes.values()) <= {CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH}
    value_at = pixel_data_offset(source)
    assert {codes[cut] for cut in cuts if cut >= value_at - 12} == {CANNOT_UNDERSTAND}
    assert_nothing_stored(org)

    # and: the whole file is still accepted afterwards
    assert stow([source]).status_code == 200


@pytest.mark.parametrize("name", [CT, MR, MULTIFRAME_J2K])
def test_instance_inspect_refuses_cuts_inside_the_pixel_data_as_cannot_understand(tmp_path: Path, name: str) -> None:
    # given: cuts inside the pixel data (the header and UIDs are intact)
    source = dicom_path(name)
    data = source.read_bytes()
    value_at = pixel_data_offset(source)
    for cut in (value_at, value_at + 8, (value_at + len(data)) // 2, len(data) - 1):
        path = tmp_path / "cut.dcm"
        path.write_bytes(data[:cut])

        # when / then: refused with the instance's identity, so the answer can name it
        with pytest.raises(InstanceRefused) as refused:
            instance_inspect(path)
        assert refused.value.reason == CANNOT_UNDERSTAND, (cut, refused.value.message)
        assert refused.value.sop_instance_uid == sop_uid(name)


# --- identity: SOP class and UIDs -----------------------------------------------------------------------


def _variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """`name` with some attributes changed (None deletes one), written as a Part 10 file."""
    dataset = pydicom.dcmread(dicom_path(name))
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    path = tmp_path / f"{name}-{'-'.join(changes)}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"SOPClassUID": "1.2.840.10008.1.3.10"}, SOP_CLASS_NOT_SUPPORTED),  # Media Storage Directory
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.2.2.1"}, SOP_CLASS_NOT_SUPPORTED),  # a query/retrieve class
        ({"SOPClassUID": "1.2.3.4.5"}, SOP_CLASS_NOT_SUPPORTED),  # not a class the standard defines
        ({"StudyInstanceUID": None}, DATA_SET_DOES_NOT_MATCH),
        ({"SeriesInstanceUID": None}, DATA_SET_DOES_NOT_MATCH),
        ({"StudyInstanceUID": ""}, DATA_SET_DOES_NOT_MATCH),
        ({"StudyInstanceUID": "1.2.03.4"}, DATA_SET_DOES_NOT_MATCH),  # leading zero in a component
        ({"SeriesInstanceUID": "1.2.abc"}, DATA_SET_DOES_NOT_MATCH),
        ({"StudyInstanceUID": "1." + "2" * 64}, DATA_SET_DOES_NOT_MATCH),  # longer than 64
        ({"SOPInstanceUID": "1..2"}, DATA_SET_DOES_NOT_MATCH),
        ({"PixelData": None}, CANNOT_UNDERSTAND),  # an image without its pixels
        ({"Rows": 256}, CANNOT_UNDERSTAND),  # pixel data shorter than the attributes call for
    ],
    ids=[
        "dicomdir-class",
        "query-class",
        "unknown-class",
        "no-study-uid",
        "no-series-uid",
        "empty-study-uid",
        "leading-zero",
        "letters",
        "too-long",
        "empty-component",
        "no-pixel-data",
        "short-pixel-data",
    ],
)
def test_identity_and_pixel_refusals_beside_a_stored_instance(
    stow: Stow, org: Any, tmp_path: Path, changes: dict[str, Any], reason: int
) -> None:
    # given
    bad = _variant(tmp_path, CT, **changes)

    # when: the bad one and a good one in one request
    response = stow([bad, MR])

    # then: 202, the bad one a failed item with the reason, only the MR stored (no row, file or audit of the CT)
    assert response.status_code == 202, response.content
    (item,) = failed(response)
    assert item_code(item) == reason, response.get("Warning")
    assert [item_uid(ref) for ref in referenced(response)] == [sop_uid(MR)]
    assert_archive_holds(org, [MR])
    assert [event.details["sha256"] for event in store_audits(org)] == [Instance.objects.get().sha256]
    assert Study.objects.count() == 1


def test_status_is_200_all_202_some_409_none(stow: Stow, org: Any) -> None:
    # when / then
    assert stow(["no_meta.dcm", "MR_truncated.dcm"]).status_code == 409
    assert stow([CT, "no_meta.dcm"]).status_code == 202
    assert stow([MR, MULTIFRAME]).status_code == 200
    assert_archive_holds(org, [CT, MR, MULTIFRAME])
