"""Tiled, batched, Hann-blended prediction of regions (pure numpy models)."""

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from spectraflow.errors import ConfigError
from spectraflow.inference.grid import TileGrid
from spectraflow.inference.tiled import (
    TilePlan,
    add_overlaps,
    normalise,
    predict_image,
    predict_region,
)

RNG = np.random.default_rng(3)
IMAGE = RNG.random((2, 100, 90)).astype(np.float32)


def box_filter(batch: np.ndarray) -> np.ndarray:
    """A local model: 5 × 5 mean per channel (receptive radius 2), as numpy 'reflect' sees it."""
    return uniform_filter(batch, size=(1, 1, 5, 5), mode="mirror").astype(np.float32)


def tile_mean(batch: np.ndarray) -> np.ndarray:
    """A global model: every output pixel is its tile's mean (the worst case for seams)."""
    return np.broadcast_to(batch.mean(axis=(2, 3), keepdims=True), batch.shape).copy()


def plan(core, *, halo=6, margin=3, batch=4, shape=IMAGE.shape[1:]) -> TilePlan:
    grid = TileGrid.plan(shape, tile=core, halo=halo, size_multiple=4)
    return TilePlan(grid, margin=margin, batch=batch)


@pytest.mark.parametrize("core", [16, 32, 50, 200])
def test_a_local_model_gives_the_whole_image_answer_for_any_tiling(core):
    # radius 2 ≤ halo 6 − margin 3: blended margins are exact too
    out = predict_image(IMAGE, plan=plan(core), run=box_filter, channels=2)
    np.testing.assert_allclose(out, box_filter(IMAGE[None])[0], atol=1e-5)


def test_batch_size_does_not_change_the_result():
    one = predict_image(IMAGE, plan=plan(16, batch=1), run=tile_mean, channels=2)
    many = predict_image(IMAGE, plan=plan(16, batch=7), run=tile_mean, channels=2)
    np.testing.assert_allclose(one, many, rtol=1e-6)


def test_regions_blend_exactly_like_one_region():
    p = plan(16)
    whole = predict_image(IMAGE, plan=p, run=tile_mean, channels=2)
    depth, m = p.depth, p.margin
    bounds = [(0, 48, 0, 32), (0, 48, 32, 90), (48, 100, 0, 32), (48, 100, 32, 90)]
    parts = []
    for r0, r1, c0, c1 in bounds:  # each region sees only its block: region ± depth
        b0, b1, d0, d1 = max(r0 - depth, 0), min(r1 + depth, 100), max(c0 - depth, 0), c1 + depth
        sums = predict_region(
            IMAGE[:, b0:b1, d0:d1], plan=p, region=(r0, r1, c0, c1), origin=(b0, d0),
            run=tile_mean, channels=2,
        )  # fmt: skip
        parts.append(((r0 - m, r1 + m, c0 - m, c1 + m), sums))
    for region in bounds:
        got = normalise(add_overlaps(region, parts))
        r0, r1, c0, c1 = region
        np.testing.assert_allclose(got, whole[:, r0:r1, c0:c1], rtol=1e-5)


def test_hann_blending_hands_over_smoothly_between_tiles():
    image = np.zeros((1, 64, 64), dtype=np.float32)
    image[:, :, 32:] = 1.0  # two tiles with means 0 and 1 (the halo sees a little of both)
    p_blend, p_cut = (plan(32, halo=8, margin=m, shape=(64, 64)) for m in (8, 0))
    blended = predict_image(image, plan=p_blend, run=tile_mean, channels=1)
    cut = predict_image(image, plan=p_cut, run=tile_mean, channels=1)
    row_b, row_c = blended[0, 10], cut[0, 10]
    assert np.abs(np.diff(row_c)).max() > 0.4  # cores only: a step at the seam
    assert np.abs(np.diff(row_b)).max() < 0.6 * np.abs(np.diff(row_c)).max()
    np.testing.assert_allclose(row_b[:20], row_c[:20])  # away from the seam: each tile's own


def test_tiles_without_valid_pixels_are_not_run():
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return box_filter(batch)

    valid = np.zeros(IMAGE.shape[1:], dtype=bool)
    valid[:20, :20] = True  # only the first tile of a 32-px grid
    p = plan(32, batch=2)
    sums = predict_region(
        IMAGE, plan=p, region=(0, 100, 0, 90), origin=(0, 0), run=counting, channels=2,
        valid=valid,
    )  # fmt: skip
    assert calls == [1]
    assert sums[-1][:32, :32].min() > 0 and sums[-1][40:, 40:].max() == 0


def test_batches_hold_at_most_batch_tiles():
    sizes = []

    def recording(batch):
        sizes.append(len(batch))
        return batch

    predict_image(IMAGE, plan=plan(16, batch=5), run=recording, channels=2)
    assert sizes == [5] * 8 + [2]  # 7 × 6 = 42 tiles


def test_concurrent_regions_stack_and_run_their_batches_inside_the_gate():
    gate = threading.Lock()
    alive = []  # batches not yet freed, seen from inside the model

    def model(batch):
        assert gate.locked()  # the batch was stacked, and is run, under the gate
        alive.append(weakref.ref(batch))
        assert sum(r() is not None for r in alive) == 1  # the other region's batch is gone
        return box_filter(batch)

    def region(r0):
        return predict_region(
            IMAGE, plan=plan(16, batch=3), region=(r0, r0 + 48, 0, 90), origin=(0, 0),
            run=model, channels=2, gate=gate,
        )  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(region, (0, 48)))
    alone = [region(0), region(48)]
    for got, want in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got, want)


def test_plan_checks_its_margin_and_batch():
    grid = TileGrid.plan((64, 64), tile=32, halo=4)
    with pytest.raises(ConfigError, match="margin"):
        TilePlan(grid, margin=5, batch=1)
    with pytest.raises(ConfigError, match="batch"):
        TilePlan(grid, margin=2, batch=0)


def test_region_edges_are_whole_cores_within_the_budget():
    grid = TileGrid.plan((5000, 3000), tile=128, halo=32)
    p = TilePlan(grid, margin=16, batch=4)
    rows, cols = p.region_edge(200)
    assert rows % 128 == 0 and cols % 128 == 0
    assert (rows + 2 * p.depth) ** 2 * 200 * 4 <= 256 * 2**20
    assert p.region_edge(10_000) == (128, 128)  # at least one core
