from __future__ import annotations

import itertools

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.inference.grid import Tile, TileGrid, crop_core, reflect_pad, tile_grid

SHAPES = [(1, 1), (1, 7), (5, 3), (7, 16), (16, 16), (17, 33), (40, 25), (64, 100), (129, 130)]
PLANS = [
    # tile, halo, align, size_multiple
    (1, 0, 1, 1),
    (4, 2, 1, 1),
    (8, 3, 4, 1),
    (10, 4, 4, 8),
    (16, 5, (8, 4), 16),
    (3, 1, 8, 4),  # tile < align: cores become one chunk
    (32, 9, 16, 32),
    (200, 3, 64, 1),  # tile larger than every image
]


def _combos() -> list[tuple[tuple[int, int], tuple[int, int, int | tuple[int, int], int]]]:
    return list(itertools.product(SHAPES, PLANS))


@pytest.mark.parametrize(("shape", "plan"), _combos())
def test_cores_partition_align_and_windows(
    shape: tuple[int, int], plan: tuple[int, int, int | tuple[int, int], int]
) -> None:
    tile, halo, align, multiple = plan
    grid = TileGrid.plan(shape, tile=tile, halo=halo, align=align, size_multiple=multiple)
    tiles = grid.tiles()
    assert len(tiles) == grid.grid_shape[0] * grid.grid_shape[1]

    count = np.zeros(shape, dtype=np.int32)
    align_r, align_c = align if isinstance(align, tuple) else (align, align)
    for t in tiles:
        r0, r1, c0, c1 = t.core
        assert 0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]
        count[r0:r1, c0:c1] += 1
        # Core edges on the alignment, except where they are the image edge.
        for edge, size, a in ((r0, shape[0], align_r), (r1, shape[0], align_r)):
            assert edge % a == 0 or edge == size
        for edge, size, a in ((c0, shape[1], align_c), (c1, shape[1], align_c)):
            assert edge % a == 0 or edge == size
        # Input: uniform, a multiple of size_multiple, core at (halo, halo).
        assert t.input_shape == grid.input_shape
        assert t.input_shape[0] % multiple == 0 and t.input_shape[1] % multiple == 0
        assert t.input_shape[0] >= t.core_shape[0] + 2 * halo
        assert t.input_shape[1] >= t.core_shape[1] + 2 * halo
        assert t.core_offset == (halo, halo)
        # The read window is the input window clipped to the image; padding is what is outside.
        ir0, ir1, ic0, ic1 = t.input_window
        assert t.read == (max(ir0, 0), min(ir1, shape[0]), max(ic0, 0), min(ic1, shape[1]))
        top, bottom, left, right = t.pad
        assert (top, left) == (max(-ir0, 0), max(-ic0, 0))
        assert (bottom, right) == (max(ir1 - shape[0], 0), max(ic1 - shape[1], 0))
        # Padded, never shifted: the input window starts halo before the core.
        assert (ir0, ic0) == (r0 - halo, c0 - halo)
    assert (count == 1).all()


def test_core_size_rule() -> None:
    # Rounded down to a multiple of align, at least align, at most the image extent.
    assert TileGrid.plan((1000, 1000), tile=300, halo=0, align=128).core == (256, 256)
    assert TileGrid.plan((1000, 1000), tile=100, halo=0, align=128).core == (128, 128)
    assert TileGrid.plan((1000, 1000), tile=256, halo=0, align=(128, 64)).core == (256, 256)
    assert TileGrid.plan((1000, 1000), tile=200, halo=0, align=(128, 64)).core == (128, 192)
    assert TileGrid.plan((50, 1000), tile=256, halo=0, align=128).core == (50, 256)
    grid = TileGrid.plan((1000, 300), tile=256, halo=16, align=128, size_multiple=32)
    assert grid.grid_shape == (4, 2)
    assert grid.input_shape == (288, 288)


def test_edge_tiles_are_padded_at_all_four_edges() -> None:
    grid = TileGrid.plan((100, 90), tile=32, halo=6, align=32, size_multiple=16)
    assert grid.input_shape == (48, 48)
    by_index = {t.index: t for t in grid.tiles()}
    assert grid.grid_shape == (4, 3)

    top_left = by_index[(0, 0)]
    assert top_left.core == (0, 32, 0, 32)
    assert top_left.read == (0, 42, 0, 42)
    assert top_left.pad == (6, 0, 6, 0)

    inner = by_index[(1, 1)]
    assert inner.core == (32, 64, 32, 64)
    assert inner.read == (26, 74, 26, 74)  # 32 + 2·6 = 44, rounded to 48: extra 4 read
    assert inner.pad == (0, 0, 0, 0)

    bottom_right = by_index[(3, 2)]
    assert bottom_right.core == (96, 100, 64, 90)
    assert bottom_right.read == (90, 100, 58, 90)
    assert bottom_right.pad == (0, 38, 0, 16)
    assert bottom_right.input_shape == (48, 48)

    # Short last core: the extra comes from the image where it exists, reflection beyond.
    right_col = by_index[(1, 2)]
    assert right_col.read == (26, 74, 58, 90)
    assert right_col.pad == (0, 0, 0, 16)


def test_small_image_is_one_padded_tile() -> None:
    tiles = tile_grid((5, 3), tile=64, halo=4, align=16, size_multiple=8)
    assert len(tiles) == 1
    (t,) = tiles
    assert t.core == (0, 5, 0, 3) and t.read == (0, 5, 0, 3)
    assert t.input_shape == (16, 16)
    assert t.pad == (4, 7, 4, 9)
    image = np.arange(15, dtype=np.float32).reshape(5, 3)
    padded = reflect_pad(image, t)
    assert padded.shape == (16, 16)
    np.testing.assert_array_equal(crop_core(padded, t), image)
    # Reflection bounces on a tiny image, like padding the whole image.
    np.testing.assert_array_equal(padded, np.pad(image, ((4, 7), (4, 9)), mode="reflect"))


@pytest.mark.parametrize("shape", [(1, 9), (13, 21), (37, 50)])
@pytest.mark.parametrize(("tile", "halo", "multiple"), [(4, 0, 1), (8, 3, 8), (16, 7, 4)])
def test_reflect_pad_crop_core_round_trip(
    shape: tuple[int, int], tile: int, halo: int, multiple: int
) -> None:
    rows, cols = np.indices(shape)
    # Position encoding: (band 0 = row, band 1 = col, band 2 = unique id).
    image = np.stack([rows, cols, rows * 1000 + cols]).astype(np.int64)
    reference = np.pad(image, ((0, 0), (halo, halo), (halo, halo)), mode="reflect")
    for t in tile_grid(shape, tile=tile, halo=halo, size_multiple=multiple):
        read = image[(..., *t.read_slices)]
        padded = reflect_pad(read, t)
        assert padded.shape == (3, *t.input_shape)
        r0, r1, c0, c1 = t.core
        np.testing.assert_array_equal(crop_core(padded, t), image[:, r0:r1, c0:c1])
        # Core ± halo in the tile input equals the whole image reflect-padded by the halo.
        around = crop_core(padded, t, margin=halo)
        np.testing.assert_array_equal(around, reference[:, r0 : r1 + 2 * halo, c0 : c1 + 2 * halo])


def test_reflect_pad_returns_unpadded_array_as_is() -> None:
    (t,) = [t for t in tile_grid((30, 30), tile=10, halo=2) if t.index == (1, 1)]
    array = np.ones((2, *t.read_shape))
    assert reflect_pad(array, t) is array


def test_valid_mask_skips_tiles_without_valid_core_pixels() -> None:
    valid = np.zeros((40, 50), dtype=bool)
    valid[5, 5] = True  # tile (0, 0)
    valid[39, 49] = True  # last tile (2, 3)
    valid[16:24, 0:16] = False
    valid[10, 16] = True  # core of (0, 1) is cols 16–32
    tiles = tile_grid((40, 50), tile=16, halo=4, valid=valid)
    assert [t.index for t in tiles] == [(0, 0), (0, 1), (2, 3)]
    halo_only = np.zeros((40, 50), dtype=bool)
    halo_only[18, 14] = True  # core of (1, 0), in the halo of (1, 1)
    assert [t.index for t in tile_grid((40, 50), tile=16, halo=4, valid=halo_only)] == [(1, 0)]
    assert tile_grid((40, 50), tile=16, halo=4, valid=np.zeros((40, 50), bool)) == []


def test_valid_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    valid = rng.random((70, 45)) > 0.995
    grid = TileGrid.plan((70, 45), tile=8, halo=2, align=4)
    kept = {t.index for t in grid.tiles(valid=valid)}
    expected = set()
    for t in grid.tiles():
        r0, r1, c0, c1 = t.core
        if valid[r0:r1, c0:c1].any():
            expected.add(t.index)
    assert kept == expected
    assert 0 < len(kept) < grid.grid_shape[0] * grid.grid_shape[1]


def test_tile_is_frozen_and_output_window() -> None:
    t = Tile(index=(0, 0), core=(0, 4, 0, 4), read=(0, 6, 0, 6), pad=(2, 0, 2, 0))
    with pytest.raises(AttributeError):
        t.core = (0, 1, 0, 1)  # type: ignore[misc]
    assert t.output_window(margin=2) == (-2, 6, -2, 6)
    assert t.input_window == (-2, 6, -2, 6)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"tile": 0, "halo": 1}, "tile"),
        ({"tile": 8, "halo": -1}, "halo"),
        ({"tile": 8, "halo": 1, "align": 0}, "align"),
        ({"tile": 8, "halo": 1, "align": (4, 4, 4)}, "align"),
        ({"tile": 8, "halo": 1, "size_multiple": 0}, "size_multiple"),
        ({"tile": 8, "halo": 1, "valid": np.ones((10, 11), bool)}, "valid"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        tile_grid((10, 10), **kwargs)  # type: ignore[arg-type]
    assert info.value.where == where
    assert info.value.fix


def test_shape_errors() -> None:
    with pytest.raises(ConfigError, match="shape"):
        tile_grid((0, 10), tile=4, halo=0)
    (t, *_) = tile_grid((10, 10), tile=4, halo=1)
    with pytest.raises(ConfigError, match="read shape"):
        reflect_pad(np.zeros((4, 4)), t)
    with pytest.raises(ConfigError, match="input shape"):
        crop_core(np.zeros((4, 4)), t)
    with pytest.raises(ConfigError, match="margin"):
        crop_core(np.zeros(t.input_shape), t, margin=2)
    with pytest.raises(ConfigError, match="outside"):
        TileGrid.plan((10, 10), tile=4, halo=1).tile(3, 0)
