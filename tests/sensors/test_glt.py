from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from spectraflow.errors import SceneFormatError
from spectraflow.sensors.glt import ortho_coords, orthorectify


def reference(raw: np.ndarray, glt_x: np.ndarray, glt_y: np.ndarray, fill: Any) -> np.ndarray:
    """Straightforward double loop over the ortho grid."""
    lines, samples = raw.shape[-2:]
    out = np.empty(raw.shape[:-2] + glt_x.shape, dtype=raw.dtype)
    for row in range(glt_x.shape[0]):
        for col in range(glt_x.shape[1]):
            x, y = int(glt_x[row, col]), int(glt_y[row, col])
            if 1 <= x <= samples and 1 <= y <= lines:
                out[..., row, col] = raw[..., y - 1, x - 1]
            else:
                out[..., row, col] = fill
    return out


def random_glt(
    rng: np.random.Generator, ortho: tuple[int, int], lines: int, samples: int
) -> tuple[np.ndarray, np.ndarray]:
    gx = rng.integers(1, samples + 1, ortho).astype(np.int32)
    gy = rng.integers(1, lines + 1, ortho).astype(np.int32)
    gx[rng.random(ortho) < 0.2] = 0
    gy[rng.random(ortho) < 0.2] = 0
    return gx, gy


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_numpy_matches_reference(rng: np.random.Generator, lead: tuple[int, ...]) -> None:
    raw = rng.random((*lead, 17, 13)).astype(np.float32)
    gx, gy = random_glt(rng, (23, 29), 17, 13)
    pairs = gx[(gx > 0) & (gy > 0)] * 100 + gy[(gx > 0) & (gy > 0)]
    assert len(np.unique(pairs)) < len(pairs)  # some raw pixels are used twice
    assert ((gx == 0) | (gy == 0)).any()
    out = orthorectify(raw, gx, gy)
    assert isinstance(out, np.ndarray)
    assert out.shape == (*lead, 23, 29)
    np.testing.assert_array_equal(out, reference(raw, gx, gy, np.nan))


@pytest.mark.parametrize(
    ("raw_chunks", "glt_dask", "chunks", "ortho_chunks"),
    [
        ((5, 4, 3), False, 7, ((7, 7, 7, 2), (7, 7, 7, 7, 1))),
        ((5, 17, 13), False, None, ((23,), (29,))),
        ((2, 6, 5), True, None, ((9, 9, 5), (11, 11, 7))),
        ((1, 3, 13), True, 10, ((10, 10, 3), (10, 10, 9))),
    ],
)
def test_dask_matches_reference(
    rng: np.random.Generator,
    raw_chunks: tuple[int, int, int],
    glt_dask: bool,
    chunks: int | None,
    ortho_chunks: tuple[tuple[int, ...], tuple[int, ...]],
) -> None:
    raw = rng.random((5, 17, 13)).astype(np.float32)
    gx, gy = random_glt(rng, (23, 29), 17, 13)
    glt_x: Any = da.from_array(gx, chunks=(9, 11)) if glt_dask else gx
    glt_y: Any = da.from_array(gy, chunks=(9, 11)) if glt_dask else gy
    lazy = da.from_array(raw, chunks=raw_chunks)
    out = orthorectify(lazy, glt_x, glt_y, fill=-1.0, chunks=chunks)
    assert isinstance(out, da.Array)
    assert out.chunks == (lazy.chunks[0], *ortho_chunks)  # leading chunks kept, ortho blocks
    np.testing.assert_array_equal(out.compute(), reference(raw, gx, gy, -1.0))


def test_dask_is_lazy_and_reads_only_the_raw_blocks_it_needs(rng: np.random.Generator) -> None:
    raw = rng.random((3, 40, 30)).astype(np.float32)
    wanted = {(0, 0, 0), (0, 3, 2)}  # raw blocks (10 x 10) the GLT points into
    touched: list[tuple[int, ...]] = []

    def guard(block: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        where = tuple(block_info[0]["chunk-location"]) if block_info else ()
        touched.append(where)
        if where not in wanted:
            raise AssertionError(f"raw block {where} was read")
        return block

    meta = np.empty((0, 0, 0), dtype=raw.dtype)
    lazy = da.from_array(raw, chunks=(3, 10, 10)).map_blocks(guard, meta=meta)
    gx = np.zeros((16, 24), dtype=np.int32)
    gy = np.zeros((16, 24), dtype=np.int32)
    # Left ortho half takes raw block (0, 0), right half raw block (3, 2).
    gx[:, :12] = rng.integers(1, 11, (16, 12))
    gy[:, :12] = rng.integers(1, 11, (16, 12))
    gx[:, 12:] = rng.integers(21, 31, (16, 12))
    gy[:, 12:] = rng.integers(31, 41, (16, 12))
    gx[::5, ::3] = 0
    # Ortho blocks of 12 columns: each takes one raw block (a block's raw bounding box is read).
    out = orthorectify(lazy, gx, gy, chunks=12)
    assert touched == []  # building the graph reads nothing
    with dask.config.set(scheduler="sync"):
        result = out.compute()
    assert set(touched) == wanted
    np.testing.assert_array_equal(result, reference(raw, gx, gy, np.nan))
    # One ortho block depends only on the raw block its GLT block points into.
    touched.clear()
    with dask.config.set(scheduler="sync"):
        out.blocks[0, 1, 0].compute()
    assert set(touched) == {(0, 0, 0)}


def test_fill_and_dtypes(rng: np.random.Generator) -> None:
    raw = rng.integers(0, 250, (9, 8)).astype(np.uint8)
    gx, gy = random_glt(rng, (11, 12), 9, 8)
    promoted = orthorectify(raw, gx, gy)
    assert promoted.dtype == np.float32
    np.testing.assert_array_equal(promoted, reference(raw.astype(np.float32), gx, gy, np.nan))
    kept = orthorectify(raw, gx, gy, fill=255)
    assert kept.dtype == np.uint8
    np.testing.assert_array_equal(kept, reference(raw, gx, gy, 255))
    flags = orthorectify(da.from_array(raw > 100, chunks=4), gx, gy, fill=False, chunks=5)
    assert flags.dtype == bool
    np.testing.assert_array_equal(flags.compute(), reference(raw > 100, gx, gy, False))


def test_out_of_range_and_negative_indices_are_no_data() -> None:
    raw = np.arange(12, dtype=np.float64).reshape(3, 4)
    gx = np.array([[1, 4, 5, -9999]], dtype=np.int32)
    gy = np.array([[1, 3, 1, 2]], dtype=np.int32)
    out = orthorectify(raw, gx, gy)
    np.testing.assert_array_equal(out, [[0.0, 11.0, np.nan, np.nan]])
    lazy = orthorectify(da.from_array(raw, chunks=2), gx, gy, chunks=2).compute()
    np.testing.assert_array_equal(lazy, out)


def test_all_empty_ortho_blocks() -> None:
    raw = da.ones((2, 5, 5), chunks=(2, 5, 5), dtype=np.float32)
    gx = np.zeros((6, 6), dtype=np.int32)
    gy = np.zeros((6, 6), dtype=np.int32)
    gx[0, 0] = gy[0, 0] = 3
    out = orthorectify(raw, gx, gy, chunks=3).compute()
    expected = np.full((2, 6, 6), np.nan, dtype=np.float32)
    expected[:, 0, 0] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_xarray_inputs(rng: np.random.Generator) -> None:
    raw = rng.random((4, 10, 7)).astype(np.float32)
    gx, gy = random_glt(rng, (12, 9), 10, 7)
    lon = np.linspace(10, 11, 9)
    lat = np.linspace(5, 4, 12)
    dims = ("ortho_y", "ortho_x")
    glt_x = xr.DataArray(gx, dims=dims, coords={"ortho_x": lon, "ortho_y": lat})
    glt_y = xr.DataArray(gy, dims=dims, coords={"ortho_x": lon, "ortho_y": lat})
    ds = xr.Dataset(
        {
            "reflectance": (("band", "line", "sample"), da.from_array(raw, chunks=(4, 5, 5))),
            "valid": (("line", "sample"), raw[0] > 0.5),
            "cloud": (("line", "sample"), (raw[1] > 0.5).astype(np.uint8)),
            "glt_x": glt_x,
            "glt_y": glt_y,
            "per_line": (("line",), np.arange(10)),
        },
        coords={"band": ["a", "b", "c", "d"], "wavelength": ("band", [1.0, 2.0, 3.0, 4.0])},
        attrs={"sensor": "emit"},
    )
    one = orthorectify(ds.reflectance, ds.glt_x, ds.glt_y)
    assert one.dims == ("band", "ortho_y", "ortho_x")
    assert isinstance(one.data, da.Array)
    np.testing.assert_array_equal(one.ortho_x, lon)
    assert list(one.wavelength.values) == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(one.values, reference(raw, gx, gy, np.nan))

    out = orthorectify(ds, ds.glt_x, ds.glt_y)
    assert set(out.data_vars) == {"reflectance", "valid", "cloud", "glt_x", "glt_y"}
    assert out.valid.dtype == bool and out.cloud.dtype == np.uint8
    np.testing.assert_array_equal(out.valid.values, reference(raw[0] > 0.5, gx, gy, False))
    np.testing.assert_array_equal(
        out.cloud.values, reference((raw[1] > 0.5).astype(np.uint8), gx, gy, 0)
    )
    assert out.attrs == {"sensor": "emit"}

    with pytest.raises(SceneFormatError, match="line"):
        orthorectify(ds.reflectance.transpose("line", "band", "sample"), gx, gy)


def test_bad_glts() -> None:
    raw = np.zeros((3, 3))
    with pytest.raises(SceneFormatError, match="one shape"):
        orthorectify(raw, np.zeros((2, 2), dtype=int), np.zeros((2, 3), dtype=int))
    with pytest.raises(SceneFormatError, match="integers"):
        orthorectify(raw, np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(SceneFormatError, match="trailing"):
        orthorectify(np.zeros(3), np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int))


def test_ortho_coords_are_pixel_centres() -> None:
    gt = (-103.6, 0.0005, -0.0, 31.9, -0.0, -0.0005)
    lonlat = ortho_coords(gt, (3, 4))
    np.testing.assert_allclose(lonlat.lon, -103.6 + 0.0005 * (np.arange(4) + 0.5))
    np.testing.assert_allclose(lonlat.lat, 31.9 - 0.0005 * (np.arange(3) + 0.5))
    lon, lat = lonlat
    assert lon.shape == (4,) and lat.shape == (3,)
    with pytest.raises(SceneFormatError, match="rotated"):
        ortho_coords((0.0, 1.0, 0.1, 0.0, 0.0, -1.0), (2, 2))
    with pytest.raises(SceneFormatError, match="6 finite"):
        ortho_coords((0.0, 1.0, 0.0), (2, 2))
