from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import h5py
import netCDF4
import numpy as np
import pystac
import pytest
from affine import Affine

from spectraflow.catalog import Scene, scene_from_item
from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.bands import BandTable
from spectraflow.sensors.emit import _LazyVariable, _variable, open_emit
from spectraflow.sensors.glt import orthorectify
from spectraflow.simulate import simulate_scene

FILL = -9999.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    sim = simulate_scene("emit", out=tmp_path_factory.mktemp("emit"), size="tiny")
    return scene_from_item(pystac.Item.from_file(str(sim.item_path)))


def copy_scene(scene: Scene, tmp_path: Path, *roles: str) -> Scene:
    """The scene with the files of ``roles`` copied into ``tmp_path`` (to modify them)."""
    assets = dict(scene.assets)
    for role in roles:
        assets[role] = str(shutil.copy(scene.assets[role], tmp_path))
    return scene.model_copy(update={"assets": assets})


def raw_netcdf(path: str, name: str) -> np.ndarray:
    """A variable as stored: no masking, no scaling."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        return np.asarray(nc[name][:])


def test_reflectance_and_bands_match_the_file(scene: Scene) -> None:
    ds = open_emit(scene, chunks=16)
    stored = raw_netcdf(scene.assets["data"], "reflectance")  # (downtrack, crosstrack, bands)
    refl = ds.reflectance
    assert refl.dims == ("band", "line", "sample")
    assert refl.dtype == np.float32
    assert refl.shape == (285, 48, 40)
    assert refl.chunks == ((285,), (16, 16, 16), (16, 16, 8))
    expected = np.where(stored == FILL, np.nan, stored).transpose(2, 0, 1)
    np.testing.assert_array_equal(refl.values, expected)

    wl = raw_netcdf(scene.assets["data"], "sensor_band_parameters/wavelengths")
    fwhm = raw_netcdf(scene.assets["data"], "sensor_band_parameters/fwhm")
    good = raw_netcdf(scene.assets["data"], "sensor_band_parameters/good_wavelengths")
    assert ds.wavelength.dtype == np.float64
    np.testing.assert_array_equal(ds.wavelength.values, wl.astype(np.float64))
    np.testing.assert_array_equal(ds.fwhm.values, fwhm.astype(np.float64))
    np.testing.assert_array_equal(ds.good_band.values, good == 1)
    assert list(ds.band.values) == list(scene.bands.name)
    # Water-vapour bands are flagged bad and keep their stored -0.1.
    bad = ~ds.good_band.values
    assert 0 < bad.sum() < 285
    assert np.all((ds.wavelength[bad] > 1300) & (ds.wavelength[bad] < 2000))
    np.testing.assert_array_equal(refl.values[bad], np.float32(-0.1))


def test_fill_pixels_mask_layers_and_valid_rule(scene: Scene, tmp_path: Path) -> None:
    scene = copy_scene(scene, tmp_path, "data", "mask")
    with h5py.File(scene.assets["data"], "r+") as f:
        f["reflectance"][3, 4:9, :] = FILL  # a run of fill pixels
        f["reflectance"][40, 0, :] = FILL
    with h5py.File(scene.assets["mask"], "r+") as f:
        mask = f["mask"][()]
        mask[10:12, :, 1] = 1.0  # cirrus
        mask[20, 5:10, 3] = 1.0  # spacecraft
        mask[30:33, 30:33, 2] = 1.0  # water only: stays valid
        mask[30:33, 30:33, :2] = 0.0
        mask[30:33, 30:33, 3:5] = 0.0
        mask[45, 7, :] = FILL
        f["mask"][...] = mask

    ds = open_emit(scene, chunks=16).compute()
    refl = raw_netcdf(scene.assets["data"], "reflectance")
    good = raw_netcdf(scene.assets["data"], "sensor_band_parameters/good_wavelengths") == 1
    present = (refl[..., good] != FILL).any(axis=-1)
    flagged = (mask[..., 0] == 1) | (mask[..., 1] == 1) | (mask[..., 3] == 1)
    expected = present & ~flagged
    assert ds.valid.dtype == bool
    np.testing.assert_array_equal(ds.valid.values, expected)
    # The cases the rule must cover all occur.
    assert not ds.valid[3, 5] and not ds.valid[10, 0] and not ds.valid[20, 6]
    assert ds.valid[30:33, 30:33].all() and (ds.water[30:33, 30:33] == 1).all()
    assert (mask[..., 0] == 1).any() and expected.any()
    assert np.isnan(ds.reflectance.values[:, 3, 4:9]).all()

    names = [
        "cloud",
        "cirrus",
        "water",
        "spacecraft",
        "dilated_cloud",
        "aod550",
        "h2o",
        "aggregate",
    ]
    for k, name in enumerate(names):
        layer = mask[..., k]
        if name in ("aod550", "h2o"):
            assert ds[name].dtype == np.float32
            np.testing.assert_array_equal(ds[name].values, np.where(layer == FILL, np.nan, layer))
        else:
            assert ds[name].dtype == np.uint8
            np.testing.assert_array_equal(ds[name].values, np.where(layer == FILL, 255, layer))
    assert ds.cloud[45, 7] == 255 and np.isnan(ds.h2o[45, 7])


def test_glt_stays_integer(scene: Scene, tmp_path: Path) -> None:
    with netCDF4.Dataset(scene.assets["data"]) as nc:
        assert nc["location/glt_x"]._FillValue == -9999  # the old files' trap
    ds = open_emit(scene, chunks=16)
    for name in ("glt_x", "glt_y"):
        stored = raw_netcdf(scene.assets["data"], f"location/{name}")
        assert ds[name].dtype == np.int32
        assert ds[name].dims == ("ortho_y", "ortho_x")
        np.testing.assert_array_equal(ds[name].values, stored)
        assert (stored == 0).any() and stored.max() > 1

    # A literal -9999 in the table also reads as 0 = no data.
    scene = copy_scene(scene, tmp_path, "data")
    with h5py.File(scene.assets["data"], "r+") as f:
        f["location/glt_x"][0, :5] = -9999
    glt_x = open_emit(scene).glt_x.values
    assert glt_x.dtype == np.int32 and (glt_x[0, :5] == 0).all()


def test_georeferencing_and_attributes(scene: Scene) -> None:
    ds = open_emit(scene)
    with h5py.File(scene.assets["data"]) as f:
        gt = [float(v) for v in f.attrs["geotransform"]]
        ortho_shape = f["location/glt_x"].shape
    assert ds.attrs["geotransform"] == gt
    assert ds.attrs["ortho_crs"] == "EPSG:4326"
    assert ds.rio.crs.to_epsg() == 4326
    assert ds.rio.transform() == Affine.from_gdal(*gt)
    assert (ds.sizes["ortho_y"], ds.sizes["ortho_x"]) == ortho_shape
    assert ds.ortho_x.values[0] == pytest.approx(gt[0] + gt[1] / 2, abs=1e-12)
    assert ds.ortho_y.values[-1] == pytest.approx(gt[3] + (ortho_shape[0] - 0.5) * gt[5], abs=1e-12)
    assert ds.attrs["sensor"] == "emit"
    assert ds.attrs["scene_id"] == scene.id
    assert ds.attrs["source"] == {k: scene.assets[k] for k in ("data", "mask", "uncertainty")}
    assert "cirrus" in ds.attrs["notes"]


def test_orthorectify_the_reader_output(scene: Scene) -> None:
    ds = open_emit(scene, chunks=16)
    ortho = orthorectify(ds, ds.glt_x, ds.glt_y)
    assert ortho.reflectance.dims == ("band", "ortho_y", "ortho_x")
    assert ortho.reflectance.chunks is not None  # still lazy
    assert ortho.rio.crs.to_epsg() == 4326 and ortho.rio.transform() == ds.rio.transform()
    gx = raw_netcdf(scene.assets["data"], "location/glt_x")
    gy = raw_netcdf(scene.assets["data"], "location/glt_y")
    stored = raw_netcdf(scene.assets["data"], "reflectance")
    cloud = raw_netcdf(scene.assets["mask"], "mask")[..., 0]
    refl, flags = ortho.reflectance.values, ortho.cloud.values
    assert ((gx == 0) | (gy == 0)).any()
    for row, col in np.ndindex(gx.shape):
        x, y = gx[row, col], gy[row, col]
        if x == 0 or y == 0:
            assert np.isnan(refl[:, row, col]).all() and flags[row, col] == 255
        else:
            np.testing.assert_array_equal(refl[:, row, col], stored[y - 1, x - 1])
            assert flags[row, col] == cloud[y - 1, x - 1]


def test_uncertainty_is_optional(scene: Scene) -> None:
    ds = open_emit(scene, chunks=16)
    stored = raw_netcdf(scene.assets["uncertainty"], "reflectance_uncertainty")
    assert ds.reflectance_uncertainty.dims == ("band", "line", "sample")
    np.testing.assert_array_equal(ds.reflectance_uncertainty.values, stored.transpose(2, 0, 1))
    assets = {k: v for k, v in scene.assets.items() if k != "uncertainty"}
    without = open_emit(scene.model_copy(update={"assets": assets}))
    assert "reflectance_uncertainty" not in without
    assert "uncertainty" not in without.attrs["source"]


def getters(array: Any) -> list[_LazyVariable]:
    return [v for v in dict(array.__dask_graph__()).values() if isinstance(v, _LazyVariable)]


def test_reads_only_the_chunk_it_computes(scene: Scene) -> None:
    ds = open_emit(scene, chunks=8)
    refl = ds.reflectance.data
    assert refl.numblocks == (1, 6, 5)
    (getter,) = getters(refl)
    assert getter.name == "reflectance" and getter.offset is not None  # byte-range reads
    assert getter.calls == 0  # opening read no pixel
    with dask.config.set(scheduler="sync"):
        block = refl.blocks[0, 2, 1].compute()
    assert getter.calls == 1
    assert getter.elements_read == 285 * 8 * 8 < 285 * 48 * 40
    stored = raw_netcdf(scene.assets["data"], "reflectance")[16:24, 8:16]
    np.testing.assert_array_equal(block, stored.transpose(2, 0, 1))


def test_graph_pickles_and_runs_in_other_processes(scene: Scene) -> None:
    ds = pickle.loads(pickle.dumps(open_emit(scene, chunks=16)))
    with dask.config.set(scheduler="processes", num_workers=2):
        valid, refl = dask.compute(ds.valid.data, ds.reflectance.data[:, 20:30, 5:35])
    expected = open_emit(scene, chunks=16)
    np.testing.assert_array_equal(valid, expected.valid.values)
    np.testing.assert_array_equal(refl, expected.reflectance.values[:, 20:30, 5:35])


@pytest.mark.parametrize("contiguous", [True, False])
def test_getter_selections(scene: Scene, contiguous: bool) -> None:
    href = scene.assets["data"]
    with h5py.File(href) as f:
        stored = f["reflectance"][()]
        var = _variable(f, href, "reflectance", ndim=3)
    if not contiguous:  # the h5py path used for chunked variables and remote files
        var = _LazyVariable(href, var.name, var.shape, var.dtype, offset=None, fill=var.fill)
    keys: list[Any] = [
        np.s_[:],
        np.s_[3:9, 5:7, 10:20],
        np.s_[3, :, 100],
        np.s_[::-3, 2:30:4, ::7],
        np.s_[..., 5],
        np.s_[[4, 1, 1], 3:5],
        np.s_[10:2],
        np.s_[-5:, -3],
    ]
    for key in keys:
        np.testing.assert_array_equal(var[key], stored[key])


def test_truncated_file(scene: Scene, tmp_path: Path) -> None:
    for role in ("data", "mask"):
        broken = copy_scene(scene, tmp_path, role)
        path = Path(broken.assets[role])
        with path.open("r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
        with pytest.raises(SceneFormatError) as info:
            open_emit(broken)
        assert str(path) in str(info.value)


def test_band_count_differs_from_wavelengths(scene: Scene, tmp_path: Path) -> None:
    broken = copy_scene(scene, tmp_path, "data")
    with h5py.File(broken.assets["data"], "r+") as f:
        wl = f["sensor_band_parameters/wavelengths"][()]
        del f["sensor_band_parameters/wavelengths"]
        f["sensor_band_parameters/wavelengths"] = wl[:-1]
    with pytest.raises(SceneFormatError, match="284 values but reflectance has 285") as info:
        open_emit(broken)
    assert broken.assets["data"] in str(info.value)

    table = BandTable.from_arrays(wl[:-1], np.full(284, 8.5))
    with pytest.raises(SceneFormatError, match="band table has 284"):
        open_emit(scene.model_copy(update={"bands": table}))


def test_missing_assets_files_and_variables(scene: Scene, tmp_path: Path) -> None:
    no_mask = {k: v for k, v in scene.assets.items() if k != "mask"}
    with pytest.raises(SceneFormatError, match="'mask' asset"):
        open_emit(scene.model_copy(update={"assets": no_mask}))
    gone = str(tmp_path / "nowhere.nc")
    with pytest.raises(SceneFormatError, match="file not found") as info:
        open_emit(scene.model_copy(update={"assets": {**scene.assets, "mask": gone}}))
    assert gone in str(info.value)
    broken = copy_scene(scene, tmp_path, "data")
    with h5py.File(broken.assets["data"], "r+") as f:
        del f["location/glt_y"]
    with pytest.raises(SceneFormatError, match="location/glt_y is missing"):
        open_emit(broken)
    with pytest.raises(SceneFormatError, match="EMIT scenes"):
        open_emit(scene.model_copy(update={"sensor": "enmap"}))
    with pytest.raises(ConfigError, match="chunks"):
        open_emit(scene, chunks=0)


@pytest.fixture
def served(scene: Scene, range_server) -> Iterator[str]:
    with range_server(Path(scene.assets["data"]).parent) as url:
        yield url


def test_reads_over_http_range_requests(scene: Scene, served: str) -> None:
    assets = {k: f"{served}/{Path(v).name}" for k, v in scene.assets.items()}
    remote = open_emit(scene.model_copy(update={"assets": assets}), chunks=16)
    (getter,) = getters(remote.reflectance.data)
    assert getter.offset is not None  # byte ranges, not a whole-file download
    local = open_emit(scene, chunks=16)
    for name in ("reflectance", "valid", "cloud", "glt_x", "reflectance_uncertainty"):
        np.testing.assert_array_equal(remote[name].values, local[name].values)
    assert remote.attrs["source"]["data"] == assets["data"]
