"""WADO-RS (apps/medical/dicomweb/wado.py) through the HTTP API: retrieve, metadata, frames,
rendered, thumbnail and bulk data, their Accept negotiation and bad inputs, PHI access rows, and
tenancy on every path. Real files from pydicom and pydicom-data, stored with STOW-RS first."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from django.core.files.storage import default_storage
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from PIL import Image
from pydicom.uid import generate_uid

from apps.medical.models import Instance, PhiAccess, PhiAccessStudy
from apps.medical.multipart import MediaType
from tests.conftest import assert_error
from tests.medical.conftest import CT, MULTIFRAME, MULTIFRAME_J2K, dicom_path

pytestmark = pytest.mark.django_db

ROOT = "/api/v1/medical/dicomweb"
MULTIFRAME_RLE = "emri_small_RLE.dcm"
RGB = "SC_rgb.dcm"
RT_PLAN = "rtplan.dcm"  # no pixel data
ECG = "waveform_ecg.dcm"  # bulk values inside a sequence (WaveformSequence → WaveformData)
DICOMWEB_CLIENT_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OHIF_FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def read(path: Path | str) -> pydicom.Dataset:
    return pydicom.dcmread(path if isinstance(path, Path) else dicom_path(path))


def uids(file: Path | str) -> tuple[str, str, str]:
    ds = read(file)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def study_url(file: Path | str) -> str:
    return f"{ROOT}/studies/{uids(file)[0]}"


def series_url(file: Path | str) -> str:
    study, series, _ = uids(file)
    return f"{ROOT}/studies/{study}/series/{series}"


def instance_url(file: Path | str) -> str:
    study, series, sop = uids(file)
    return f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def multipart_parts(response: Any) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related answer (split by hand: the archive's own reader is not the oracle)."""
    media_type = MediaType.parse(response["Content-Type"])
    assert media_type.value == "multipart/related", response["Content-Type"]
    boundary = media_type.params["boundary"].encode()
    body = body_of(response)
    opening, closing = b"--" + boundary + b"\r\n", b"\r\n--" + boundary + b"--\r\n"
    assert body.startswith(opening) and body.endswith(closing), body[:100]
    parts = []
    for chunk in body[len(opening) : -len(closing)].split(b"\r\n--" + boundary + b"\r\n"):
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, data))
    return parts


@pytest.fixture
def stored(stow: Callable[..., Any]) -> Callable[..., None]:
    """`stored(*files)`: STOW-RS the files into acme's archive, asserting they were all stored."""

    def store(*files: Path | str, client: Any = None) -> None:
        response = stow(list(files), client=client)
        assert response.status_code == 200, response.content

    return store


@pytest.fixture
def ct_series(tmp_path: Path) -> Callable[[int], list[Path]]:
    """`ct_series(n)`: n copies of CT_small as one series (new SOP Instance UIDs, instance numbers 1..n)."""

    def make(count: int) -> list[Path]:
        paths = []
        for number in range(1, count + 1):
            ds = read(CT)
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = number
            path = tmp_path / f"ct-{number}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    return make


# --- retrieve -----------------------------------------------------------------------------------


def test_a_study_is_retrieved_byte_identical_and_streamed(
    api: Any, stored: Callable[..., None], ct_series: Callable[[int], list[Path]]
) -> None:
    # given: a study of three instances
    files = ct_series(3)
    stored(*files)
    # when
    response = api.get(study_url(files[0]), HTTP_ACCEPT=DICOMWEB_CLIENT_ACCEPT)
    # then: streamed multipart/related with a quoted boundary, one part per instance in instance order
    assert response.status_code == 200
    assert response.streaming
    media_type = MediaType.parse(response["Content-Type"])
    assert media_type.params["type"] == "application/dicom"
    assert f'boundary="{media_type.params["boundary"]}"' in response["Content-Type"]
    parts = multipart_parts(response)
    assert [sha256(data) for _, data in parts] == [sha256(file.read_bytes()) for file in files]
    stored_files = {
        instance.sha256: default_storage.open(instance.file, "rb").read() for instance in Instance.objects.all()
    }
    assert all(sha256(stored_files[sha256(data)]) == sha256(data) for _, data in parts)
    assert {headers["Content-Type"] for headers, _ in parts} == {f"application/dicom; transfer-syntax={EXPLICIT_LE}"}


def test_a_series_and_an_instance_are_retrieved_byte_identical(api: Any, stored: Callable[..., None]) -> None:
    # given: two studies, one a multi-frame JPEG 2000 instance
    stored(CT, MULTIFRAME_J2K)
    # when
    series = api.get(series_url(MULTIFRAME_J2K))
    instance = api.get(instance_url(CT))
    # then
    (headers, data), *others = multipart_parts(series)
    assert not others
    assert data == dicom_path(MULTIFRAME_J2K).read_bytes()
    assert headers["Content-Type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"
    assert [data for _, data in multipart_parts(instance)] == [dicom_path(CT).read_bytes()]


@pytest.mark.parametrize(
    "accept",
    [
        DICOMWEB_CLIENT_ACCEPT,
        'multipart/related; type="application/dicom"',
        "multipart/related; type=application/dicom",
        f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}',
        "multipart/related",
        'multipart/related; type="*/*"',
        "*/*",
        None,
        'application/dicom, multipart/related; type="application/dicom"; q=0.5',
    ],
)
def test_retrieve_accepts_what_the_standard_and_clients_send(
    api: Any, stored: Callable[..., None], accept: str | None
) -> None:
    # given
    stored(CT)
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    # when
    response = api.get(instance_url(CT), **headers)
    # then
    assert response.status_code == 200, response.content
    assert [data for _, data in multipart_parts(response)] == [dicom_path(CT).read_bytes()]


@pytest.mark.parametrize(
    "accept",
    [
        "application/dicom",  # a single part: not a PS3.18 retrieve media type
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',  # transcoding
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2',
        "application/dicom+json",
        'multipart/related; type="application/octet-stream"',
        "image/jpeg",
        "*/*; q=0",
        "text/html",
    ],
)
def test_retrieve_answers_406_to_what_it_cannot_produce(api: Any, stored: Callable[..., None], accept: str) -> None:
    # given
    stored(CT)
    # when
    for url in (study_url(CT), series_url(CT), instance_url(CT)):
        response = api.get(url, HTTP_ACCEPT=accept)
        # then
        assert_error(response, 406, "not_acceptable")
    assert not PhiAccess.objects.exists()


def test_an_explicit_transfer_syntax_needs_every_instance_stored_in_it(api: Any, stored: Callable[..., None]) -> None:
    # given: one series in JPEG 2000
    stored(MULTIFRAME_J2K)
    # when
    stored_syntax = api.get(
        series_url(MULTIFRAME_J2K),
        HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
    )
    other_syntax = api.get(
        series_url(MULTIFRAME_J2K),
        HTTP_ACCEPT=f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}',
    )
    # then: the stored syntax is served, another one is not transcoded
    assert stored_syntax.status_code == 200
    assert_error(other_syntax, 406, "not_acceptable")


def test_retrieve_and_metadata_of_a_series_take_the_same_queries_for_2_and_12_instances(
    api: Any, org: Any, stored: Callable[..., None], ct_series: Callable[[int], list[Path]], tmp_path: Path
) -> None:
    # given: a series of 2 and another of 12 instances (separate studies)
    small = ct_series(2)
    stored(*small)
    large = []
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(12):
        ds = read(CT)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = tmp_path / f"large-{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        large.append(path)
    stored(*large)
    counts = {}
    for name, files in (("small", small), ("large", large)):
        for what in ("", "/metadata"):
            # when
            with CaptureQueriesContext(connection) as queries:
                response = api.get(series_url(files[0]) + what)
                body = body_of(response)
            # then
            assert response.status_code == 200
            assert body
            counts[(name, what)] = len(queries)
    assert counts[("small", "")] == counts[("large", "")] <= 12
    assert counts[("small", "/metadata")] == counts[("large", "/metadata")] <= 12


# --- metadata -----------------------------------------------------------------------------------


def test_metadata_has_absolute_fetchable_bulk_data_uris_and_the_stored_transfer_syntax(
    api: Any, stored: Callable[..., None]
) -> None:
    # given
    stored(CT, MULTIFRAME_J2K)
    ct = read(CT)
    for url, expected_syntax in ((study_url(CT), EXPLICIT_LE), (series_url(CT), EXPLICIT_LE)):
        # when
        response = api.get(url + "/metadata", HTTP_ACCEPT="application/dicom+json")
        # then
        assert response.status_code == 200
        assert response["Content-Type"] == "application/dicom+json"
        (metadata,) = response.json()
        assert metadata["00083002"] == {"vr": "UI", "Value": [expected_syntax]}
        assert metadata["00080018"]["Value"] == [ct.SOPInstanceUID]
        assert metadata["00100010"]["Value"] == [{"Alphabetic": str(ct.PatientName)}]
        uri = metadata["7FE00010"]["BulkDataURI"]
        assert uri == f"http://testserver{instance_url(CT)}/bulk/7FE00010"
        assert "InlineBinary" not in metadata["7FE00010"]
        # and the URI serves that element's bytes
        bulk = api.get(uri.removeprefix("http://testserver"), HTTP_ACCEPT="application/octet-stream")
        assert bulk.status_code == 200
        assert bulk.content == ct.PixelData
    (j2k,) = api.get(instance_url(MULTIFRAME_J2K) + "/metadata").json()
    assert j2k["00083002"]["Value"] == ["1.2.840.10008.1.2.4.90"]


def test_metadata_rewrites_bulk_data_uris_inside_sequences(api: Any, stored: Callable[..., None]) -> None:
    # given: an ECG whose WaveformData lives in WaveformSequence items
    stored(ECG)
    ecg = read(ECG)
    # when
    (metadata,) = api.get(instance_url(ECG) + "/metadata").json()
    # then
    items = metadata["54000100"]["Value"]
    assert len(items) == len(ecg.WaveformSequence) == 2
    for number, item in enumerate(items, start=1):
        uri = item["54001010"]["BulkDataURI"]
        assert uri == f"http://testserver{instance_url(ECG)}/bulk/54000100.{number}.54001010"
        parts = multipart_parts(api.get(uri.removeprefix("http://testserver")))
        assert [data for _, data in parts] == [ecg.WaveformSequence[number - 1].WaveformData]


def test_metadata_is_read_from_the_index_without_opening_files(
    api: Any, stored: Callable[..., None], ct_series: Callable[[int], list[Path]]
) -> None:
    # given: a stored series whose files are then gone from storage
    files = ct_series(3)
    stored(*files)
    for instance in Instance.objects.all():
        default_storage.delete(instance.file)
    # when
    response = api.get(series_url(files[0]) + "/metadata")
    # then
    assert response.status_code == 200
    assert [item["00200013"]["Value"] for item in response.json()] == [[1], [2], [3]]


def test_metadata_honours_x_forwarded_headers_only_behind_a_trusted_proxy(
    api: Any, stored: Callable[..., None]
) -> None:
    # given
    stored(CT)
    forwarded = {"HTTP_X_FORWARDED_HOST": "pacs.example.org", "HTTP_X_FORWARDED_PROTO": "https"}
    # when: behind a trusted proxy (TRUSTED_PROXY sets these two settings)
    with override_settings(
        USE_X_FORWARDED_HOST=True,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        ALLOWED_HOSTS=["pacs.example.org", "testserver"],
    ):
        behind = api.get(instance_url(CT) + "/metadata", **forwarded).json()[0]
    direct = api.get(instance_url(CT) + "/metadata", **forwarded).json()[0]
    # then
    assert behind["7FE00010"]["BulkDataURI"] == f"https://pacs.example.org{instance_url(CT)}/bulk/7FE00010"
    assert direct["7FE00010"]["BulkDataURI"] == f"http://testserver{instance_url(CT)}/bulk/7FE00010"


@pytest.mark.parametrize(
    "accept", ['multipart/related; type="application/dicom+xml"', "application/dicom", "text/html"]
)
def test_metadata_answers_406_to_other_media_types(api: Any, stored: Callable[..., None], accept: str) -> None:
    # given
    stored(CT)
    # when
    response = api.get(instance_url(CT) + "/metadata", HTTP_ACCEPT=accept)
    # then
    assert_error(response, 406, "not_acceptable")


# --- frames -------------------------------------------------------------------------------------


def test_frames_are_the_native_pixel_bytes_with_content_locations(api: Any, stored: Callable[..., None]) -> None:
    # given: a 10-frame MR
    stored(MULTIFRAME)
    pixels = read(MULTIFRAME).pixel_array
    # when
    response = api.get(instance_url(MULTIFRAME) + "/frames/3,1,10", HTTP_ACCEPT=OHIF_FRAMES_ACCEPT)
    # then
    assert response.status_code == 200
    assert MediaType.parse(response["Content-Type"]).params["type"] == "application/octet-stream"
    parts = multipart_parts(response)
    assert [data for _, data in parts] == [pixels[n - 1].astype("<u2").tobytes() for n in (3, 1, 10)]
    assert [headers["Content-Location"] for headers, _ in parts] == [
        f"http://testserver{instance_url(MULTIFRAME)}/frames/{n}" for n in (3, 1, 10)
    ]
    assert {headers["Content-Type"] for headers, _ in parts} == {
        f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    }


@pytest.mark.parametrize("compressed", [MULTIFRAME_J2K, MULTIFRAME_RLE])
def test_compressed_frames_are_decoded_to_the_uncompressed_pixels(
    api: Any, stored: Callable[..., None], compressed: str
) -> None:
    # given: the same MR stored compressed (lossless)
    stored(compressed)
    pixels = read(MULTIFRAME).pixel_array
    assert np.array_equal(read(compressed).pixel_array, pixels)
    # when
    response = api.get(instance_url(compressed) + "/frames/1,5")
    # then
    assert [data for _, data in multipart_parts(response)] == [pixels[n - 1].astype("<u2").tobytes() for n in (1, 5)]


def test_one_frame_as_a_single_octet_stream_part(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(CT)
    # when
    response = api.get(instance_url(CT) + "/frames/1", HTTP_ACCEPT="application/octet-stream")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/octet-stream")
    assert response.content == read(CT).PixelData


@pytest.mark.parametrize(
    ("frames", "accept"),
    [
        ("1,2", "application/octet-stream"),  # several frames need multipart
        ("1", "image/jls"),
        ("1", 'multipart/related; type="image/jls"'),  # stored as JPEG 2000
        ("1", 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.91'),
        ("1", 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.90'),
        ("1", 'multipart/related; type="application/dicom"'),
        ("1", "image/jpeg"),
    ],
)
def test_frames_answer_406_to_compressed_or_other_media_types(
    api: Any, stored: Callable[..., None], frames: str, accept: str
) -> None:
    # given
    stored(MULTIFRAME_J2K)
    # when
    response = api.get(instance_url(MULTIFRAME_J2K) + f"/frames/{frames}", HTTP_ACCEPT=accept)
    # then
    assert_error(response, 406, "not_acceptable")


@pytest.mark.parametrize(
    ("compressed", "accept"),
    [
        (MULTIFRAME_J2K, 'multipart/related; type="image/jp2"'),
        (MULTIFRAME_J2K, 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90'),
        (MULTIFRAME_RLE, 'multipart/related; type="image/dicom-rle"; transfer-syntax=*'),
    ],
)
def test_compressed_frames_are_served_as_stored_when_their_media_type_is_asked(
    api: Any, stored: Callable[..., None], compressed: str, accept: str
) -> None:
    # given
    stored(compressed)
    syntax = str(read(compressed).file_meta.TransferSyntaxUID)
    # when
    response = api.get(instance_url(compressed) + "/frames/2,9", HTTP_ACCEPT=accept)
    # then: each part is that frame's stored bitstream, which decodes to the frame's pixels
    parts = multipart_parts(response)
    media_type = MediaType.parse(accept).params["type"]
    assert {headers["Content-Type"] for headers, _ in parts} == {f"{media_type}; transfer-syntax={syntax}"}
    pixels = read(MULTIFRAME).pixel_array
    if compressed == MULTIFRAME_J2K:
        from openjpeg import decode

        assert [np.array_equal(decode(data), pixels[n - 1]) for (_, data), n in zip(parts, (2, 9), strict=True)] == [
            True,
            True,
        ]
    else:
        from rle import decode_pixel_data

        ds = read(compressed)
        decoded = [np.frombuffer(bytes(decode_pixel_data(data, ds)), dtype="<u2").reshape(64, 64) for _, data in parts]
        assert np.array_equal(decoded[0], pixels[1]) and np.array_equal(decoded[1], pixels[8])


def test_one_stored_frame_as_a_single_part_and_past_the_last_404(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(MULTIFRAME_J2K)
    # when
    single = api.get(instance_url(MULTIFRAME_J2K) + "/frames/10", HTTP_ACCEPT="image/jp2")
    past = api.get(instance_url(MULTIFRAME_J2K) + "/frames/11", HTTP_ACCEPT="image/jp2")
    # then
    assert single.status_code == 200
    assert single["Content-Type"] == "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"
    assert single.content.startswith(b"\xff\x4f\xff\x51")  # a JPEG 2000 codestream (SOC, SIZ)
    assert_error(past, 404, "frame_not_found")


@pytest.mark.parametrize("frames", ["0", "a", "1,,2", "1,", ",1", "-1", "1.5", "1;2", " 1"])
def test_a_malformed_frame_list_is_400(api: Any, stored: Callable[..., None], frames: str) -> None:
    # given
    stored(MULTIFRAME)
    # when
    response = api.get(instance_url(MULTIFRAME) + f"/frames/{frames}")
    # then
    assert_error(response, 400, "invalid")


def test_a_frame_past_the_last_is_404_and_pixels_of_an_rt_plan_406(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(MULTIFRAME, RT_PLAN)
    # when
    past = api.get(instance_url(MULTIFRAME) + "/frames/1,11")
    huge = api.get(instance_url(MULTIFRAME) + "/frames/9999999999")
    plan = api.get(instance_url(RT_PLAN) + "/frames/1")
    # then
    assert_error(past, 404, "frame_not_found")
    assert_error(huge, 404, "frame_not_found")
    assert "no pixel data" in assert_error(plan, 406, "not_renderable")["message"]


# --- rendered and thumbnail ---------------------------------------------------------------------


def image_of(response: Any) -> Image.Image:
    assert response.status_code == 200, response.content[:300]
    return Image.open(io.BytesIO(response.content))


def test_rendered_instance_is_a_jpeg_of_the_viewport_size(api: Any, stored: Callable[..., None]) -> None:
    # given: a 128x128 CT
    stored(CT)
    # when
    default = image_of(api.get(instance_url(CT) + "/rendered"))
    small = image_of(api.get(instance_url(CT) + "/rendered?viewport=64,64&quality=50"))
    wide = image_of(api.get(instance_url(CT) + "/rendered?viewport=256,64"))
    # then
    assert (default.format, default.size, default.mode) == ("JPEG", (128, 128), "L")
    assert small.size == (64, 64)
    assert wide.size == (64, 64)  # fit inside, aspect kept


def test_rendered_png_and_window(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(CT)
    url = instance_url(CT) + "/rendered"
    # when
    png = api.get(url, HTTP_ACCEPT="image/png")
    lung = api.get(url + "?window=-600,1500", HTTP_ACCEPT="image/png")
    bone = api.get(url + "?window=400,1800,linear", HTTP_ACCEPT="image/png")
    # then
    assert png["Content-Type"] == "image/png"
    assert image_of(png).format == "PNG"
    assert image_of(lung).tobytes() != image_of(bone).tobytes()


def test_rendered_study_series_and_rgb(api: Any, stored: Callable[..., None]) -> None:
    # given: a CT and an RGB secondary capture
    stored(CT, RGB)
    # when
    study = image_of(api.get(study_url(CT) + "/rendered"))
    series = image_of(api.get(series_url(CT) + "/rendered", HTTP_ACCEPT="image/*"))
    rgb = image_of(api.get(instance_url(RGB) + "/rendered", HTTP_ACCEPT="image/png"))
    # then
    assert study.size == series.size == (128, 128)
    assert (rgb.mode, rgb.size) == ("RGB", (100, 100))


def test_a_study_renders_its_first_instance_with_pixel_data(
    api: Any, stored: Callable[..., None], tmp_path: Path
) -> None:
    # given: an RT plan (no pixel data) filed first in the CT's study
    plan = read(RT_PLAN)
    plan.StudyInstanceUID = uids(CT)[0]
    plan.SeriesNumber = 0  # the CT's series is 1: the plan's series comes first
    plan_path = tmp_path / "plan.dcm"
    plan.save_as(plan_path, enforce_file_format=True)
    stored(plan_path, CT)
    # when
    study = api.get(study_url(CT) + "/rendered", HTTP_ACCEPT="image/png")
    instance = api.get(instance_url(CT) + "/rendered", HTTP_ACCEPT="image/png")
    # then
    assert image_of(study).tobytes() == image_of(instance).tobytes()


def test_multi_frame_rendered_is_the_first_frame_and_thumbnail_the_middle(
    api: Any, stored: Callable[..., None]
) -> None:
    # given: a 10-frame MR
    stored(MULTIFRAME)
    url = instance_url(MULTIFRAME)
    # when
    rendered = api.get(url + "/rendered", HTTP_ACCEPT="image/png")
    first = api.get(url + "/frames/1/rendered", HTTP_ACCEPT="image/png")
    thumbnail = api.get(url + "/thumbnail", HTTP_ACCEPT="image/png")
    middle = api.get(url + "/frames/5/thumbnail", HTTP_ACCEPT="image/png")
    series_thumbnail = api.get(series_url(MULTIFRAME) + "/thumbnail", HTTP_ACCEPT="image/png")
    study_thumbnail = api.get(study_url(MULTIFRAME) + "/thumbnail?viewport=32,32")
    # then
    assert rendered.content == first.content
    assert thumbnail.content == middle.content == series_thumbnail.content
    assert image_of(thumbnail).size == (128, 128)
    assert image_of(study_thumbnail).size == (32, 32)


@pytest.mark.parametrize("accept", ["image/gif", "application/pdf", "video/mp4", "application/dicom"])
def test_rendered_answers_406_to_media_types_it_cannot_produce(
    api: Any, stored: Callable[..., None], accept: str
) -> None:
    # given
    stored(CT)
    # when
    for path in ("/rendered", "/thumbnail", "/frames/1/rendered"):
        response = api.get(instance_url(CT) + path, HTTP_ACCEPT=accept)
        # then
        assert_error(response, 406, "not_acceptable")


def test_rendered_of_no_pixel_data_is_406_with_the_reason_and_bad_frames_404_or_406(
    api: Any, stored: Callable[..., None]
) -> None:
    # given
    stored(RT_PLAN, MULTIFRAME)
    # when
    plan = api.get(instance_url(RT_PLAN) + "/rendered")
    plan_study = api.get(study_url(RT_PLAN) + "/thumbnail")
    past = api.get(instance_url(MULTIFRAME) + "/frames/11/rendered")
    several = api.get(instance_url(MULTIFRAME) + "/frames/1,2/rendered")
    zero = api.get(instance_url(MULTIFRAME) + "/frames/0/rendered")
    # then
    assert "no pixel data" in assert_error(plan, 406, "not_renderable")["message"]
    assert_error(plan_study, 406, "not_renderable")
    assert_error(past, 404, "frame_not_found")
    assert_error(several, 406, "not_acceptable")
    assert_error(zero, 400, "invalid")


@pytest.mark.parametrize(
    "query",
    [
        "window=abc",
        "window=40",
        "window=40,0",
        "window=40,80,cubic",
        "window=40,80&window=50,90",
        "viewport=0,0",
        "viewport=10",
        "viewport=99999,10",
        "viewport=64,64,500,500,10,10",  # source region outside the frame
        "quality=0",
        "quality=101",
        "quality=x",
    ],
)
def test_rendered_bad_query_is_400(api: Any, stored: Callable[..., None], query: str) -> None:
    # given
    stored(CT)
    # when
    response = api.get(instance_url(CT) + f"/rendered?{query}")
    # then
    assert_error(response, 400, "invalid")


# --- bulk data ----------------------------------------------------------------------------------


def test_bulk_data_of_compressed_pixel_data_is_uncompressed(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(MULTIFRAME_J2K)
    # when
    response = api.get(instance_url(MULTIFRAME_J2K) + "/bulk/7fe00010")
    # then
    assert [data for _, data in multipart_parts(response)] == [read(MULTIFRAME).PixelData]


@pytest.mark.parametrize("tag", ["00091234", "ZZZZZZZZ", "0010", "00081140.1.00081155", "7FE00010.1.00100010"])
def test_bulk_data_of_an_absent_or_unknown_tag_is_404(api: Any, stored: Callable[..., None], tag: str) -> None:
    # given
    stored(CT)
    # when
    response = api.get(instance_url(CT) + f"/bulk/{tag}")
    # then
    assert_error(response, 404, "not_found")


def test_bulk_data_answers_406_to_other_media_types(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(CT)
    # when
    response = api.get(instance_url(CT) + "/bulk/7FE00010", HTTP_ACCEPT="video/mp4")
    # then
    assert_error(response, 406, "not_acceptable")


# --- PHI access, tenancy ------------------------------------------------------------------------

KIND_PATHS = [
    ("retrieve", "study", ""),
    ("retrieve", "series", ""),
    ("retrieve", "instance", ""),
    ("metadata", "study", "/metadata"),
    ("metadata", "series", "/metadata"),
    ("metadata", "instance", "/metadata"),
    ("frames", "instance", "/frames/1,2,3"),
    ("rendered", "study", "/rendered"),
    ("rendered", "series", "/rendered"),
    ("rendered", "instance", "/rendered"),
    ("rendered", "instance", "/frames/2/rendered"),
    ("thumbnail", "study", "/thumbnail"),
    ("thumbnail", "series", "/thumbnail"),
    ("thumbnail", "instance", "/thumbnail"),
    ("thumbnail", "instance", "/frames/2/thumbnail"),
    ("bulkdata", "instance", "/bulk/7FE00010"),
]
LEVEL_URL = {"study": study_url, "series": series_url, "instance": instance_url}


@pytest.mark.parametrize(("kind", "level", "suffix"), KIND_PATHS)
def test_each_request_writes_one_phi_access_row_with_its_study(
    api: Any, org: Any, stored: Callable[..., None], kind: str, level: str, suffix: str
) -> None:
    # given: a 10-frame instance
    stored(MULTIFRAME)
    study_uid, series_uid, sop_uid = uids(MULTIFRAME)
    url = LEVEL_URL[level](MULTIFRAME) + suffix
    # when
    response = api.get(url)
    body_of(response)
    # then
    assert response.status_code == 200
    (access,) = PhiAccess.objects.all()
    assert (access.organization, access.kind, access.path) == (org, kind, url)
    assert access.series_instance_uid == (series_uid if level != "study" else "")
    assert access.sop_instance_uid == (sop_uid if level == "instance" else "")
    assert list(PhiAccessStudy.objects.values_list("study_instance_uid", "patient_id")) == [
        (study_uid, read(MULTIFRAME).PatientID)
    ]


def test_a_study_of_many_instances_is_one_phi_access_row(
    api: Any, stored: Callable[..., None], ct_series: Callable[[int], list[Path]]
) -> None:
    # given
    files = ct_series(4)
    stored(*files)
    # when
    body_of(api.get(study_url(files[0])))
    # then
    assert PhiAccess.objects.count() == 1
    assert PhiAccessStudy.objects.count() == 1


@pytest.mark.parametrize(("kind", "level", "suffix"), KIND_PATHS)
def test_another_organizations_uids_and_unknown_uids_are_404_and_a_finance_key_403(
    api: Any,
    other_api: Any,
    org: Any,
    api_client_for: Callable[..., Any],
    stored: Callable[..., None],
    kind: str,
    level: str,
    suffix: str,
) -> None:
    # given: acme's study
    stored(MULTIFRAME)
    url = LEVEL_URL[level](MULTIFRAME) + suffix
    finance_only = api_client_for(org, scopes=("finance",))
    unknown = url.replace(uids(MULTIFRAME)[0], "1.2.3.4")
    # when / then
    assert_error(other_api.get(url), 404, "not_found")
    assert_error(api.get(unknown), 404, "not_found")
    assert_error(finance_only.get(url), 403, "permission_denied")
    assert not PhiAccess.objects.exists()


def test_a_clinician_session_reads_metadata(
    client_for: Callable[..., Any], org: Any, stored: Callable[..., None]
) -> None:
    # given
    stored(CT)
    clinician = client_for(org, "clinician")
    # when
    response = clinician.get(instance_url(CT) + "/metadata")
    # then
    assert response.status_code == 200
    assert PhiAccess.objects.get().actor_user is not None


def test_the_accept_query_parameter_replaces_the_header(api: Any, stored: Callable[..., None]) -> None:
    # given
    stored(CT)
    url = instance_url(CT)
    # when
    png = api.get(url + "/rendered?accept=image/png", HTTP_ACCEPT="image/jpeg")
    any_image = api.get(url + "/rendered", HTTP_ACCEPT="image/")  # as dicomweb-client writes "any image"
    video = api.get(url + "/bulk/7FE00010?accept=video/mp4")  # as OHIF appends to a BulkDataURI
    retrieve = api.get(url + "?accept=application/dicom", HTTP_ACCEPT="*/*")
    # then
    assert image_of(png).format == "PNG"
    assert image_of(any_image).format == "JPEG"
    assert_error(video, 406, "not_acceptable")
    assert_error(retrieve, 406, "not_acceptable")


# --- a real client ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_retrieves_from_a_live_server(
    live_server: Any, org: Any, make_api_key: Callable[..., str], stored: Callable[..., None]
) -> None:
    # given: dicomweb-client (from the package registry) against the running server
    from dicomweb_client.api import DICOMwebClient

    stored(CT, MULTIFRAME_J2K)
    session = requests.Session()
    # No keep-alive: a live-server thread still holding a connection after the test ends would
    # close the shared in-memory SQLite connection from the wrong thread.
    session.headers["Connection"] = "close"
    client = DICOMwebClient(
        url=f"{live_server.url}{ROOT}",
        headers={"Authorization": f"Bearer {make_api_key(org, ('medical',))}"},
        session=session,
    )
    ct_study, ct_series, ct_sop = uids(CT)
    mr_study, mr_series, mr_sop = uids(MULTIFRAME_J2K)
    # when / then: retrieve (dicomweb-client sends type="application/dicom"; transfer-syntax=*)
    (study,) = client.retrieve_study(ct_study)
    assert study == read(CT)
    assert study.file_meta.TransferSyntaxUID == EXPLICIT_LE
    instance = client.retrieve_instance(mr_study, mr_series, mr_sop)
    assert instance.PixelData == read(MULTIFRAME_J2K).PixelData
    # metadata, and its BulkDataURI fetched by the client
    (metadata,) = client.retrieve_series_metadata(ct_study, ct_series)
    uri = metadata["7FE00010"]["BulkDataURI"]
    # dicomweb-client sends `Host: localhost` without the port (web.py sets headers["Host"] = self.host),
    # and the archive builds absolute URIs from the Host header, as it must behind a proxy
    assert uri == f"http://localhost{instance_url(CT)}/bulk/7FE00010"
    assert client.retrieve_bulkdata(uri.replace("http://localhost", live_server.url)) == [read(CT).PixelData]
    # frames of a JPEG 2000 instance, decoded
    frames = client.retrieve_instance_frames(mr_study, mr_series, mr_sop, frame_numbers=[2, 7])
    pixels = read(MULTIFRAME).pixel_array
    assert frames == [pixels[1].astype("<u2").tobytes(), pixels[6].astype("<u2").tobytes()]
    # rendered, default (JPEG) and PNG
    jpeg = client.retrieve_instance_rendered(ct_study, ct_series, ct_sop)
    png = client.retrieve_instance_rendered(ct_study, ct_series, ct_sop, media_types=("image/png",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    assert Image.open(io.BytesIO(png)).size == (128, 128)
    series_png = client.retrieve_series_rendered(mr_study, mr_series, media_types=("image/png",))
    assert Image.open(io.BytesIO(series_png)).size == (64, 64)
    session.close()


# --- a stored file lost from storage ------------------------------------------------------------


def test_a_file_lost_from_storage_is_a_410_not_a_500(
    api: Any, stored: Callable[..., None], ct_series: Callable[[int], list[Path]], caplog: Any
) -> None:
    # given: a series of two instances, the second one's file gone from storage behind its row
    files = ct_series(2)
    stored(*files)
    study, series, sop = uids(files[1])
    default_storage.delete(Instance.objects.get(sop_instance_uid=sop).file)
    instance = f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"
    # then: every single-instance read answers 410 in the error shape, and the error is logged
    for path, accept in (
        (instance, DICOMWEB_CLIENT_ACCEPT),
        (f"{instance}/frames/1", OHIF_FRAMES_ACCEPT),
        (f"{instance}/rendered", "image/jpeg"),
    ):
        response = api.get(path, HTTP_ACCEPT=accept)
        assert_error(response, 410, "instance_file_missing")
    assert "missing from storage" in caplog.text
    # a series retrieve has begun its body when it meets the lost file: it ends without the
    # closing delimiter, so a client sees a broken body, never a silently shorter series
    response = api.get(f"{ROOT}/studies/{study}/series/{series}", HTTP_ACCEPT=DICOMWEB_CLIENT_ACCEPT)
    assert response.status_code == 200
    with pytest.raises(FileNotFoundError):
        body_of(response)
    # metadata never opens a file: still answered from the index
    assert api.get(f"{instance}/metadata").status_code == 200
