from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.inference.blend import DEFAULT_FLOOR, Blender, argmax_classes, hann_window
from spectraflow.inference.grid import crop_core, reflect_pad, tile_grid

Model = Callable[[np.ndarray], np.ndarray]


def box_filter(reach: int) -> Model:
    """An exactly translation-equivariant "model": the (2·reach + 1)² mean, same-size output."""

    def model(x: np.ndarray) -> np.ndarray:
        k = 2 * reach + 1
        # The model's own border handling ('edge') differs from the tiler's reflection on purpose:
        # only a halo ≥ reach keeps it away from the cores.
        p = np.pad(x, ((0, 0), (reach, reach), (reach, reach)), mode="edge").astype(np.float64)
        out = np.zeros(x.shape, dtype=np.float64)
        for dy in range(k):
            for dx in range(k):
                out += p[:, dy : dy + x.shape[1], dx : dx + x.shape[2]]
        return (out / k**2).astype(np.float32)

    return model


def smooth_field(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.indices(shape, dtype=np.float64)
    return np.stack(
        [
            np.sin(2 * np.pi * y / 37) * np.cos(2 * np.pi * x / 53) + 0.01 * y,
            np.exp(-((y - 40) ** 2 + (x - 70) ** 2) / 900.0),
        ]
    ).astype(np.float32)


def whole_image(image: np.ndarray, model: Model, reach: int) -> np.ndarray:
    """Whole-scene inference: the image reflect-padded by the model's reach, one forward."""
    padded = np.pad(image, ((0, 0), (reach, reach), (reach, reach)), mode="reflect")
    return model(padded)[:, reach : -reach or None, reach : -reach or None]


def tiled(
    image: np.ndarray,
    model: Model,
    *,
    tile: int,
    halo: int,
    margin: int | None,
    size_multiple: int = 8,
    hann: bool = True,
) -> np.ndarray:
    """Tiled inference; margin None = core-only writing, else overlapping (Hann) writing."""
    channels, rows, cols = image.shape
    blender = Blender(channels, (rows, cols))
    for t in tile_grid((rows, cols), tile=tile, halo=halo, size_multiple=size_multiple):
        out = model(reflect_pad(image[(..., *t.read_slices)], t))
        if margin is None:
            blender.add(crop_core(out, t), t.core)
        else:
            part = crop_core(out, t, margin=margin)
            weight = hann_window(part.shape[1], part.shape[2], halo=margin) if hann else None
            blender.add(part, t.output_window(margin=margin), weight=weight)
    return blender.finalise()


@pytest.mark.parametrize("tile", [16, 32, 64])
@pytest.mark.parametrize("reach", [0, 1, 2])
def test_tiling_invariance_core_only(tile: int, reach: int) -> None:
    image = smooth_field((150, 131))
    model = box_filter(reach)
    reference = whole_image(image, model, reach)
    for halo in (reach, reach + 3):
        result = tiled(image, model, tile=tile, halo=halo, margin=None)
        np.testing.assert_allclose(result, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tile", [16, 32, 64])
@pytest.mark.parametrize("reach", [0, 1, 2])
def test_tiling_invariance_overlapping_hann(tile: int, reach: int) -> None:
    image = smooth_field((150, 131))
    model = box_filter(reach)
    reference = whole_image(image, model, reach)
    margin = 4
    result = tiled(image, model, tile=tile, halo=reach + margin, margin=margin)
    np.testing.assert_allclose(result, reference, rtol=0, atol=1e-5)


def test_overlap_beyond_exact_margin_is_close_but_not_exact() -> None:
    # With margin = halo, the outermost blended predictions lack context (documented rule
    # margin ≤ halo − reach); the Hann taper keeps their influence far below a plain mean's.
    image = smooth_field((150, 131))
    model = box_filter(2)
    reference = whole_image(image, model, 2)
    hann = np.abs(tiled(image, model, tile=32, halo=4, margin=4) - reference).max()
    plain = np.abs(tiled(image, model, tile=32, halo=4, margin=4, hann=False) - reference).max()
    assert 1e-5 < hann < plain / 5


def test_single_tile_equals_whole_image() -> None:
    image = smooth_field((40, 50))
    model = box_filter(1)
    result = tiled(image, model, tile=64, halo=1, margin=None, size_multiple=1)
    np.testing.assert_allclose(result, whole_image(image, model, 1), rtol=0, atol=1e-6)


def test_hann_window_shape_and_formula() -> None:
    w = hann_window(20, 14, halo=4)
    assert w.shape == (20, 14) and w.dtype == np.float32
    np.testing.assert_array_equal(w[4:16, 4:10], 1.0)  # core
    assert w.min() > 0
    np.testing.assert_allclose(w[0, 7], DEFAULT_FLOOR, rtol=1e-5)  # outermost border pixel
    np.testing.assert_allclose(w, w[::-1, ::-1])  # symmetric
    np.testing.assert_allclose(w, np.outer(w[:, 7], w[10, :]))  # separable
    border = w[:5, 7][::-1]  # from the core edge outwards
    assert (np.diff(border) < 0).all()
    d = np.arange(1, 5)
    expected = DEFAULT_FLOOR + (1 - DEFAULT_FLOOR) * np.cos(np.pi / 2 * d / 4) ** 2
    np.testing.assert_allclose(border[1:], expected, rtol=1e-6)
    np.testing.assert_array_equal(hann_window(3, 5, halo=0), np.ones((3, 5)))


def test_hann_blend_of_constant_tiles_is_constant() -> None:
    shape = (70, 45)
    blender = Blender(2, shape)
    for t in tile_grid(shape, tile=16, halo=5, size_multiple=8):
        out = np.empty((2, *t.input_shape), dtype=np.float32)
        out[0], out[1] = 0.25, -3.5
        part = crop_core(out, t, margin=5)
        blender.add(part, t.output_window(margin=5), weight=hann_window(*part.shape[1:], halo=5))
    result = blender.finalise()
    np.testing.assert_allclose(result[0], 0.25, rtol=1e-6)
    np.testing.assert_allclose(result[1], -3.5, rtol=1e-6)
    assert (blender.weight >= 1).all()  # every pixel is in one core


def test_hann_blend_hands_over_smoothly_between_tiles() -> None:
    # Two tiles whose "model" outputs different constants: the blend is exact deep in each core
    # and moves monotonically from one to the other over the 2·margin pixels around the edge.
    shape, margin = (16, 64), 6
    blender = Blender(1, shape)
    tiles = tile_grid(shape, tile=32, halo=margin)
    assert len(tiles) == 2
    for t, value in zip(tiles, (0.0, 1.0), strict=True):
        part = np.full((1, *crop_core(np.zeros(t.input_shape), t, margin=margin).shape), value)
        blender.add(
            part, t.output_window(margin=margin), weight=hann_window(*part.shape[1:], halo=margin)
        )
    profile = blender.finalise()[0, 8]
    np.testing.assert_array_equal(profile[: 32 - margin], 0.0)
    np.testing.assert_array_equal(profile[32 + margin :], 1.0)
    ramp = profile[32 - margin - 1 : 32 + margin + 1]
    assert (np.diff(ramp) > 0).all()
    np.testing.assert_allclose(profile[31] + profile[32], 1.0, rtol=1e-6)  # symmetric hand-over
    assert np.abs(np.diff(profile)).max() < 0.25  # no step


def test_blender_clips_windows_and_marks_uncovered_as_nan() -> None:
    blender = Blender(1, (6, 8))
    values = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    blender.add(values, (-2, 2, -1, 3))  # top-left corner partly outside
    blender.add(values, (4, 8, 6, 10))  # bottom-right corner partly outside
    blender.add(values, (10, 14, 0, 4))  # entirely outside: ignored
    result = blender.finalise()[0]
    np.testing.assert_array_equal(result[0:2, 0:3], values[0, 2:4, 1:4])
    np.testing.assert_array_equal(result[4:6, 6:8], values[0, 0:2, 0:2])
    assert np.isnan(result[3, 4]) and np.isnan(result[0, 5])
    assert int(np.isfinite(result).sum()) == 6 + 4


def test_blender_valid_mask_and_nan_inputs() -> None:
    blender = Blender(2, (4, 4))
    values = np.ones((2, 4, 4), dtype=np.float32)
    values[:, 1, 1] = [np.nan, 5.0]  # a non-finite pixel contributes nothing
    blender.add(values, (0, 4, 0, 4))
    blender.add(np.full((2, 4, 4), 3.0, dtype=np.float32), (0, 4, 0, 4), weight=np.ones((4, 4)))
    valid = np.ones((4, 4), dtype=bool)
    valid[3, 0] = False
    result = blender.finalise(valid=valid)
    np.testing.assert_allclose(result[:, 1, 1], [3.0, 3.0])
    np.testing.assert_allclose(result[:, 0, 0], [2.0, 2.0])
    assert np.isnan(result[:, 3, 0]).all()
    assert result.dtype == np.float32


def test_blockwise_blenders_equal_one_whole_blender() -> None:
    image = smooth_field((50, 40))
    whole = Blender(2, (50, 40))
    blocks = [Blender(2, (25, 40), origin=(0, 0)), Blender(2, (25, 40), origin=(25, 0))]
    for t in tile_grid((50, 40), tile=16, halo=3):
        part = crop_core(reflect_pad(image[(..., *t.read_slices)], t), t, margin=3)
        weight = hann_window(*part.shape[1:], halo=3)
        for b in (whole, *blocks):
            b.add(part, t.output_window(margin=3), weight=weight)
    stitched = np.concatenate([b.finalise() for b in blocks], axis=1)
    np.testing.assert_array_equal(stitched, whole.finalise())
    np.testing.assert_allclose(stitched, image, atol=1e-6)  # identity model


def test_blender_rejects_mismatched_inputs() -> None:
    blender = Blender(2, (4, 4))
    with pytest.raises(ConfigError, match="window"):
        blender.add(np.zeros((2, 3, 3)), (0, 4, 0, 4))
    with pytest.raises(ConfigError, match="channels"):
        blender.add(np.zeros((3, 4, 4)), (0, 4, 0, 4))
    with pytest.raises(ConfigError, match="weight"):
        blender.add(np.zeros((2, 4, 4)), (0, 4, 0, 4), weight=np.ones((3, 4)))
    with pytest.raises(ConfigError, match="valid"):
        blender.finalise(valid=np.ones((4, 5), bool))
    with pytest.raises(ConfigError, match="channels"):
        Blender(0, (4, 4))
    with pytest.raises(ConfigError, match="core"):
        hann_window(8, 20, halo=4)
    with pytest.raises(ConfigError, match="floor"):
        hann_window(10, 10, halo=2, floor=0.0)


def test_argmax_classes_with_nodata() -> None:
    probabilities = np.array(
        [
            [[0.7, 0.1, 0.3], [np.nan, 0.2, 0.5]],
            [[0.2, 0.8, 0.3], [np.nan, 0.1, 0.5]],
            [[0.1, 0.1, 0.4], [np.nan, 0.7, 0.0]],
        ],
        dtype=np.float32,
    )
    valid = np.array([[True, True, True], [True, False, True]])
    classes = argmax_classes(probabilities, [10, 20, 30], valid)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, [[10, 20, 30], [0, 0, 10]])  # tie → first channel
    np.testing.assert_array_equal(argmax_classes(probabilities[:, :1], [1, 2, 3]), [[1, 2, 3]])


def test_argmax_classes_rejects_bad_class_values() -> None:
    probabilities = np.zeros((2, 3, 3), dtype=np.float32)
    for values in ([0, 1], [1, 256], [1, 2, 3]):
        with pytest.raises(ConfigError, match="class_values"):
            argmax_classes(probabilities, values)
    with pytest.raises(ConfigError, match="valid"):
        argmax_classes(probabilities, [1, 2], np.ones((3, 4), bool))
