"""Pixel data for WADO-RS: native frame bytes (`/frames`) and rendered images (`/rendered`, `/thumbnail`).

Pure functions over a pydicom `Dataset` (no Django, no ORM), so the DICOMweb views stay thin: they
parse the request with `parse_render_query`, call `native_frame_bytes` or `render_frame`, and map
the two exceptions once:

- `NotRenderable` — the instance has no pixel data, its pixel data is shorter than its attributes
  say, or it is compressed in a transfer syntax no installed decoder handles (a 406 for a retrieve
  whose Accept the archive cannot satisfy, as PS3.18 puts it).
- `FrameOutOfRange` — a requested frame number is not in 1..NumberOfFrames (PS3.18 lets the
  origin server answer 400 or 404). It is deliberately *not* a `NotRenderable`, so a
  view cannot turn it into a 406 by catching the wrong class first.

Decoding: native transfer syntaxes are sliced directly from PixelData (bit-exact, no decode);
encapsulated ones go through pydicom's pixel decoders, which here use pylibjpeg (+ -libjpeg,
-openjpeg, -rle) and Pillow. Which transfer syntaxes decode is whatever pydicom reports at call
time, so installing or removing a plugin changes the answer without a code change.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, convert_color_space
from pydicom.pixels.decoders.base import Decoder, get_decoder
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

# Typical CT window settings (center, width) in Hounsfield units, as radiology teaching material
# and viewers (OHIF, Horos, RadiAnt) ship them: lung -600/1500, mediastinum 50/350, bone
# 400/1800 (some sites use 300/1500 or 500/2000), brain 40/80. They only make sense for pixel
# values in HU, i.e. after the modality LUT of a CT image.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600, 1500),
    "mediastinum": (50, 350),
    "bone": (400, 1800),
    "brain": (40, 80),
}

SUPPORTED_MEDIA_TYPES = ("image/jpeg", "image/png")
VOI_FUNCTIONS = ("linear", "linear-exact", "sigmoid")
THUMBNAIL_VIEWPORT = (128, 128)
DEFAULT_JPEG_QUALITY = 90
# A viewport is an output allocation chosen by the client; cap it so one request cannot ask for
# a multi-gigabyte canvas.
MAX_VIEWPORT_SIDE = 4096
# zlib level 1: a 512x512 CT frame encodes in ~4 ms instead of ~13 ms at Pillow's default 6, for
# files ~20% larger; a scrolling viewer on a hospital LAN waits on latency, not bytes.
PNG_COMPRESS_LEVEL = 1

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOR_SPACES_AS_RGB = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")


class NotRenderable(Exception):
    """The pixel data cannot be produced; `reason` is a sentence fit for the response body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameOutOfRange(LookupError):
    """A requested frame number is outside 1..frame_count (PS3.18: a 400 or 404, not a 406)."""

    def __init__(self, frame_number: int, number_of_frames: int) -> None:
        self.frame_number = frame_number
        self.number_of_frames = number_of_frames
        self.reason = f"frame {frame_number} is out of range: the instance has {number_of_frames} frame(s)"
        super().__init__(self.reason)


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): center and width in modality (e.g. HU) units."""

    center: float
    width: float
    function: str = "linear"

    def __post_init__(self) -> None:
        if self.function not in VOI_FUNCTIONS:
            raise ValueError(f"window function must be one of {', '.join(VOI_FUNCTIONS)}, not {self.function!r}")
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError("window center and width must be finite numbers")
        # C.11.2.1.2.1: Window Width >= 1 for LINEAR; C.11.2.1.3: > 0 for LINEAR_EXACT and SIGMOID.
        if self.function == "linear" and self.width < 1:
            raise ValueError("window width must be at least 1 for the linear function")
        if self.width <= 0:
            raise ValueError("window width must be greater than 0")

    @classmethod
    def preset(cls, name: str) -> Window:
        """One of `WINDOW_PRESETS` as a linear window."""
        try:
            center, width = WINDOW_PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown window preset {name!r}; known: {', '.join(WINDOW_PRESETS)}")
        return cls(center=center, width=width)


@dataclass(frozen=True)
class Viewport:
    """PS3.18 `viewport=vw,vh[,sx,sy,sw,sh]`: the output box, and optionally the source region.

    The (cropped) image is scaled to fit inside vw x vh keeping its aspect ratio, up or down. A
    negative sw or sh flips the region horizontally or vertically (the region then extends left
    of sx / above sy). Pixel aspect ratio is not corrected: rows and columns are taken as square.
    """

    width: int
    height: int
    source: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        for side in (self.width, self.height):
            if not 1 <= side <= MAX_VIEWPORT_SIDE:
                raise ValueError(f"viewport width and height must be between 1 and {MAX_VIEWPORT_SIDE}")
        if self.source is not None:
            sx, sy, sw, sh = self.source
            if sx < 0 or sy < 0:
                raise ValueError("viewport sx and sy must not be negative")
            if sw == 0 or sh == 0:
                raise ValueError("viewport sw and sh must not be 0")


@dataclass(frozen=True)
class RenderParams:
    """How to render one frame: VOI window, viewport, JPEG quality and media type.

    `window` None means the instance's own VOI (first WindowCenter/WindowWidth with its
    VOILUTFunction, else its VOI LUT, else the frame's min-max). `viewport` None keeps the
    frame's size. `quality` (1..100) only affects image/jpeg; None means `DEFAULT_JPEG_QUALITY`.
    """

    window: Window | None = None
    viewport: Viewport | None = None
    quality: int | None = None
    media_type: str = "image/jpeg"

    def __post_init__(self) -> None:
        if self.media_type not in SUPPORTED_MEDIA_TYPES:
            raise ValueError(f"media type must be one of {', '.join(SUPPORTED_MEDIA_TYPES)}, not {self.media_type!r}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError("quality must be an integer from 1 to 100")


# --- query parsing --------------------------------------------------------------------------


def parse_render_query(query: Mapping[str, Any], *, media_type: str = "image/jpeg") -> RenderParams:
    """Validate the PS3.18 rendered-resource query parameters (8.3.5.1) into `RenderParams`.

    `query` is a Django QueryDict or any mapping of str to str. `window=center,width[,function]`
    (function linear | linear-exact | sigmoid, default linear), `viewport=vw,vh[,sx,sy,sw,sh]`,
    `quality=1..100`. `annotation` is accepted and ignored (nothing is burned in), as are
    parameters this module does not render (`accept`, `charset`, ...), which the view handles.
    `media_type` is what the view's Accept negotiation chose.

    Raises:
        ValueError: a value is malformed or out of range, or a parameter is given twice.
    """
    window_text = _single_value(query, "window")
    viewport_text = _single_value(query, "viewport")
    quality_text = _single_value(query, "quality")
    return RenderParams(
        window=_parse_window(window_text) if window_text is not None else None,
        viewport=_parse_viewport(viewport_text) if viewport_text is not None else None,
        quality=_parse_int(quality_text, "quality") if quality_text is not None else None,
        media_type=media_type,
    )


def _single_value(query: Mapping[str, Any], name: str) -> str | None:
    values: list[Any]
    if hasattr(query, "getlist"):
        values = list(query.getlist(name))
    elif name in query:
        raw = query[name]
        values = list(raw) if isinstance(raw, list | tuple) else [raw]
    else:
        values = []
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"query parameter {name!r} is given more than once")
    return str(values[0]).strip()


def _parse_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, not {text!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {text!r}")
    return value


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be an integer, not {text!r}")


def _parse_window(text: str) -> Window:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("window must be center,width[,function]")
    center = _parse_number(parts[0], "window center")
    width = _parse_number(parts[1], "window width")
    function = parts[2].lower() if len(parts) == 3 else "linear"
    return Window(center=center, width=width, function=function)


def _parse_viewport(text: str) -> Viewport:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 6):
        raise ValueError("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    width = _parse_int(parts[0], "viewport width")
    height = _parse_int(parts[1], "viewport height")
    source = None
    if len(parts) == 6:
        sx, sy, sw, sh = (
            _parse_int(part, f"viewport {name}") for part, name in zip(parts[2:], ["sx", "sy", "sw", "sh"], strict=True)
        )
        source = (sx, sy, sw, sh)
    return Viewport(width=width, height=height, source=source)


# --- frames -----------------------------------------------------------------------------------


def frame_count(ds: Dataset) -> int:
    """Number of frames of the instance's pixel data (1 when NumberOfFrames is absent), 0 without any."""
    if _pixel_keyword(ds) is None:
        return 0
    raw = ds.get("NumberOfFrames")
    if raw in (None, ""):
        return 1
    try:
        count = int(raw)
    except (TypeError, ValueError):
        raise NotRenderable(f"NumberOfFrames {raw!r} is not a number")
    if count < 1:
        raise NotRenderable(f"NumberOfFrames {count} is not a positive number")
    return count


def native_frame_bytes(ds: Dataset, frame_numbers: Sequence[int]) -> list[bytes]:
    """The frames (1-based, as PS3.18 numbers them) as uncompressed little-endian pixel bytes.

    What WADO-RS `/frames/{list}` returns as `application/octet-stream`, one item per requested
    frame, in the order requested. Native transfer syntaxes are sliced from PixelData without
    decoding, so the bytes are exactly the stored ones (unused high bits and all); big-endian
    files are byte-swapped per 16/32/64-bit word. With BitsAllocated 1 each frame is returned
    packed from its own first bit, padded to a whole byte. Encapsulated syntaxes are decoded
    with pydicom's decoders into the dataset's BitsAllocated and PlanarConfiguration; colour
    frames compressed as YBR in JPEG (baseline, extended) or JPEG 2000 (YBR_ICT/YBR_RCT) come
    back as RGB, as those decoders produce them — in the colour space
    `uncompressed_photometric_interpretation` names, which `/metadata` states.

    Raises:
        NotRenderable: no pixel data, truncated pixel data, or no installed decoder.
        FrameOutOfRange: a frame number is outside 1..frame_count(ds).
    """
    keyword = _require_pixel_keyword(ds)
    count = frame_count(ds)
    indices = [_frame_index(number, count) for number in frame_numbers]
    tsyntax = _transfer_syntax(ds)
    if not tsyntax.is_encapsulated:
        return _native_slices(ds, keyword, tsyntax, count, indices)
    decoder = _decoder_for(tsyntax)
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    as_rgb = _decodes_to_rgb(tsyntax)
    frames = []
    for index in indices:
        array, _ = _decode(decoder, ds, index, as_rgb=as_rgb)
        if array.ndim == 3 and planar == 1:
            array = np.moveaxis(array, -1, 0)
        frames.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return frames


def _decodes_to_rgb(tsyntax: UID) -> bool:
    # Lossy JPEG's YBR is only meaningful as the decoder's RGB (what libjpeg, DCMTK and GDCM give).
    return tsyntax in (JPEGBaseline8Bit, JPEGExtended12Bit)


def uncompressed_photometric_interpretation(photometric: str, transfer_syntax_uid: str) -> str:
    """The Photometric Interpretation of the frames `native_frame_bytes` sends for an instance
    stored with `photometric` in `transfer_syntax_uid` — what WADO-RS `/metadata` states.

    The archive serves one uncompressed representation (`/frames` and `/bulk` as
    application/octet-stream, Explicit VR Little Endian) and its metadata has to describe those
    bytes, or a viewer converts colour twice (cornerstone turns YBR_FULL_422 "to RGB" a second time,
    and reads 3 samples per pixel as the 2 that native YBR_FULL_422 has). Of the two consistent
    choices — decode into the stored colour space, or state the decoded one — the archive takes the
    second, as a decompressing archive does when it changes the transfer syntax (PS3.5 8.2.1 and
    PS3.3 C.7.6.3.1.2: the attributes describe the pixel data as encoded in the transfer syntax at
    hand; DCMTK's and GDCM's decompressors, used by Orthanc and dcm4chee's Decompressor, rewrite
    Photometric Interpretation the same way): colour fidelity is what the decoder gives, and
    re-subsampling decoded pixels into YBR_FULL_422 would lose chroma a second time. So:

    - native transfer syntaxes: the stored value (the bytes are the stored bytes);
    - JPEG Baseline / Extended with YBR_FULL or YBR_FULL_422: RGB (decoded with colour conversion);
    - any compressed syntax with YBR_ICT / YBR_RCT (JPEG 2000's component transforms, which the
      decoders always undo): RGB;
    - any other compressed syntax with YBR_FULL_422: YBR_FULL (the decoder upsamples chroma,
      3 samples per pixel);
    - otherwise the stored value.
    `AvailableTransferSyntaxUID` still names the stored syntax; a retrieve of the instance itself
    is byte-identical and keeps the stored attribute.
    """
    tsyntax = UID(transfer_syntax_uid)
    if not transfer_syntax_uid or not tsyntax.is_encapsulated:
        return photometric
    if photometric in ("YBR_ICT", "YBR_RCT"):
        return "RGB"
    if photometric in ("YBR_FULL", "YBR_FULL_422") and _decodes_to_rgb(tsyntax):
        return "RGB"
    if photometric == "YBR_FULL_422":
        return "YBR_FULL"
    return photometric


def _native_slices(ds: Dataset, keyword: str, tsyntax: UID, count: int, indices: list[int]) -> list[bytes]:
    bits_allocated = int(ds.BitsAllocated)
    samples_per_pixel = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples_per_pixel == 3 and ds.get("PhotometricInterpretation") == "YBR_FULL_422":
        # Native YBR_FULL_422 stores Y Y Cb Cr per two pixels: 2 samples a pixel (PS3.3 C.7.6.3.1.2).
        samples_per_pixel = 2
    samples = int(ds.Rows) * int(ds.Columns) * samples_per_pixel
    data = _little_endian_buffer(ds, keyword, tsyntax, bits_allocated)
    if bits_allocated == 1:
        return _bit_packed_frames(data, samples, count, indices)
    frame_length = samples * bits_allocated // 8
    if len(data) < frame_length * count:
        raise NotRenderable(
            f"pixel data holds {len(data)} bytes, fewer than the {frame_length * count} its attributes describe"
        )
    view = memoryview(data)
    return [bytes(view[index * frame_length : (index + 1) * frame_length]) for index in indices]


def _little_endian_buffer(ds: Dataset, keyword: str, tsyntax: UID, bits_allocated: int) -> bytes:
    data: bytes = ds[keyword].value
    if tsyntax.is_little_endian:
        return data
    # Explicit VR Big Endian swaps each OW/OF/OD word; OB is a byte stream and stays (PS3.5 7.3).
    vr = ds[keyword].VR
    word = {"OW": 2, "OF": 4, "OD": 8}.get(vr, 1)
    if bits_allocated > 16:
        word = bits_allocated // 8
    if word == 1:
        return data
    usable = len(data) - len(data) % word
    return np.frombuffer(data, dtype=f">u{word}", count=usable // word).astype(f"<u{word}").tobytes()


def _bit_packed_frames(data: bytes, samples: int, count: int, indices: list[int]) -> list[bytes]:
    if len(data) * 8 < samples * count:
        raise NotRenderable(f"pixel data holds {len(data) * 8} bits, fewer than the {samples * count} described")
    if samples % 8 == 0:
        frame_length = samples // 8
        return [data[index * frame_length : (index + 1) * frame_length] for index in indices]
    # Frames start mid-byte: unpack (DICOM packs the first pixel in the lowest bit) and repack each.
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return [
        np.packbits(bits[index * samples : (index + 1) * samples], bitorder="little").tobytes() for index in indices
    ]


# --- rendering --------------------------------------------------------------------------------


def render_frame(ds: Dataset, frame_number: int, params: RenderParams | None = None) -> bytes:
    """Render one frame (1-based) to an 8-bit image/jpeg or image/png.

    Grayscale: modality LUT (RescaleSlope/Intercept, or ModalityLUTSequence), then VOI (the
    requested window; else the instance's first WindowCenter/WindowWidth with VOILUTFunction;
    else its VOILUTSequence; else the frame's min-max), MONOCHROME1 inverted so that higher
    output is always brighter. Enhanced multi-frame objects take these attributes from the
    frame's functional groups. Colour: RGB and YBR_* to RGB, PALETTE COLOR through its LUT; the
    window does not apply. Then the viewport's crop, flip and fit-inside resize, and encoding.

    Raises:
        NotRenderable: see `native_frame_bytes`; also for pixel data of a kind that has no
            image (e.g. more than 3 samples per pixel).
        FrameOutOfRange: `frame_number` is outside 1..frame_count(ds).
        ValueError: the viewport's source region lies outside the frame.
    """
    params = params or RenderParams()
    _require_pixel_keyword(ds)
    index = _frame_index(frame_number, frame_count(ds))
    decoder = _decoder_for(_transfer_syntax(ds))
    array, meta = _decode(decoder, ds, index, as_rgb=True)
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", ""))
    if array.ndim == 2 and photometric != "PALETTE COLOR":
        pixels8 = _grayscale_to_8bit(array, ds, index, params.window)
        if photometric == "MONOCHROME1":
            np.subtract(255, pixels8, out=pixels8)
        image = Image.fromarray(pixels8, mode="L")
    else:
        image = Image.fromarray(_color_to_rgb8(array, ds, photometric), mode="RGB")
    image = _apply_viewport(image, params.viewport)
    return _encode(image, params)


def render_thumbnail(ds: Dataset, params: RenderParams | None = None) -> bytes:
    """`/thumbnail`: the middle frame ((n + 1) // 2, 1-based), fit inside 128x128 unless a viewport is given."""
    params = params or RenderParams()
    if params.viewport is None:
        params = replace(params, viewport=Viewport(*THUMBNAIL_VIEWPORT))
    _require_pixel_keyword(ds)
    return render_frame(ds, (frame_count(ds) + 1) // 2, params)


def apply_window(values: np.ndarray, window: Window, *, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Map stored values to 0..255 through `slope * x + intercept` then the VOI window function.

    PS3.3 C.11.2.1.2.1 (LINEAR): x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 255; else
    ((x - (c - 0.5)) / (w-1) + 0.5) * 255. Clipping the straight line is the same piecewise
    function, so rescale and window fold into one float32 multiply-add over the frame.
    C.11.2.1.3.2 (LINEAR_EXACT): ((x - c) / w + 0.5) * 255 clipped. C.11.2.1.3.1 (SIGMOID):
    255 / (1 + exp(-4 (x - c) / w)).
    """
    center, width = float(window.center), float(window.width)
    work = values.astype(np.float32)
    if window.function == "sigmoid":
        # exp(-4 (s*x + i - c) / w), folded into one multiply-add before the exp.
        gain = np.float32(-4.0 * slope / width)
        offset = np.float32(-4.0 * (intercept - center) / width)
        work *= gain
        work += offset
        np.clip(work, -80.0, 80.0, out=work)  # float32 exp overflows past ~88
        np.exp(work, out=work)
        work += 1.0
        np.divide(np.float32(255.0), work, out=work)
    else:
        if window.function == "linear":
            low, span = center - 0.5 - (width - 1) / 2, width - 1
        else:
            low, span = center - width / 2, width
        if span == 0:
            # LINEAR with width 1 is a threshold at c - 0.5.
            return np.where(values * slope + intercept > center - 0.5, 255, 0).astype(np.uint8)
        gain = np.float32(255.0 * slope / span)
        offset = np.float32(255.0 * (intercept - low) / span)
        work *= gain
        work += offset
    np.clip(work, 0.0, 255.0, out=work)
    work += 0.5  # round half up; values are non-negative, so truncation below rounds
    return work.astype(np.uint8)


def _grayscale_to_8bit(array: np.ndarray, ds: Dataset, index: int, requested: Window | None) -> np.ndarray:
    sources = _frame_attribute_sources(ds, index)
    modality_source = _first_with(sources, ("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept"))
    slope, intercept = 1.0, 0.0
    values = array
    if modality_source is not None and "ModalityLUTSequence" in modality_source:
        values = apply_modality_lut(array, modality_source)
    elif modality_source is not None:
        slope = float(modality_source.get("RescaleSlope", 1) or 1)
        intercept = float(modality_source.get("RescaleIntercept", 0) or 0)

    window = requested or _instance_window(sources)
    if window is not None:
        return apply_window(values, window, slope=slope, intercept=intercept)

    voi_source = _first_with(sources, ("VOILUTSequence",))
    if voi_source is not None:
        lut_input = values
        if slope != 1.0 or intercept != 0.0:
            # A VOI LUT is indexed by integer modality values.
            lut_input = np.rint(values.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.int32)
        try:
            mapped = apply_voi(lut_input, voi_source, index=0)
            lut_range = _lut_range(voi_source)
        except (ValueError, IndexError, AttributeError, KeyError, NotImplementedError):
            mapped = None  # a malformed LUT: fall back to the frame's min-max
        if mapped is not None:
            return _min_max_to_8bit(mapped, lut_range=lut_range)
    return _min_max_to_8bit(values, slope=slope, intercept=intercept)


def _instance_window(sources: list[Dataset]) -> Window | None:
    source = _first_with(sources, ("WindowCenter",))
    if source is None or "WindowWidth" not in source:
        return None
    center, width = _first_value(source.WindowCenter), _first_value(source.WindowWidth)
    function = str(source.get("VOILUTFunction", "LINEAR") or "LINEAR").lower().replace("_", "-")
    if function not in VOI_FUNCTIONS:
        function = "linear"
    try:
        return Window(center=float(center), width=float(width), function=function)
    except (TypeError, ValueError):
        return None  # a width of 0 or a garbled value: fall through to the next VOI source


def _first_value(value: Any) -> Any:
    # WindowCenter/WindowWidth may hold several windows; PS3.3 C.11.2.1.2 makes the first the default.
    return value[0] if isinstance(value, MultiValue | list | tuple) else value


def _lut_range(voi_source: Dataset) -> tuple[float, float]:
    """The output range of the first VOI LUT, read through pydicom so LUTData's VR and byte order are its concern."""
    entries, first_mapped, _ = voi_source.VOILUTSequence[0].LUTDescriptor
    domain = np.arange(first_mapped, first_mapped + (entries or 2**16), dtype=np.int32)
    table = apply_voi(domain, voi_source, index=0)
    return float(table.min()), float(table.max())


def _min_max_to_8bit(
    values: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    lut_range: tuple[float, float] | None = None,
) -> np.ndarray:
    if lut_range is not None:
        low, high = lut_range
    else:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size == 0:
            return np.zeros(values.shape, dtype=np.uint8)
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    # The min and max are of the stored values; map them through the (linear) rescale too.
    low_out, high_out = sorted((low * slope + intercept, high * slope + intercept))
    width = high_out - low_out
    return apply_window(
        np.nan_to_num(values) if values.dtype.kind == "f" else values,
        Window(center=low_out + width / 2, width=width, function="linear-exact"),
        slope=slope,
        intercept=intercept,
    )


def _color_to_rgb8(array: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(array, ds)
        if rgb.dtype.itemsize > 1:
            # 16-bit palette entries (LUT Descriptor bits = 16): keep the high byte.
            return (rgb >> 8).astype(np.uint8)
        return rgb.astype(np.uint8)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise NotRenderable(f"cannot render {photometric or 'pixel data'} with shape {array.shape}")
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        array = convert_color_space(array, photometric, "RGB")
    elif photometric not in _COLOR_SPACES_AS_RGB:
        raise NotRenderable(f"cannot render photometric interpretation {photometric!r}")
    if array.dtype == np.uint8:
        return array
    bits_stored = int(ds.get("BitsStored", array.dtype.itemsize * 8) or array.dtype.itemsize * 8)
    scale = np.float32(255.0 / (2**bits_stored - 1))
    scaled = array.astype(np.float32) * scale
    np.clip(scaled, 0, 255, out=scaled)
    scaled += 0.5
    return scaled.astype(np.uint8)


def _apply_viewport(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    if viewport is None:
        return image
    if viewport.source is not None:
        image = _crop_source_region(image, viewport.source)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    if scale < 1:
        # reducing_gap lets Pillow shrink by whole factors first, then LANCZOS: a 2k CR to a
        # 128 px thumbnail in a few ms with the same look.
        return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image.resize(size, Image.Resampling.BILINEAR)


def _crop_source_region(image: Image.Image, source: tuple[int, int, int, int]) -> Image.Image:
    sx, sy, sw, sh = source
    left, right = sorted((sx, sx + sw))
    top, bottom = sorted((sy, sy + sh))
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, image.width), min(bottom, image.height)
    if right <= left or bottom <= top:
        raise ValueError(f"viewport source region {source} lies outside the {image.width}x{image.height} frame")
    image = image.crop((left, top, right, bottom))
    if sw < 0:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def _encode(image: Image.Image, params: RenderParams) -> bytes:
    buffer = io.BytesIO()
    if params.media_type == "image/png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buffer, format="JPEG", quality=params.quality or DEFAULT_JPEG_QUALITY)
    return buffer.getvalue()


# --- shared -----------------------------------------------------------------------------------


def _pixel_keyword(ds: Dataset) -> str | None:
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds and ds[keyword].value:
            return keyword
    return None


def _require_pixel_keyword(ds: Dataset) -> str:
    keyword = _pixel_keyword(ds)
    if keyword is None:
        raise NotRenderable("the instance has no pixel data")
    for attribute in ("Rows", "Columns", "BitsAllocated"):
        if not ds.get(attribute):
            raise NotRenderable(f"the instance has pixel data but no {attribute}")
    return keyword


def _frame_index(frame_number: int, count: int) -> int:
    if isinstance(frame_number, bool) or not isinstance(frame_number, int | np.integer):
        raise TypeError(f"frame numbers are integers, not {frame_number!r}")
    if not 1 <= frame_number <= count:
        raise FrameOutOfRange(int(frame_number), count)
    return int(frame_number) - 1


def _transfer_syntax(ds: Dataset) -> UID:
    file_meta = getattr(ds, "file_meta", None)
    uid = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not uid:
        raise NotRenderable("the instance has no TransferSyntaxUID in its file meta information")
    return UID(str(uid))


def _decoder_for(tsyntax: UID) -> Decoder:
    label = f"{tsyntax.name} ({tsyntax})" if tsyntax.name != str(tsyntax) else str(tsyntax)
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise NotRenderable(f"no decoder exists for transfer syntax {label}")
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise NotRenderable(f"no installed decoder for transfer syntax {label}: needs {missing}")
    return decoder


def _decode(decoder: Decoder, ds: Dataset, index: int, *, as_rgb: bool) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        # pydicom 3.0 annotates **kwargs as DecodeOptions instead of Unpack[DecodeOptions].
        array, meta = decoder.as_array(ds, index=index, as_rgb=as_rgb)  # type: ignore[arg-type]
    except (ValueError, RuntimeError, TypeError, KeyError, AttributeError, OSError, NotImplementedError) as exc:
        # Decoders report corrupt or truncated data with a variety of exceptions.
        raise NotRenderable(f"the pixel data could not be decoded: {exc}")
    return array, dict(meta)


def _frame_attribute_sources(ds: Dataset, index: int) -> list[Dataset]:
    """Where a frame's pixel value transformation and VOI attributes live, most specific first.

    Enhanced multi-frame objects (PS3.3 C.7.6.16) carry them in the per-frame, then the shared,
    functional groups (Pixel Value Transformation, Frame VOI LUT macros); others at the top level.
    """
    sources: list[Dataset] = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    groups = []
    if per_frame is not None and index < len(per_frame):
        groups.append(per_frame[index])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        for sequence_keyword in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            sequence = group.get(sequence_keyword)
            if sequence:
                sources.append(sequence[0])
    sources.append(ds)
    return sources


def _first_with(sources: list[Dataset], keywords: tuple[str, ...]) -> Dataset | None:
    for source in sources:
        if any(keyword in source for keyword in keywords):
            return source
    return None
