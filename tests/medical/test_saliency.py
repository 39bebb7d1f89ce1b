"""`apps.medical.saliency`: Grad-CAM heat to an overlay (RGBA PNG) and a blended RGB image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from apps.medical.saliency import (
    HEAT_FLOOR,
    MAX_OPACITY,
    blended_rgb,
    heat_colours,
    heatmap_resize,
    overlay_png,
    overlay_rgba,
)


def gradient_heat(rows: int = 32, columns: int = 32) -> np.ndarray:
    """Heat rising from 0 (left) to 1 (right), with the left quarter exactly 0."""
    heat = np.tile(np.linspace(0.0, 1.0, columns, dtype=np.float32), (rows, 1))
    heat[:, : columns // 4] = 0.0
    return heat


def test_heatmap_resize_gives_the_image_size_in_range() -> None:
    # given
    heat = gradient_heat(32, 32)
    # when
    resized = heatmap_resize(heat, 512, 384)
    # then
    assert resized.shape == (512, 384)
    assert resized.dtype == np.float32
    assert resized.min() >= 0.0 and resized.max() <= 1.0
    assert resized[:, 0].max() == 0.0  # the cold edge stays cold
    assert resized[:, -1].min() > 0.9  # and the hot one hot


def test_heatmap_resize_cleans_out_of_range_and_nan() -> None:
    # given
    heat = np.array([[np.nan, -1.0], [2.0, np.inf]], dtype=np.float32)
    # when
    resized = heatmap_resize(heat, 2, 2)
    # then
    assert resized.tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_heatmap_resize_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="2-D"):
        heatmap_resize(np.zeros((1, 8, 8), dtype=np.float32), 8, 8)
    with pytest.raises(ValueError, match="positive"):
        heatmap_resize(np.zeros((8, 8), dtype=np.float32), 0, 8)


def test_overlay_rgba_alpha_is_proportional_to_heat_and_zero_where_cold() -> None:
    # given
    heat = gradient_heat()
    # when
    rgba = overlay_rgba(heat)
    # then
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    alpha = rgba[..., 3].astype(np.float64)
    assert np.all(alpha[heat == 0.0] == 0)
    assert np.all(alpha[heat < HEAT_FLOOR] == 0)
    warm = heat >= HEAT_FLOOR
    assert np.allclose(alpha[warm], heat[warm] * MAX_OPACITY * 255, atol=0.5)
    assert alpha.max() == round(MAX_OPACITY * 255)
    assert np.all(np.diff(alpha[0]) >= 0)  # monotone along the gradient


def test_colour_map_is_perceptually_ordered() -> None:
    """Lightness rises with heat (inferno), so brighter reads as "looked harder"."""
    # given
    heat = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :]
    # when
    rgb = heat_colours(heat)[0].astype(np.float64)
    # then
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) >= -0.5)
    assert luminance[-1] - luminance[0] > 200
    assert rgb[0].tolist() == [0.0, 0.0, 4.0] and rgb[-1].tolist() == [252.0, 255.0, 164.0]


def test_colour_map_matches_inferno_when_matplotlib_is_present() -> None:
    colormaps = pytest.importorskip("matplotlib").colormaps
    # given
    heat = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :]
    # when
    ours = heat_colours(heat)[0].astype(np.float64)
    reference = colormaps["inferno"](heat[0])[:, :3] * 255
    # then
    assert np.abs(ours - reference).max() <= 7


def test_overlay_png_round_trips() -> None:
    # given
    heat = gradient_heat(48, 40)
    # when
    png = overlay_png(heat)
    # then
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGBA" and image.size == (40, 48)
        assert np.array_equal(np.asarray(image), overlay_rgba(heat))


def test_blended_rgb_keeps_the_image_where_cold_and_tints_where_hot() -> None:
    # given
    image = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    heat = gradient_heat(16, 16)  # network size: resampled to 64x64
    # when
    blended = blended_rgb(image, heat)
    # then
    assert blended.shape == (64, 64, 3) and blended.dtype == np.uint8
    resized = heatmap_resize(heat, 64, 64)
    cold = resized < HEAT_FLOOR
    assert cold.any()
    assert np.array_equal(blended[cold], np.repeat(image[cold][:, None], 3, axis=1))
    hot = resized > 0.9
    assert hot.any()
    gray = np.repeat(image[..., None], 3, axis=-1)
    assert np.abs(blended[hot].astype(int) - gray[hot].astype(int)).max() > 20


def test_blended_rgb_refuses_a_non_uint8_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        blended_rgb(np.zeros((8, 8), dtype=np.float32), np.zeros((8, 8), dtype=np.float32))
