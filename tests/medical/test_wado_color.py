"""WADO-RS colour: the uncompressed frames of a YBR instance and its /metadata agree.

`/frames` (application/octet-stream) and `/bulk` send lossy-JPEG YBR frames decoded to RGB, as
pydicom, DCMTK and GDCM decode them, and `/metadata` states RGB for them, so a viewer (cornerstone)
converts colour once. pydicom's own decode (`Dataset.pixel_array`, which converts YBR to RGB) is
the oracle for the pixel values; its decoder's reported Photometric Interpretation is the oracle
for the attribute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder

from apps.medical import rendering
from tests.medical.conftest import dicom_path
from tests.medical.test_wado import OHIF_FRAMES_ACCEPT, instance_url, multipart_parts

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(stow: Callable[..., Any]) -> Callable[..., None]:
    def store(*files: str) -> None:
        response = stow(list(files))
        assert response.status_code == 200, response.content

    return store


PHOTOMETRIC = "00280004"


def _metadata_photometric(api: Any, name: str) -> str:
    response = api.get(instance_url(name) + "/metadata", HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200, response.content
    [instance] = response.json()
    value: str = instance[PHOTOMETRIC]["Value"][0]
    return value


@pytest.mark.parametrize(
    ("name", "stored_photometric"),
    [
        ("SC_rgb_jpeg_dcmtk.dcm", "YBR_FULL"),  # JPEG baseline, YBR_FULL
        ("SC_rgb_dcmtk_+eb+cy+s2.dcm", "YBR_FULL_422"),  # JPEG baseline, 4:2:2 subsampled
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", "YBR_FULL_422"),
        ("SC_jpeg_no_color_transform.dcm", "RGB"),  # JPEG baseline holding RGB (no colour transform)
        ("SC_jpeg_no_color_transform_2.dcm", "RGB"),
        ("US1_J2KI.dcm", "YBR_ICT"),  # JPEG 2000 irreversible component transform
    ],
)
def test_uncompressed_frames_are_rgb_and_the_metadata_says_so(
    api: Any, stored: Callable[..., None], name: str, stored_photometric: str
) -> None:
    # given: a colour instance stored compressed
    ds = pydicom.dcmread(dicom_path(name))
    assert ds.PhotometricInterpretation == stored_photometric
    stored(name)
    expected = ds.pixel_array  # pydicom's decode, converted to RGB
    _, decoder_meta = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, index=0, as_rgb=True)  # type: ignore[arg-type]
    # when
    frames = api.get(instance_url(name) + "/frames/1", HTTP_ACCEPT=OHIF_FRAMES_ACCEPT)
    photometric = _metadata_photometric(api, name)
    # then: the pixels are pydicom's RGB decode, byte for byte, 3 samples a pixel
    [(_, data)] = multipart_parts(frames)
    assert data == np.ascontiguousarray(expected).tobytes()
    assert len(data) == int(ds.Rows) * int(ds.Columns) * 3
    # and: the metadata states the colour space those bytes are in, not the stored one
    assert photometric == decoder_meta["photometric_interpretation"] == "RGB"


def test_a_multi_frame_ybr_full_422_jpeg_frames_match_pydicom_and_the_bulk_data(
    api: Any, stored: Callable[..., None]
) -> None:
    # given: 30 frames of ultrasound in JPEG baseline YBR_FULL_422
    name = "examples_ybr_color.dcm"
    ds = pydicom.dcmread(dicom_path(name))
    assert (ds.PhotometricInterpretation, int(ds.NumberOfFrames)) == ("YBR_FULL_422", 30)
    stored(name)
    expected = ds.pixel_array
    # when
    frames = api.get(instance_url(name) + "/frames/2,30", HTTP_ACCEPT=OHIF_FRAMES_ACCEPT)
    bulk = api.get(instance_url(name) + "/bulk/7FE00010", HTTP_ACCEPT="application/octet-stream")
    # then
    assert [data for _, data in multipart_parts(frames)] == [expected[1].tobytes(), expected[29].tobytes()]
    assert bulk.status_code == 200
    assert bulk.content == np.ascontiguousarray(expected).tobytes()
    assert _metadata_photometric(api, name) == "RGB"


@pytest.mark.parametrize("name", ["SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_native_ybr_frames_are_the_stored_bytes_and_keep_the_stored_photometric(
    api: Any, stored: Callable[..., None], name: str
) -> None:
    # given: YBR stored uncompressed (no decoding happens, so nothing changes colour space)
    ds = pydicom.dcmread(dicom_path(name))
    stored(name)
    # when
    frames = api.get(instance_url(name) + "/frames/1", HTTP_ACCEPT=OHIF_FRAMES_ACCEPT)
    # then: native YBR_FULL_422 keeps its 2 samples a pixel, and the attribute says YBR_FULL_422
    [(_, data)] = multipart_parts(frames)
    assert data == ds.PixelData
    assert _metadata_photometric(api, name) == ds.PhotometricInterpretation


def test_rle_ybr_full_is_sent_as_ybr_full() -> None:
    # given: RLE decodes without colour conversion, so YBR_FULL stays YBR_FULL
    assert rendering.uncompressed_photometric_interpretation("YBR_FULL", "1.2.840.10008.1.2.5") == "YBR_FULL"
    # JPEG-LS has no colour transform of its own: a 4:2:2 stream decodes to full-resolution YBR
    assert rendering.uncompressed_photometric_interpretation("YBR_FULL_422", "1.2.840.10008.1.2.4.80") == "YBR_FULL"
    assert rendering.uncompressed_photometric_interpretation("YBR_RCT", "1.2.840.10008.1.2.4.90") == "RGB"
    assert rendering.uncompressed_photometric_interpretation("MONOCHROME2", "1.2.840.10008.1.2.4.50") == "MONOCHROME2"
    assert rendering.uncompressed_photometric_interpretation("YBR_FULL_422", "1.2.840.10008.1.2.1") == "YBR_FULL_422"
