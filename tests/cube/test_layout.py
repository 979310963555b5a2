from __future__ import annotations

import numpy as np
import pytest

from spectraflow.cube.layout import (
    GridLayout,
    codec_name,
    compressors_for,
    plan_grid,
    spatial_dims_of,
    variable_layout,
)
from spectraflow.errors import ConfigError

YX = ("y", "x")


@pytest.mark.parametrize(
    ("shape", "bpp", "chunk", "shard"),
    [
        (
            (1280, 1242),
            285 * 4,
            (128, 128),
            (256, 256),
        ),  # EMIT float32: 18.7 MB chunks, 75 MB shards
        ((1280, 1242), 285 * 2, (128, 128), (256, 256)),  # EMIT int16
        ((1250, 1200), 224 * 4, (128, 128), (256, 256)),  # EnMAP float32
        ((5490, 5490), 12 * 4, (256, 256), (1024, 1024)),  # Sentinel-2 20 m, edge capped at 1024
        ((5490, 5490), 1, (256, 256), (1024, 1024)),  # a bool mask alone
    ],
)
def test_rules_for_the_sensors(
    shape: tuple[int, int], bpp: int, chunk: tuple[int, int], shard: tuple[int, int]
) -> None:
    layout = plan_grid(YX, shape, bpp)
    assert (layout.chunk, layout.shard) == (chunk, shard)
    assert layout.shard[0] % layout.chunk[0] == 0 and layout.shard[1] % layout.chunk[1] == 0
    assert layout.shard[0] * layout.shard[1] * bpp <= 96 * 2**20


def test_edges_are_cut_to_small_grids() -> None:
    layout = plan_grid(YX, (70, 300), 24)
    assert layout.chunk == (70, 256)
    assert layout.shard == (70, 512)  # whole chunks covering 300 columns, not 4 × 256
    assert layout.n_shards == (1, 1)
    assert layout.shard_window(0, 0) == (slice(0, 70), slice(0, 300))


def test_overrides_and_windows() -> None:
    layout = plan_grid(YX, (100, 90), 24, chunk=16, shard=32)
    assert (layout.chunk, layout.shard, layout.n_shards) == ((16, 16), (32, 32), (4, 3))
    assert layout.shard_window(3, 2) == (slice(96, 100), slice(64, 90))
    assert plan_grid(YX, (1000, 1000), 285 * 4, shard=512).chunk == (128, 128)
    assert plan_grid(YX, (1000, 1000), 4, shard=96).chunk == (96, 96)  # no rule edge divides 96


@pytest.mark.parametrize(("chunk", "shard"), [(16, 40), (0, None), (16, -32)])
def test_bad_overrides(chunk: int, shard: int | None) -> None:
    with pytest.raises(ConfigError):
        plan_grid(YX, (100, 100), 4, chunk=chunk, shard=shard)


def test_variable_layout_keeps_bands_whole_and_light_variables_in_one_chunk() -> None:
    grid = GridLayout(dims=YX, shape=(1280, 1242), chunk=(128, 128), shard=(256, 256))
    refl = variable_layout(("band", "y", "x"), (285, 1280, 1242), 4, grid)
    assert refl == ((285, 128, 128), (285, 256, 256))
    assert variable_layout(("y", "x"), (1280, 1242), 1, grid) == ((256, 256), (256, 256))
    # dimension order is followed, whatever it is
    assert variable_layout(("y", "x", "band"), (1280, 1242, 285), 4, grid)[0] == (128, 128, 285)


def test_spatial_dims_and_codecs() -> None:
    assert spatial_dims_of(("band", "y", "x")) == ("y", "x")
    assert spatial_dims_of(("band", "line", "sample")) == ("line", "sample")
    assert spatial_dims_of(("ortho_y", "ortho_x")) == ("ortho_y", "ortho_x")
    assert spatial_dims_of(("band",)) is None
    (codec,) = compressors_for(np.dtype("float32"))
    assert codec.cname.value == "zstd" and codec.shuffle.value == "shuffle"
    assert codec_name(np.dtype("bool")) == "blosc-zstd-3-noshuffle"
