"""Layer plans, block windows and block statistics (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine

from spectraflow.errors import ProductError
from spectraflow.mosaic.layers import BlockStats, MapClass, block_windows, plan_layers

TRANSFORM = Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 5_000_000.0)


def _layers() -> xr.Dataset:
    ds = xr.Dataset(
        {
            "quicklook": (("y", "x"), np.array([[0, 1], [2, 300]], np.int16)),
            "score": (("y", "x"), np.ones((2, 2), np.float32)),
        }
    )
    ds["quicklook"].attrs.update(flag_values=[1, 2], flag_meanings="water urban")
    ds["score"].attrs.update(units="1", long_name="model score")
    return ds.rio.write_crs("EPSG:32633").rio.write_transform(TRANSFORM)


def test_plan_layers_files_keys_and_classes() -> None:
    grid, (main, score) = plan_layers(_layers(), "demo")
    assert (grid.crs.to_epsg(), grid.transform, grid.shape) == (32633, TRANSFORM, (2, 2))
    assert (main.key, main.filename, main.kind, main.dtype) == (
        "data",
        "demo.tif",
        "class",
        "uint8",
    )
    assert main.classes == (MapClass(1, "water", "#4e79a7"), MapClass(2, "urban", "#f28e2b"))
    assert main.overview_resampling == "MODE"
    # a reserved asset key is renamed; continuous layers keep units, NaN nodata, averages
    layers = _layers().rename(quicklook="lc", score="quicklook")
    _, (_, other) = plan_layers(layers, "demo")
    assert (other.key, other.filename) == ("layer-quicklook", "demo_quicklook.tif")
    assert (score.units, score.description, score.overview_resampling) == (
        "1",
        "model score",
        "AVERAGE",
    )
    assert math.isnan(score.nodata)


def test_cast_checks_class_values() -> None:
    _, (main, score) = plan_layers(_layers(), "demo")
    assert score.cast(np.ones((2, 2), np.float64)).dtype == np.float32
    assert main.cast(np.array([[0, 1]], np.int16)).dtype == np.uint8
    with pytest.raises(ProductError, match=r"outside 0\.\.255") as info:
        main.cast(_layers()["quicklook"].values)
    assert info.value.where == "layers['quicklook']"


def test_block_windows_follow_tile_aligned_chunks() -> None:
    assert [w.flatten() for w in block_windows((700, 600), ((512, 188), (512, 88)))] == [
        (0, 0, 512, 512), (512, 0, 88, 512), (0, 512, 512, 188), (512, 512, 88, 188),
    ]  # fmt: skip
    # chunks that cut COG tiles: windows of whole tiles instead
    windows = block_windows((1000, 1000), ((300,) * 3 + (100,), (1000,)))
    assert {(w.row_off % 512, w.col_off % 512) for w in windows} == {(0, 0)}
    assert sum(int(w.width * w.height) for w in windows) == 1000 * 1000
    assert len(block_windows((5000, 100), None)) == 3  # numpy input: 2048-row windows


def test_block_stats_equal_whole_array_stats() -> None:
    values = np.random.default_rng(0).normal(50.0, 7.0, (300, 200)).astype(np.float32)
    values[:20] = np.nan
    stats = BlockStats("continuous")
    for start in range(0, 300, 70):  # uneven blocks, one all NaN
        stats.update(values[start : start + 70])
    result = stats.result()
    valid = values[np.isfinite(values)].astype(np.float64)
    assert result.mean == pytest.approx(valid.mean(), rel=1e-12)
    assert result.stddev == pytest.approx(valid.std(), rel=1e-9)
    assert (result.minimum, result.maximum) == (valid.min(), valid.max())
    assert result.valid_percent == pytest.approx(100 * 280 / 300)
    assert float(result.gdal_tags()["STATISTICS_MEAN"]) == result.mean

    classes = BlockStats("class")
    classes.update(np.array([[0, 3, 3], [7, 0, 3]], np.uint8))
    counted = classes.result()
    assert (counted.counts, counted.minimum, counted.maximum) == ({3: 3, 7: 1}, 3.0, 7.0)
    assert counted.mean is None and "STATISTICS_MEAN" not in counted.gdal_tags()
    assert BlockStats("continuous").result().gdal_tags() == {}
