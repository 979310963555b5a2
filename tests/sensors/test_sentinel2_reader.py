"""The Sentinel-2 reader against the simulated products of every provider, read with rasterio."""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from distributed.core import error_message
from distributed.protocol.pickle import loads
from rasterio.crs import CRS

from spectraflow.catalog import Scene, scene_from_item
from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.sentinel2 import BANDS, SCL_CLASSES, VALID_SCL, open_sentinel2
from spectraflow.simulate import simulate_scene

PROVIDERS = ("earth-search", "earth-search-l2a", "planetary-computer")
REGION = "-103.2,32.3"  # its tiny scene has a lake, land cover, cloud and cloud shadow
NATIVE = {b.name: b.resolution_m for b in BANDS}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scene]:
    out: dict[str, Scene] = {}
    for provider in PROVIDERS:
        sim = simulate_scene(
            "sentinel2",
            out=tmp_path_factory.mktemp(provider),
            size="tiny",
            region=REGION,
            provider=provider,
        )
        with warnings.catch_warnings():  # pystac's storage-extension migration notice
            warnings.simplefilter("ignore", UserWarning)
            out[provider] = scene_from_item(pystac.Item.from_file(sim.item_path))
    return out


def read(path: str | Path) -> tuple[np.ndarray, rasterio.Affine, CRS]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def onto_grid(data: np.ndarray, pixel: float, res: int, *, average: bool) -> np.ndarray:
    """Block mean of valid (non-NaN) pixels onto a coarser grid, replication onto a finer one."""
    if pixel < res:
        k = round(res / pixel)
        h, w = data.shape
        blocks = data.reshape(h // k, k, w // k, k)
        if not average:  # nearest: GDAL's pick, k // 2 into each block
            return data[k // 2 :: k, k // 2 :: k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
            return np.nanmean(blocks, axis=(1, 3))
    k = round(pixel / res)
    return np.repeat(np.repeat(data, k, axis=0), k, axis=1)


def expected_reflectance(scene: Scene, res: int) -> np.ndarray:
    """DN × scale + offset per band read with rasterio, DN 0 → NaN, then onto the grid."""
    out = []
    for i, name in enumerate(scene.bands.name):
        dn, transform, _ = read(scene.assets[f"data:{name}"])
        refl = np.where(dn == 0, np.nan, dn * scene.bands.scale[i] + scene.bands.offset[i])
        out.append(onto_grid(refl, transform.a, res, average=True))
    return np.stack(out)


def with_file(scene: Scene, role: str, path: Path) -> Scene:
    return scene.model_copy(update={"assets": {**scene.assets, role: str(path)}})


def rewrite(src_path: str, dst: Path, data: np.ndarray, **profile: object) -> Path:
    """A plain tiled GeoTIFF like ``src_path`` holding ``data`` (2-D or bands first)."""
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(src_path) as src:
        meta = src.profile | {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2]}
    with rasterio.open(dst, "w", **(meta | profile)) as out:
        out.write(data)
    return dst


@pytest.mark.parametrize("res", [20, 10])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_reflectance_is_dn_times_scale_plus_offset_on_the_grid(
    scenes: dict[str, Scene], provider: str, res: int
) -> None:
    scene = scenes[provider]
    ds = open_sentinel2(scene, resolution=res, chunks=40)
    refl = ds.reflectance.values
    expected = expected_reflectance(scene, res)
    assert refl.dtype == np.float32
    assert refl.shape == (12, 96 * 20 // res, 96 * 20 // res)
    np.testing.assert_allclose(refl, expected, rtol=1e-6, atol=1e-6)
    # every band's own resolution is reproduced exactly by the grid at that resolution
    native = [i for i, n in enumerate(scene.bands.name) if NATIVE[n] == res]
    for i in native:
        dn, _, _ = read(scene.assets[f"data:{scene.bands.name[i]}"])
        np.testing.assert_allclose(refl[i], dn * scene.bands.scale[i] + scene.bands.offset[i])


def test_the_providers_offsets_give_the_same_reflectance(scenes: dict[str, Scene]) -> None:
    # Collection 1 and Planetary Computer ship shifted DNs (offset -0.1); the legacy Earth
    # Search COGs already had the offset removed (boa_offset_applied): same ground, same values.
    offsets = {p: set(scenes[p].bands.offset) for p in PROVIDERS}
    assert offsets == {
        "earth-search": {-0.1},
        "earth-search-l2a": {0.0},
        "planetary-computer": {-0.1},
    }
    dn_c1, _, _ = read(scenes["earth-search"].assets["data:B04"])
    dn_l2a, _, _ = read(scenes["earth-search-l2a"].assets["data:B04"])
    np.testing.assert_array_equal(dn_c1.astype(int) - dn_l2a, 1000)
    values = [open_sentinel2(scenes[p], resolution=10).reflectance.values for p in PROVIDERS]
    np.testing.assert_allclose(values[2], values[0], atol=1e-6)
    # legacy DNs cannot go below 1 (reflectance 0.0001): compare where they need not
    positive = values[0] >= 1e-4 - 1e-7
    assert positive.mean() > 0.99
    np.testing.assert_allclose(values[1][positive], values[0][positive], atol=1e-6)


@pytest.mark.parametrize(("res", "band"), [(20, "B05"), (10, "B02")])
def test_grid_crs_and_transform_are_the_band_files(
    scenes: dict[str, Scene], res: int, band: str
) -> None:
    scene = scenes["planetary-computer"]
    _, transform, crs = read(scene.assets[f"data:{band}"])
    ds = open_sentinel2(scene, resolution=res)
    assert ds.rio.crs == crs == CRS.from_user_input(scene.crs)
    assert ds.rio.transform() == transform
    assert ds.x.values[0] == transform.c + transform.a / 2
    assert ds.y.values[-1] == transform.f + (ds.sizes["y"] - 0.5) * transform.e
    assert ds.attrs["resolution_m"] == res


@pytest.mark.parametrize("res", [20, 10])
def test_scl_is_nearest_and_valid_follows_it(scenes: dict[str, Scene], res: int) -> None:
    scene = scenes["earth-search"]
    ds = open_sentinel2(scene, resolution=res, chunks=50).compute()
    scl, transform, _ = read(scene.assets["mask"])
    expected_scl = onto_grid(scl, transform.a, res, average=False)
    np.testing.assert_array_equal(ds.scl.values, expected_scl)
    assert ds.scl.dtype == np.uint8
    classes = set(np.unique(expected_scl).tolist())
    assert classes & VALID_SCL and classes - VALID_SCL  # both usable and cloudy pixels
    usable = np.isin(expected_scl, list(VALID_SCL)) & np.isfinite(ds.reflectance.values).all(0)
    np.testing.assert_array_equal(ds.valid.values, usable)
    assert ds.valid.dtype == bool
    assert list(ds.scl.attrs["flag_values"]) == sorted(SCL_CLASSES)


def test_nodata_is_nan_and_blocks_average_their_valid_pixels(
    scenes: dict[str, Scene], tmp_path: Path
) -> None:
    scene = scenes["earth-search"]
    b02, b01 = scene.assets["data:B02"], scene.assets["data:B01"]
    dn02, _, _ = read(b02)
    dn01, _, _ = read(b01)
    dn02 = dn02.copy()
    dn02[0:3, 0:3] = 0  # 10 m: 20 m pixel (0, 0) all nodata, (0, 1) half, (1, 1) one of four
    dn01 = dn01.copy()
    dn01[1, 1] = 0  # 60 m: 3 × 3 grid pixels at 20 m
    scene = with_file(scene, "data:B02", rewrite(b02, tmp_path / "B02.tif", dn02))
    scene = with_file(scene, "data:B01", rewrite(b01, tmp_path / "B01.tif", dn01))
    ds = open_sentinel2(scene, chunks=32).compute()
    blue = ds.reflectance.sel(band="B02").values
    r = dn02 * 1e-4 - 0.1
    assert np.isnan(blue[0, 0])
    np.testing.assert_allclose(blue[0, 1], r[0:2, 3].mean(), rtol=1e-6)
    np.testing.assert_allclose(blue[1, 1], (r[2:4, 2:4].sum() - r[2, 2]) / 3, rtol=1e-6)
    coastal = ds.reflectance.sel(band="B01").values
    assert np.isnan(coastal[3:6, 3:6]).all()
    assert np.isfinite(coastal[:3]).all() and np.isfinite(coastal[6:]).all()
    assert not ds.valid.values[0, 0] and not ds.valid.values[3:6, 3:6].any()
    np.testing.assert_allclose(ds.reflectance.values, expected_reflectance(scene, 20), atol=1e-6)


def test_lazy_chunked_and_picklable(scenes: dict[str, Scene]) -> None:
    ds = open_sentinel2(scenes["earth-search"], chunks=32, resolution=10)
    assert ds.reflectance.data.chunksize == (12, 32, 32)
    assert ds.scl.data.chunksize == (32, 32)
    full = ds.reflectance.values
    clone = pickle.loads(pickle.dumps(ds))
    part = clone.reflectance.isel(band=3, y=slice(30, 70), x=5).values
    np.testing.assert_array_equal(part, full[3, 30:70, 5])
    stepped = ds.reflectance[::-5, 100:3:-7, ::3].values
    np.testing.assert_array_equal(stepped, full[::-5, 100:3:-7, ::3])


def test_coordinates_and_attributes(scenes: dict[str, Scene]) -> None:
    scene = scenes["planetary-computer"]
    ds = open_sentinel2(scene)
    assert list(ds.band.values) == [b.name for b in BANDS]
    np.testing.assert_array_equal(ds.wavelength.values, [b.wavelength_nm for b in BANDS])
    np.testing.assert_array_equal(ds.fwhm.values, [b.fwhm_nm for b in BANDS])
    assert ds.wavelength.dtype == np.float64 and ds.good_band.values.all()
    assert ds.attrs["sensor"] == "sentinel2" and ds.attrs["scene_id"] == scene.id
    assert ds.attrs["source"]["mask"] == scene.assets["mask"]
    assert ds.attrs["source"]["data:B8A"] == scene.assets["data:B8A"]
    assert ds.attrs["offset_check"] == ""


def test_truncated_band_file_is_named(scenes: dict[str, Scene], tmp_path: Path) -> None:
    scene = scenes["earth-search-l2a"]
    data = Path(scene.assets["data:B11"]).read_bytes()
    broken = tmp_path / "B11.tif"
    broken.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SceneFormatError, match="truncated or corrupt") as info:
        open_sentinel2(with_file(scene, "data:B11", broken))
    assert info.value.where == str(broken)


def test_file_truncated_after_open_fails_when_read(
    scenes: dict[str, Scene], tmp_path: Path
) -> None:
    scene = scenes["earth-search"]
    copy = tmp_path / "B8A.tif"
    copy.write_bytes(Path(scene.assets["data:B8A"]).read_bytes())
    ds = open_sentinel2(with_file(scene, "data:B8A", copy))
    copy.write_bytes(copy.read_bytes()[:2000])
    with pytest.raises(SceneFormatError, match="truncated or corrupt") as info:
        ds.reflectance.values  # noqa: B018
    assert info.value.where == str(copy)
    # dask.distributed ships the error back from a worker as it is, file name included
    shipped = loads(error_message(info.value)["exception"].data)
    assert isinstance(shipped, SceneFormatError) and shipped.where == str(copy)


def _shifted(t: Affine) -> Affine:
    return Affine(t.a, 0.0, t.c + 60.0, 0.0, t.e, t.f)


def _coarser(t: Affine, factor: float) -> dict[str, Affine]:
    return {"transform": t @ Affine.scale(factor)}


def _coarser(t: Affine, factor: float) -> dict[str, Affine]:
    return {"transform": t * Affine.scale(factor)}


BROKEN = {  # case: band, (DNs, transform) → (data, profile changes), message
    "fewer rows": ("B03", lambda dn, t: (dn[:191], {}), "191 × 192 pixels of 10 m"),
    "40 m pixels": ("B11", lambda dn, t: (dn[::3, ::3], _coarser(t, 2)), "32 × 32 pixels of 40"),
    "30 m pixels": ("B07", lambda dn, t: (dn[::2, ::2], _coarser(t, 1.5)), "not a multiple"),
    "other CRS": ("B12", lambda dn, t: (dn, {"crs": "EPSG:32614"}), "EPSG:32614"),
    "no CRS": ("B05", lambda dn, t: (dn, {"crs": None}), "has no CRS"),
    "two bands": ("B8A", lambda dn, t: (np.stack([dn, dn]), {"count": 2}), "has 2 bands"),
    "shifted": ("B04", lambda dn, t: (dn, {"transform": _shifted(t)}), "starts at"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_band_file_off_the_grid_is_named(
    scenes: dict[str, Scene], tmp_path: Path, case: str
) -> None:
    band, change, message = BROKEN[case]
    scene = scenes["earth-search"]
    dn, transform, _ = read(scene.assets[f"data:{band}"])
    data, profile = change(dn, transform)
    bad = rewrite(scene.assets[f"data:{band}"], tmp_path / f"{band}.tif", data, **profile)
    with pytest.raises(SceneFormatError, match=message) as info:
        open_sentinel2(with_file(scene, f"data:{band}", bad))
    assert info.value.where == str(bad)


def test_missing_file_and_unknown_or_wrong_item_crs(
    scenes: dict[str, Scene], tmp_path: Path
) -> None:
    scene = scenes["earth-search"]
    gone = tmp_path / "B06.tif"
    with pytest.raises(SceneFormatError, match="cannot open") as info:
        open_sentinel2(with_file(scene, "data:B06", gone))
    assert info.value.where == str(gone)
    with pytest.raises(SceneFormatError, match="item says EPSG:32614") as info:
        open_sentinel2(scene.model_copy(update={"crs": "EPSG:32614"}))
    assert info.value.where is not None and scene.assets["data:B05"] in info.value.where
    with pytest.raises(SceneFormatError, match="unknown CRS"):
        open_sentinel2(scene.model_copy(update={"crs": "EPSG:999999"}))


def test_missing_scl_and_wrong_sensor(scenes: dict[str, Scene]) -> None:
    scene = scenes["earth-search"]
    no_scl = scene.model_copy(
        update={"assets": {k: v for k, v in scene.assets.items() if k != "mask"}}
    )
    with pytest.raises(SceneFormatError, match="'mask'"):
        open_sentinel2(no_scl)
    with pytest.raises(SceneFormatError, match="not Sentinel-2"):
        open_sentinel2(scene.model_copy(update={"sensor": "enmap"}))


@pytest.mark.parametrize("resolution", [60, 30, 0, "20", True])
def test_wrong_resolution_names_the_parameter(scenes: dict[str, Scene], resolution: object) -> None:
    with pytest.raises(ConfigError, match="10 or 20") as info:
        open_sentinel2(scenes["earth-search"], resolution=resolution)  # type: ignore[arg-type]
    assert info.value.where == "resolution"
    assert isinstance(info.value, ValueError)


def test_wrong_chunks_names_the_parameter(scenes: dict[str, Scene]) -> None:
    with pytest.raises(ConfigError) as info:
        open_sentinel2(scenes["earth-search"], chunks=0)
    assert info.value.where == "chunks"


def test_offset_sanity_check_warns_but_keeps_the_data(
    scenes: dict[str, Scene], caplog: pytest.LogCaptureFixture
) -> None:
    # An Earth Search legacy item whose boa_offset_applied flag were wrong: -0.1 on DNs that
    # were already shifted back.
    legacy = scenes["earth-search-l2a"]
    table = legacy.bands.model_copy(update={"offset": (-0.1,) * 12})
    wrong = legacy.model_copy(update={"bands": table})
    with caplog.at_level(logging.WARNING, logger="spectraflow.sensors.sentinel2"):
        ds = open_sentinel2(wrong)
    assert any(legacy.id in r.getMessage() for r in caplog.records)
    assert "boa_offset_applied" in ds.attrs["offset_check"]
    dn, _, _ = read(legacy.assets["data:B05"])
    np.testing.assert_allclose(ds.reflectance.sel(band="B05").values, dn * 1e-4 - 0.1, atol=1e-6)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spectraflow.sensors.sentinel2"):
        ok = [open_sentinel2(scenes[p]) for p in PROVIDERS]
    assert not caplog.records
    assert all(d.attrs["offset_check"] == "" for d in ok)
