"""`multipart/related` (RFC 2387) as DICOMweb speaks it: a streaming reader for STOW-RS bodies and
a streaming writer for WADO-RS answers.

The reader never holds a part in memory: each part's body goes to a file in a scratch folder,
hashed on the way, so a multi-gigabyte study costs one chunk of memory. It tolerates what real
clients send: a CRLF (or any preamble) before the first boundary, transport padding after a
boundary, bytes after the closing boundary, parts without headers, quoted or unquoted
`boundary=` and `type=` parameters, and `transfer-syntax=` on a part's content type.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO

READ_CHUNK_BYTES = 1 << 20
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not a well-formed multipart/related body (a 400)."""


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type / Accept entry: `type/subtype` and its parameters (lower-case names)."""

    value: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> MediaType:
        message = Message()
        message["content-type"] = header
        value = message.get_content_type() if header.strip() else ""
        params: dict[str, str] = {}
        for name, param in message.get_params(failobj=[])[1:]:
            params[name.lower()] = str(param).strip()
        return cls(value=value.lower(), params=params)


@dataclass(frozen=True)
class ReceivedPart:
    """One part of a multipart body, written to `path` (in the caller's scratch folder)."""

    content_type: MediaType
    path: Path
    size: int
    sha256: str


def request_boundary(content_type: str) -> tuple[bytes, MediaType]:
    """The boundary of a `multipart/related` Content-Type, and the parsed type; MultipartError if absent."""
    media_type = MediaType.parse(content_type)
    if media_type.value != "multipart/related":
        raise MultipartError(f"Expected multipart/related, got {media_type.value or 'no content type'}.")
    boundary = media_type.params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise MultipartError("The multipart/related content type has no usable boundary parameter.")
    return boundary.encode("latin-1"), media_type


def multipart_parts(stream: IO[bytes], boundary: bytes, directory: Path) -> Iterator[ReceivedPart]:
    """Read `stream` part by part; yield each part once its body is complete on disk.

    Raises MultipartError when the body has no first boundary, a part's headers never end, or the
    body ends before the closing boundary.
    """
    reader = _Reader(stream)
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    if not reader.skip_past(delimiter):
        raise MultipartError("The body does not contain the boundary given in the Content-Type.")
    while True:
        ending = reader.peek(2)
        if ending == b"--":
            return  # the closing boundary; whatever follows is epilogue
        line = reader.read_line(limit=MAX_HEADER_BYTES)
        if line is None:
            raise MultipartError("A boundary line does not end.")
        if line.strip(b" \t\r\n"):
            # RFC 2046 5.1.1: only transport padding (spaces, tabs) may follow a boundary; a longer
            # boundary that starts with ours means the body does not use the boundary it declared
            raise MultipartError("A boundary line holds more than the boundary.")
        headers = reader.read_headers()
        content_type = MediaType.parse(headers.get("content-type", "application/dicom"))
        path = directory / f"part-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as out:
            for chunk in reader.read_until(separator):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        yield ReceivedPart(content_type=content_type, path=path, size=size, sha256=digest.hexdigest())


class _Reader:
    """A buffered reader over a byte stream with the three searches the parser needs."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ_CHUNK_BYTES)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def peek(self, size: int) -> bytes:
        while len(self.buffer) < size and self._fill():
            pass
        return bytes(self.buffer[:size])

    def skip_past(self, marker: bytes, *, limit: int | None = None) -> bool:
        """Drop everything up to and including the next `marker`; False if the stream ends first."""
        start = 0
        while True:
            found = self.buffer.find(marker, start)
            if found >= 0:
                del self.buffer[: found + len(marker)]
                return True
            if limit is not None and len(self.buffer) > limit:
                return False
            start = max(0, len(self.buffer) - len(marker) + 1)
            if not self._fill():
                return False

    def read_line(self, *, limit: int) -> bytes | None:
        """The bytes up to and including the next LF (consumed); None if the stream ends first or
        no LF comes within `limit` bytes."""
        start = 0
        while True:
            found = self.buffer.find(b"\n", start)
            if found >= 0:
                line = bytes(self.buffer[: found + 1])
                del self.buffer[: found + 1]
                return line
            if len(self.buffer) > limit:
                return None
            start = len(self.buffer)
            if not self._fill():
                return None

    def read_headers(self) -> dict[str, str]:
        """The part's header lines up to the blank line (lower-case names); none is fine."""
        while True:
            if self.buffer.startswith(b"\r\n") or self.buffer.startswith(b"\n"):
                del self.buffer[: 2 if self.buffer.startswith(b"\r\n") else 1]
                return {}
            crlf, lf = self.buffer.find(b"\r\n\r\n"), self.buffer.find(b"\n\n")
            ends = [(position, width) for position, width in ((crlf, 4), (lf, 2)) if position >= 0]
            if ends:
                position, width = min(ends)
                block = bytes(self.buffer[:position]).decode("latin-1")
                del self.buffer[: position + width]
                headers: dict[str, str] = {}
                for line in block.splitlines():
                    name, _, value = line.partition(":")
                    if name.strip():
                        headers[name.strip().lower()] = value.strip()
                return headers
            if len(self.buffer) > MAX_HEADER_BYTES or not self._fill():
                raise MultipartError("A part's headers do not end with a blank line.")

    def read_until(self, separator: bytes) -> Iterator[bytes]:
        """Yield the bytes before the next `separator` (consumed); MultipartError at end of stream."""
        keep = len(separator) - 1
        while True:
            found = self.buffer.find(separator)
            if found >= 0:
                if found:
                    yield bytes(self.buffer[:found])
                del self.buffer[: found + len(separator)]
                return
            if len(self.buffer) > keep:
                cut = len(self.buffer) - keep
                yield bytes(self.buffer[:cut])
                del self.buffer[:cut]
            if not self._fill():
                raise MultipartError("The body ends inside a part (no closing boundary).")


def new_boundary() -> str:
    return f"tessera-{uuid.uuid4().hex}"


def multipart_stream(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body, streamed: each part's headers, then its chunks, then the closing boundary."""
    delimiter = f"--{boundary}".encode("latin-1")
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        yield delimiter + b"\r\n" + head.encode("latin-1") + b"\r\n"
        yield from body
        yield b"\r\n"
    yield delimiter + b"--\r\n"
