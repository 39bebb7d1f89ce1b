"""Pixel data → network input: the one preprocessing path training and inference share.

A classifier version records its `Preprocessing` (in `input_schema["preprocessing"]`); the
training loader (`apps.medical.training_data`) and the analysis job both turn a stored instance
into network inputs with `dataset_inputs(ds, preprocessing)`, so a model sees at inference
exactly what it saw in training. The steps, per frame:

1. Modality LUT: `pydicom.pixels.apply_modality_lut` (Rescale Slope/Intercept or a Modality LUT
   Sequence), so CT values are Hounsfield units and a window preset means the same on every
   scanner.
2. Window: the model's preset (`window_center`/`window_width`) when it has one, else the
   instance's own VOI window (the first value of Window Center/Width), else the frame's
   min..max. Linear (`center ± width/2` → 0..1, clipped), which is what a fixed preset needs;
   the DICOM "linear" function's half-pixel offsets do not matter to a network.
3. MONOCHROME1 (higher value = darker, e.g. many radiographs) is inverted after windowing, so
   "bright" means the same for every input.
4. Resize to `input_size` x `input_size` with PIL's bilinear filter on float32 (antialiased when
   shrinking, deterministic, no torch needed in the web or analysis process) — the aspect ratio
   is not kept: the classifiers here are trained on whole images squashed to a square, and the
   same squashing at inference keeps them consistent.
5. Normalise: `minmax` keeps the windowed 0..1 range; `zscore` centres each image on its own
   mean and standard deviation.

Refused, with `ImageUnreadable` naming why: no pixel data, colour images (Samples per Pixel > 1
or a colour photometric interpretation: the classifiers are grayscale, and converting colour
secondary captures to gray would silently accept burned-in overlays and screenshots), an
unsupported photometric interpretation, and pixel data that does not decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut

NORMALISATIONS = ("minmax", "zscore")
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
MIN_INPUT_SIZE = 16
MAX_INPUT_SIZE = 512


class ImageUnreadable(Exception):
    """An instance the classifiers cannot use; the message says why."""


@dataclass(frozen=True)
class Preprocessing:
    """How a classifier version turns a frame into its input (recorded in the version).

    Attributes:
        input_size: the square side the network sees.
        window_center, window_width: a fixed window in modality units (e.g. 40/400 for a CT
            soft-tissue preset); both None: the instance's own VOI window, else min..max.
        normalise: after windowing, "minmax" (0..1) or "zscore" (per image).
    """

    input_size: int
    window_center: float | None = None
    window_width: float | None = None
    normalise: str = "minmax"

    def __post_init__(self) -> None:
        if not MIN_INPUT_SIZE <= int(self.input_size) <= MAX_INPUT_SIZE:
            raise ValueError(f"input_size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE}.")
        if (self.window_center is None) != (self.window_width is None):
            raise ValueError("window_center and window_width go together: give both or neither.")
        if self.window_width is not None and not self.window_width > 0:
            raise ValueError("window_width must be positive.")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}.")

    def to_json(self) -> dict[str, Any]:
        return {
            "input_size": int(self.input_size),
            "window_center": self.window_center,
            "window_width": self.window_width,
            "normalise": self.normalise,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Read a recorded preprocessing back; ValueError for a malformed one."""
        try:
            center = data.get("window_center")
            width = data.get("window_width")
            return cls(
                input_size=int(data["input_size"]),
                window_center=None if center is None else float(center),
                window_width=None if width is None else float(width),
                normalise=str(data.get("normalise", "minmax")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Malformed preprocessing: {exc}") from exc


def dataset_frames(ds: pydicom.Dataset) -> list[np.ndarray]:
    """2-D float32 frames in modality units (Rescale Slope/Intercept applied; CT in HU).

    Raises:
        ImageUnreadable: no pixel data, a colour or unsupported image, or undecodable pixels.
    """
    if "PixelData" not in ds:
        raise ImageUnreadable("The instance has no pixel data (e.g. a structured report or a presentation state).")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if samples != 1 or photometric.startswith(("RGB", "YBR", "PALETTE")):
        raise ImageUnreadable(
            f"Colour image ({photometric or 'unknown'}, {samples} samples per pixel): "
            "the classifiers read grayscale only."
        )
    if photometric not in GRAYSCALE:
        raise ImageUnreadable(f"Unsupported photometric interpretation {photometric or '(missing)'}.")
    try:
        pixels = ds.pixel_array
        values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    except Exception as exc:  # pydicom raises many types for broken or unsupported pixel data
        raise ImageUnreadable(f"The pixel data could not be decoded: {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if values.ndim == 2 and frames <= 1:
        return [values]
    if values.ndim == 3:
        return [np.ascontiguousarray(frame) for frame in values]
    raise ImageUnreadable(f"Unexpected pixel array shape {values.shape}.")


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        if not len(value):
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def frame_window(frame: np.ndarray, ds: pydicom.Dataset, preprocessing: Preprocessing) -> tuple[float, float]:
    """The (lower, upper) bounds the frame is windowed to, in modality units."""
    if preprocessing.window_center is not None and preprocessing.window_width is not None:
        center, width = preprocessing.window_center, preprocessing.window_width
    else:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))  # type: ignore[assignment]
    if center is not None and width is not None and width > 0:
        return center - width / 2.0, center + width / 2.0
    return float(frame.min()), float(frame.max())


def prepare(frame: np.ndarray, ds: pydicom.Dataset, preprocessing: Preprocessing) -> np.ndarray:
    """(1, S, S) float32 network input: window, resize, normalise (no augmentation)."""
    lower, upper = frame_window(frame, ds, preprocessing)
    span = upper - lower
    if span > 0:
        windowed = np.clip((frame.astype(np.float32) - lower) / span, 0.0, 1.0)
    else:  # a constant image: nothing to see, but a defined input
        windowed = np.zeros(frame.shape, dtype=np.float32)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        windowed = 1.0 - windowed
    size = int(preprocessing.input_size)
    if windowed.shape != (size, size):
        resized = Image.fromarray(np.ascontiguousarray(windowed, dtype=np.float32)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        windowed = np.asarray(resized, dtype=np.float32)
    if preprocessing.normalise == "zscore":
        std = float(windowed.std())
        windowed = (windowed - float(windowed.mean())) / (std if std > 1e-6 else 1.0)
    return np.ascontiguousarray(windowed, dtype=np.float32)[np.newaxis, :, :]


def dataset_inputs(ds: pydicom.Dataset, preprocessing: Preprocessing) -> list[np.ndarray]:
    """`prepare` of every frame of the instance (one input per frame)."""
    return [prepare(frame, ds, preprocessing) for frame in dataset_frames(ds)]
