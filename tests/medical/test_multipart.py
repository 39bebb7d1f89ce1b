"""apps.medical.multipart: the streaming multipart/related reader on bodies that arrive in tiny
reads (a boundary split across reads is still found), every framing real clients send, the
malformed bodies, and the streaming writer read back by the reader and by the stdlib parser."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
from pathlib import Path
from typing import IO, cast

import pytest

from apps.medical import multipart
from apps.medical.multipart import (
    MediaType,
    MultipartError,
    multipart_parts,
    multipart_stream,
    new_boundary,
    request_boundary,
)
from tests.medical.conftest import CT, MR, dicom_path


class TrickleStream(io.RawIOBase):
    """A body that comes `size` bytes per read() whatever was asked (a slow, chunked client)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = memoryview(data)
        self.size = size
        self.position = 0
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        self.reads += 1
        want = self.size if n is None or n < 0 else min(n, self.size)
        chunk = bytes(self.data[self.position : self.position + want])
        self.position += len(chunk)
        return chunk


def _io(stream: TrickleStream) -> IO[bytes]:
    return cast(IO[bytes], stream)


def _body(
    payloads: list[bytes], boundary: bytes = b"b0undary", headers: bytes = b"Content-Type: application/dicom\r\n\r\n"
) -> bytes:
    out = bytearray(b"\r\n")
    for payload in payloads:
        out += b"--" + boundary + b"\r\n" + headers + payload + b"\r\n"
    return bytes(out + b"--" + boundary + b"--\r\n")


def _read(data: bytes, folder: Path, *, size: int = 1 << 20, boundary: bytes = b"b0undary") -> list[bytes]:
    return [part.path.read_bytes() for part in multipart_parts(_io(TrickleStream(data, size)), boundary, folder)]


@pytest.mark.parametrize("size", [1, 7, 64, 1000, 1 << 20])
def test_parts_are_found_whatever_the_read_size(tmp_path: Path, size: int) -> None:
    # given: two real instances (boundaries fall across reads at every read size)
    ct, mr = dicom_path(CT).read_bytes(), dicom_path(MR).read_bytes()
    stream = TrickleStream(_body([ct, mr]), size)

    # when
    parts = list(multipart_parts(_io(stream), b"b0undary", tmp_path))

    # then: byte-identical, with their sha256 and size
    assert [part.path.read_bytes() for part in parts] == [ct, mr]
    assert [part.sha256 for part in parts] == [hashlib.sha256(ct).hexdigest(), hashlib.sha256(mr).hexdigest()]
    assert [part.size for part in parts] == [len(ct), len(mr)]
    assert all(part.content_type.value == "application/dicom" for part in parts)
    if size == 1:
        assert stream.reads > len(ct) + len(mr)  # really one byte at a time


@pytest.mark.parametrize("size", [1, 7, 64])
def test_a_payload_ending_in_a_partial_delimiter_is_kept_whole(tmp_path: Path, size: int) -> None:
    # given: payloads that end with (or hold) prefixes of the delimiter "\r\n--b0undary"
    payloads = [b"abc\r\n--b0und", b"\r\n--b0undar", b"x\r\n-", b"--b0undary", b"\r\n", b""]

    # when / then
    assert _read(_body(payloads), tmp_path, size=size) == payloads


@pytest.mark.parametrize("size", [1, 7, 64])
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"--b\r\n\r\nA\r\n--b--", [b"A"]),  # no preamble, no epilogue, no headers
        (b"\r\n--b\r\n\r\nA\r\n--b--\r\n", [b"A"]),
        (b"preamble text\r\n--b\r\n\r\nA\r\n--b--\r\nepilogue\r\n--b\r\n\r\nnot a part\r\n", [b"A"]),
        (b"--b \t \r\n\r\nA\r\n--b\t\r\n\r\nB\r\n--b--  \r\n", [b"A", b"B"]),  # transport padding
        (b"--b\nContent-Type: application/dicom\n\nA\r\n--b--", [b"A"]),  # LF-only line ends in the headers
        (b"--b\r\n\nA\r\n--b--", [b"A"]),  # a bare LF as the empty header block
        (b"--b\r\nContent-Type: application/dicom\r\nX-A: 1\r\n\r\n\r\nA\r\n\r\n--b--", [b"\r\nA\r\n"]),
    ],
    ids=["bare", "crlf-around", "preamble-epilogue", "padding", "lf-headers", "lf-empty-headers", "crlf-in-payload"],
)
def test_framings(tmp_path: Path, size: int, data: bytes, expected: list[bytes]) -> None:
    assert _read(data, tmp_path, size=size, boundary=b"b") == expected


def test_part_headers_are_parsed_with_their_parameters(tmp_path: Path) -> None:
    # given
    data = (
        b"--b\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90\r\nContent-ID: <a>\r\n\r\nA"
        b'\r\n--b\r\ncontent-type:Application/DICOM;Transfer-Syntax="1.2.840.10008.1.2.1"\r\n\r\nB'
        b"\r\n--b\r\n\r\nC\r\n--b--"
    )

    # when
    parts = list(multipart_parts(io.BytesIO(data), b"b", tmp_path))

    # then: a part without headers is application/dicom (RFC 2387 type= default of STOW)
    assert [part.content_type for part in parts] == [
        MediaType("application/dicom", {"transfer-syntax": "1.2.840.10008.1.2.4.90"}),
        MediaType("application/dicom", {"transfer-syntax": "1.2.840.10008.1.2.1"}),
        MediaType("application/dicom", {}),
    ]


@pytest.mark.parametrize("size", [1, 64, 1 << 20])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no boundary here at all",
        b"--other\r\n\r\nA\r\n--other--",
        b"--b\r\n\r\nA",  # truncated: no closing boundary
        b"--b\r\n\r\nA\r\n--b",  # truncated right after a delimiter
        b"--b\r\nContent-Type: application/dicom\r\n",  # the headers never end
        b"--b\r\n\r\nA\r\n--bxx",  # not a delimiter line: the part never ends
        b"--b\r\n\r\nA\r\n--bxx\r\n\r\nB\r\n--b--",  # a longer boundary starting with ours
        b"--bx\r\n\r\nA\r\n--b--",
    ],
    ids=[
        "empty",
        "no-boundary",
        "other-boundary",
        "truncated",
        "truncated-after-delimiter",
        "no-header-end",
        "bad-line",
        "longer-boundary",
        "longer-first-boundary",
    ],
)
def test_malformed_bodies_raise_multipart_error(tmp_path: Path, size: int, data: bytes) -> None:
    with pytest.raises(MultipartError):
        _read(data, tmp_path, size=size, boundary=b"b")


def test_endless_headers_are_refused_without_reading_the_whole_body(tmp_path: Path) -> None:
    # given: a header block that never ends, far longer than a header may be
    data = b"--b\r\n" + b"X-Padding: " + b"a" * (10 * multipart.MAX_HEADER_BYTES)
    stream = TrickleStream(data, 4096)

    # when / then
    with pytest.raises(MultipartError):
        list(multipart_parts(_io(stream), b"b", tmp_path))
    assert stream.position < 2 * multipart.MAX_HEADER_BYTES + 8192


def test_parts_are_streamed_to_disk_not_held_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a 3 MB part read 64 KB at a time
    monkeypatch.setattr(multipart, "READ_CHUNK_BYTES", 65536)
    payload = bytes(range(256)) * (3 * 4096)
    stream = TrickleStream(_body([payload]), 65536)
    reader = multipart._Reader(_io(stream))
    biggest = 0
    original = reader._fill

    def fill() -> bool:
        nonlocal biggest
        biggest = max(biggest, len(reader.buffer))
        return original()

    monkeypatch.setattr(reader, "_fill", fill)
    monkeypatch.setattr(multipart, "_Reader", lambda _stream: reader)

    # when
    (part,) = list(multipart_parts(_io(stream), b"b0undary", tmp_path))

    # then: the part is on disk, and the buffer never held more than about two reads
    assert part.path.read_bytes() == payload
    assert biggest < 3 * 65536


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ('multipart/related; type="application/dicom"; boundary=abc', b"abc"),
        ('multipart/related; type="application/dicom"; boundary="a b:c=d"', b"a b:c=d"),
        ("multipart/related;boundary=abc;type=application/dicom", b"abc"),
        ("MULTIPART/RELATED; BOUNDARY=AbC", b"AbC"),  # the name is case-insensitive, the value is not
    ],
)
def test_request_boundary(header: str, boundary: bytes) -> None:
    found, media_type = request_boundary(header)
    assert found == boundary
    assert media_type.value == "multipart/related"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "application/dicom",
        "multipart/form-data; boundary=abc",
        "multipart/related",
        'multipart/related; type="application/dicom"',
        "multipart/related; boundary=",
        "multipart/related; boundary=" + "x" * 201,
    ],
)
def test_request_boundary_refuses(header: str) -> None:
    with pytest.raises(MultipartError):
        request_boundary(header)


def test_the_writer_is_read_back_by_the_reader_and_by_the_stdlib(tmp_path: Path) -> None:
    # given: two instances written as a WADO-RS answer would be
    ct, mr = dicom_path(CT).read_bytes(), dicom_path(MR).read_bytes()
    boundary = new_boundary()
    headers = {"Content-Type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"}
    chunks = list(multipart_stream([(headers, [ct[:1000], ct[1000:]]), (headers, iter([mr]))], boundary))
    body = b"".join(chunks)

    # when: read back by this module, a byte at a time, and by Python's email parser
    ours = _read(body, tmp_path, size=7, boundary=boundary.encode())
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f'Content-Type: multipart/related; type="application/dicom"; boundary="{boundary}"\r\n\r\n'.encode() + body
    )
    theirs = [part.get_payload(decode=True) for part in message.iter_parts()]

    # then
    assert ours == [ct, mr]
    assert theirs == [ct, mr]
    assert len(chunks) > 4  # streamed part by part, not joined
