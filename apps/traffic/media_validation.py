"""Checking uploaded images and videos before anything is stored or run.

Images: the declared content type must be an image type (415), the size within the byte
limit (413), the header must parse as an image whose pixel count is within the limit (413),
and the whole image must decode (a truncated JPEG is refused, 400). The pixels used for
inference are decoded with `cv2.imdecode`, exactly what `cv2.imread` (and so ultralytics'
own `predict(path)`) would produce for the same file.

Videos: MP4/AVI/MOV/MKV/WebM by type or extension (415), within the byte limit (413), and
OpenCV must open them and read a first frame (400).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from apps.traffic.limits import limit
from core.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

IMAGE_CONTENT_TYPES = {"image/jpeg", "image/png", "image/bmp", "image/x-ms-bmp", "image/webp", "image/tiff"}
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}
VIDEO_CONTENT_TYPES = {
    "video/mp4",
    "video/x-msvideo",
    "video/avi",
    "video/msvideo",
    "video/quicktime",
    "video/x-matroska",
    "video/webm",
}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass(frozen=True)
class DecodedImage:
    """A validated upload: its bytes, the BGR pixels, and what it is."""

    data: bytes
    pixels: Any  # numpy array (H, W, 3), BGR
    width: int
    height: int
    suffix: str


def _content_type(upload: UploadedFile) -> str:
    return (upload.content_type or "").split(";", 1)[0].strip().lower()


def image_validate(upload: UploadedFile, *, field: str = "image") -> DecodedImage:
    """Validate an uploaded image completely; raise the matching domain error when unusable."""
    content_type = _content_type(upload)
    if content_type not in IMAGE_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Send a JPEG, PNG, BMP, WebP or TIFF image, not {content_type or 'an untyped file'}.",
            fields={field: ["Unsupported media type."]},
        )
    max_bytes = limit("TRAFFIC_MAX_IMAGE_BYTES")
    if upload.size is not None and upload.size > max_bytes:
        raise PayloadTooLarge(
            f"The image is larger than {max_bytes // (1024 * 1024)} MB.", fields={field: ["Too large."]}
        )
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The image is larger than {max_bytes} bytes.", fields={field: ["Too large."]})
    if not data:
        raise ValidationFailed("The image is empty.", code="invalid_image", fields={field: ["Empty file."]})
    max_pixels = limit("TRAFFIC_MAX_IMAGE_PIXELS")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height, image_format = image.width, image.height, image.format or ""
                if width * height > max_pixels:
                    raise PayloadTooLarge(
                        f"The image has {width * height} pixels; the limit is {max_pixels}.",
                        fields={field: ["Too many pixels."]},
                    )
                # Decodes everything, so a truncated file raises. A JPEG is decoded at 1/8 scale:
                # libjpeg still reads every scan (truncation is still caught) but skips most of
                # the IDCT work; the pixels used for inference come from cv2.imdecode below.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except PayloadTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge("The image has too many pixels.", fields={field: ["Too many pixels."]})
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(
            f"The file is not a readable image: {exc}", code="invalid_image", fields={field: ["Not a readable image."]}
        )
    if image_format not in IMAGE_FORMATS:
        raise UnsupportedMediaType(f"Image format {image_format or 'unknown'} is not supported.")
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValidationFailed(
            "OpenCV cannot decode this image.", code="invalid_image", fields={field: ["Undecodable."]}
        )
    return DecodedImage(
        data=data,
        pixels=pixels,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        suffix=IMAGE_FORMATS[image_format],
    )


@dataclass(frozen=True)
class VideoProbe:
    """What OpenCV reads from a video's header and first frame."""

    fps: float
    frame_count: int
    width: int
    height: int
    first_frame_jpeg: bytes
    suffix: str


def video_check_type(upload: UploadedFile, *, field: str = "video") -> str:
    """The upload's suffix when it is a supported video container; 415 otherwise."""
    suffix = Path(upload.name or "").suffix.lower()
    content_type = _content_type(upload)
    generic = content_type in {"", "application/octet-stream"}
    if content_type not in VIDEO_CONTENT_TYPES and not (generic and suffix in VIDEO_SUFFIXES):
        raise UnsupportedMediaType(
            f"Send an MP4, AVI, MOV, MKV or WebM video, not {content_type or 'an untyped file'}.",
            fields={field: ["Unsupported media type."]},
        )
    if upload.size is not None and upload.size > limit("TRAFFIC_MAX_VIDEO_BYTES"):
        raise PayloadTooLarge("The video is larger than the configured limit.", fields={field: ["Too large."]})
    if upload.size == 0:
        raise ValidationFailed("The video is empty.", code="invalid_video", fields={field: ["Empty file."]})
    return suffix if suffix in VIDEO_SUFFIXES else ".mp4"


def video_probe(path: Path, *, suffix: str, field: str = "video") -> VideoProbe:
    """Open the video with OpenCV and read its first frame; 400 when it does not decode."""
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise ValidationFailed(
                "The video cannot be decoded (OpenCV read no frame).",
                code="invalid_video",
                fields={field: ["Undecodable video."]},
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    if frame_count > limit("TRAFFIC_MAX_VIDEO_FRAMES"):
        raise PayloadTooLarge("The video has more frames than the configured limit.", fields={field: ["Too long."]})
    encoded, jpeg = cv2.imencode(".jpg", frame)
    return VideoProbe(
        fps=fps if 0 < fps < 1000 else 25.0,
        frame_count=max(frame_count, 0),
        width=int(frame.shape[1]),
        height=int(frame.shape[0]),
        first_frame_jpeg=jpeg.tobytes() if encoded else b"",
        suffix=suffix,
    )
