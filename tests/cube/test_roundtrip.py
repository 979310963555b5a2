from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from spectraflow import __version__
from spectraflow.cube import open_cube, write_cube
from spectraflow.cube.layout import plan_grid, variable_layout
from spectraflow.errors import ConfigError, CubeError

ATTRS = {"item": "file:///scenes/X/item.json", "checksums": {"data": "sha256:0123"}}


def test_map_grid_round_trip(tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]) -> None:
    ds = make_map_dataset()
    url = write_cube(ds, tmp_path / "c.zarr", attrs=ATTRS, chunks=16, shards=32)
    assert url == str(tmp_path / "c.zarr")
    cube = open_cube(url)

    src = ds.compute()
    assert cube.reflectance.dtype == np.float32
    assert np.isnan(src.reflectance.values).any()
    np.testing.assert_array_equal(cube.reflectance.values, src.reflectance.values)  # NaN == NaN
    for name, dtype in (("valid", np.bool_), ("scl", np.uint8), ("aod550", np.float32)):
        assert cube[name].dtype == dtype
        np.testing.assert_array_equal(cube[name].values, src[name].values)
    for name in ("band", "wavelength", "fwhm", "good_band", "x", "y"):
        assert cube[name].dtype == src[name].dtype
        np.testing.assert_array_equal(cube[name].values, src[name].values)

    assert cube.rio.crs == ds.rio.crs
    assert cube.rio.transform() == ds.rio.transform()
    assert cube.reflectance.rio.crs == ds.rio.crs  # per variable too (grid_mapping)
    assert cube.attrs["proj:code"] == "EPSG:32613"
    assert cube.attrs["spatial:transform"] == list(ds.rio.transform())[:6]

    # provenance: the reader's attrs, the caller's, the version and the parameters
    assert cube.attrs["scene_id"] == "ENMAP_TEST" and cube.attrs["source"] == {"data": "/in/X.TIF"}
    assert cube.attrs["checksums"] == ATTRS["checksums"]
    assert cube.attrs["spectraflow_version"] == __version__
    assert cube.attrs["spectraflow_write"]["encoding_dtype"] == "float32"
    assert "_spectraflow_complete" not in cube.attrs
    assert cube.reflectance.attrs["units"] == "1"

    # lazy, one dask chunk per stored shard
    assert cube.reflectance.chunks == ((6,), (32, 32, 6), (32, 28))


def test_stored_layout_is_the_planned_one(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    ds = make_map_dataset((6, 300, 260), chunks=128)
    url = write_cube(ds, tmp_path / "c.zarr")
    grid = plan_grid(("y", "x"), (300, 260), 6 * 4)
    group = zarr.open_group(url, mode="r")
    for name in ("reflectance", "valid", "scl"):
        arr = group[name]
        assert isinstance(arr, zarr.Array)
        chunks, shards = variable_layout(
            arr.metadata.dimension_names, arr.shape, arr.dtype.itemsize, grid
        )
        assert (arr.chunks, arr.shards) == (chunks, shards)
        assert (
            arr.metadata.codecs[0].codecs[-1].cname.value == "zstd"
        )  # blosc-zstd inside the shard
    # 300 × 260 pixels: one 256-pixel chunk edge, shards of whole chunks, a single shard object
    assert group["reflectance"].shards == (6, 512, 512)
    shard_files = [
        p for p in (Path(url) / "reflectance").rglob("*") if p.is_file() and p.name != "zarr.json"
    ]
    assert len(shard_files) == 1


def test_int16_storage_decodes_within_half_a_quantum(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    ds = make_map_dataset()
    ds["reflectance"] = ds.reflectance.where(ds.x < ds.x[-1], 5.0)  # out of the int16 range
    url = write_cube(ds, tmp_path / "c.zarr", encoding_dtype="int16", chunks=16, shards=32)
    arr = zarr.open_array(Path(url) / "reflectance", mode="r")
    assert arr.dtype == np.int16 and arr.attrs["scale_factor"] == 1e-4

    cube = open_cube(url)
    src = ds.reflectance.values
    got = cube.reflectance.values
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(src))
    inside = ~np.isnan(src) & (src < 3)
    assert np.abs(got[inside] - src[inside]).max() <= 0.5e-4 + 1e-7
    np.testing.assert_allclose(
        got[:, :, -1][~np.isnan(src[:, :, -1])], 3.2767, rtol=1e-6
    )  # clipped


def test_sensor_geometry_round_trip(
    tmp_path: Path, make_sensor_dataset: Callable[..., xr.Dataset]
) -> None:
    ds = make_sensor_dataset()
    url = write_cube(ds, tmp_path / "emit.zarr", attrs=ATTRS, chunks=16, shards=16)
    cube = open_cube(url)
    assert cube.reflectance.dims == ("band", "line", "sample")
    np.testing.assert_array_equal(cube.reflectance.values, ds.reflectance.values)
    for name in ("glt_x", "glt_y"):
        assert cube[name].dtype == np.int32  # never float/NaN
        np.testing.assert_array_equal(cube[name].values, ds[name].values)
        assert cube[name].attrs["proj:code"] == "EPSG:4326"
        gt = ds.attrs["geotransform"]
        assert cube[name].attrs["spatial:transform"] == [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]]
        assert cube[name].attrs["spatial:dimensions"] == ["ortho_y", "ortho_x"]
    assert cube.attrs["geotransform"] == list(ds.attrs["geotransform"])
    assert cube.attrs["ortho_crs"] == "EPSG:4326"
    assert "spatial_ref" not in cube.coords and cube.rio.crs is None  # the raw grid has no CRS
    assert "proj:code" not in cube.attrs
    assert set(cube.attrs["spectraflow_write"]["grids"]) == {"line_sample", "ortho_y_ortho_x"}


def test_bad_inputs(tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]) -> None:
    ds = make_map_dataset()
    with pytest.raises(ConfigError, match="encoding dtype"):
        write_cube(ds, tmp_path / "a.zarr", encoding_dtype="float16")
    with pytest.raises(ConfigError, match="multiple"):
        write_cube(ds, tmp_path / "a.zarr", chunks=16, shards=40)
    with pytest.raises(CubeError, match="no CRS"):
        write_cube(ds.drop_vars("spatial_ref"), tmp_path / "a.zarr")
    irregular = ds.assign_coords(x=ds.x.values + np.where(np.arange(ds.sizes["x"]) > 30, 7.0, 0.0))
    with pytest.raises(CubeError, match="pixel centres"):
        write_cube(irregular, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()  # bad input leaves nothing behind
