"""Saliency maps (Grad-CAM heat) as pictures a clinician can read: an overlay and a blended image.

Pure numpy + Pillow, no Django: the analysis job turns each Grad-CAM heatmap (network input size,
float in [0, 1]) into

- `heatmap_resize` — the heat at the source image's rows x columns, so the overlay lines up with
  the image the viewer shows (the network saw a resized copy);
- `overlay_rgba` / `overlay_png` — a transparent colour layer the study viewer draws over the
  slice (the "saliency overlay" toggle): colour from a perceptual colour map, alpha proportional
  to the heat and zero below a small floor, so cold regions leave the image untouched;
- `blended_rgb` — the gray display image with that layer composited onto it, the pixel data of
  the secondary capture written back into the study (`structured_reports.saliency_secondary_capture`)
  for viewers that cannot draw an overlay.

The colour map is inferno (van der Walt & Smith's perceptually uniform map, CC0), sampled at 17
evenly spaced points and linearly interpolated; it stays within 7/255 of the 256-entry table, and
keeps the dependency list free of matplotlib. Inferno rather than jet/turbo: its lightness rises
monotonically with heat, so "brighter means the model looked harder" reads correctly in print,
on a gray-scale monitor and for colour-blind readers.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Inferno at t = 0, 1/16, ..., 1 (RGB in 0..1), from the published 256-entry table.
_INFERNO_ANCHORS = np.array(
    [
        (0.0015, 0.0005, 0.0139),
        (0.0423, 0.0281, 0.1411),
        (0.1293, 0.0473, 0.2908),
        (0.2383, 0.0366, 0.3964),
        (0.3415, 0.0623, 0.4294),
        (0.4412, 0.0993, 0.4316),
        (0.5409, 0.1347, 0.4151),
        (0.6401, 0.1714, 0.3811),
        (0.7357, 0.2159, 0.3302),
        (0.8173, 0.2710, 0.2704),
        (0.8903, 0.3480, 0.1983),
        (0.9443, 0.4428, 0.1204),
        (0.9771, 0.5508, 0.0391),
        (0.9879, 0.6677, 0.0583),
        (0.9761, 0.7900, 0.1960),
        (0.9487, 0.9105, 0.3953),
        (0.9884, 0.9984, 0.6449),
    ],
    dtype=np.float64,
)
_ANCHOR_POSITIONS = np.linspace(0.0, 1.0, len(_INFERNO_ANCHORS))

# Heat below this is drawn fully transparent: Grad-CAM leaves a faint haze over most of the image
# after upsampling, and tinting all of it would hide the anatomy the overlay is meant to point at.
HEAT_FLOOR = 0.05
# Opacity at full heat. Below 1 so the hottest region still shows the anatomy under it: the
# clinician has to see *what* the model looked at, not only *where*.
MAX_OPACITY = 0.6
PNG_COMPRESS_LEVEL = 1


def _clean(heatmap: np.ndarray) -> np.ndarray:
    """The heat as float32 in [0, 1]; NaN or infinite values (a degenerate Grad-CAM) become 0."""
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"a heatmap is 2-D, got shape {heat.shape}")
    heat = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(heat, 0.0, 1.0)


def heatmap_resize(heatmap: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The heatmap resampled (bilinear) to `rows` x `columns`, float32 in [0, 1].

    Bilinear, not nearest: Grad-CAM is computed on a coarse feature grid and is smooth by nature;
    blocky upsampling would suggest a precision the method does not have.
    """
    if rows < 1 or columns < 1:
        raise ValueError(f"rows and columns must be positive, got {rows}x{columns}")
    heat = _clean(heatmap)
    if heat.shape == (rows, columns):
        return heat.copy()
    resized = Image.fromarray(heat, mode="F").resize((columns, rows), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def heat_colours(heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each heat value's colour on the inferno map."""
    heat = _clean(heatmap)
    channels = [np.interp(heat, _ANCHOR_POSITIONS, _INFERNO_ANCHORS[:, k]) for k in range(3)]
    return np.rint(np.stack(channels, axis=-1) * 255.0).astype(np.uint8)


def heat_opacity(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, MAX_OPACITY]: proportional to the heat, zero below `HEAT_FLOOR`."""
    heat = _clean(heatmap)
    return np.where(heat >= HEAT_FLOOR, heat * MAX_OPACITY, 0.0).astype(np.float32)


def overlay_rgba(heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8: the colour-mapped heat with alpha proportional to it (0 where cold)."""
    alpha = np.rint(heat_opacity(heatmap) * 255.0).astype(np.uint8)
    return np.concatenate([heat_colours(heatmap), alpha[..., None]], axis=-1)


def overlay_png(heatmap: np.ndarray) -> bytes:
    """`overlay_rgba` encoded as a PNG (RGBA, straight alpha), what the viewer's overlay fetches."""
    buffer = io.BytesIO()
    Image.fromarray(overlay_rgba(heatmap), mode="RGBA").save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def blended_rgb(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the gray display image with the colour-mapped heat alpha-blended onto it.

    Args:
        image: the display image, uint8 (H, W) — windowed as the viewer shows it, e.g. from
            `apps.medical.rendering`.
        heatmap: the heat in [0, 1]; resampled to (H, W) when its shape differs.

    Returns:
        The same composite a viewer shows with the overlay on: where the heat is below the floor
        the pixels are exactly the gray image.
    """
    gray = np.asarray(image)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"the display image is uint8 (H, W), got {gray.dtype} {gray.shape}")
    heat = heatmap_resize(heatmap, *gray.shape)
    opacity = heat_opacity(heat)[..., None]
    base = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    blended = base * (1.0 - opacity) + heat_colours(heat).astype(np.float32) * opacity
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
