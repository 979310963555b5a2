"""The simulated EMIT L2A granule against the real product's layout (DMR++ and UMM-G)."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import netCDF4
import numpy as np
import pystac
import pystac.validation
import pytest
from scipy import ndimage

from spectraflow.sensors.absorption import CH4_LEVELS_PPM_M, ch4_log_transmittance
from spectraflow.sensors.emit import MASK_BANDS, WATER_VAPOUR_NM, emit_band_table
from spectraflow.simulate import emit
from spectraflow.simulate.emit_geometry import OrthoGrid
from spectraflow.simulate.scene import SimulatedScene, simulate_scene
from spectraflow.simulate.world import PRESETS

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data" / "emit"
DMRPP = REAL / "EMIT_L2A_RFL_001_20230316T045133_2307503_005.nc.dmrpp"
UMMG = REAL / "EMIT_L2A_RFL_001_20230316T045133_2307503_005.cmr.json"
DAP = "{http://xml.opendap.org/ns/DAP/4.0#}"
DMRPP_NS = "{http://xml.opendap.org/dap/dmrpp/1.0.0#}"
DAP_TYPES = {
    "Float32": np.float32,
    "Float64": np.float64,
    "Int32": np.int32,
    "Byte": np.uint8,
    "String": str,
}
# Seed 1 over the default region has a 2 m/s wind: a strong plume from the central source.
SEED = 1
# Seed 0 has clouds in the tiny scene (seed 1 has none).
CLOUDY_SEED = 0


# --- the real layout -------------------------------------------------------------------------


def _dap_attrs(node: ET.Element) -> dict[str, tuple[str, list[str]]]:
    return {
        a.get("name", ""): (a.get("type", ""), [v.text or "" for v in a.findall(f"{DAP}Value")])
        for a in node.findall(f"{DAP}Attribute")
    }


def _dmrpp() -> dict[str, Any]:
    root = ET.parse(DMRPP).getroot()
    variables: dict[str, dict[str, Any]] = {}

    def walk(node: ET.Element, prefix: str) -> None:
        for child in node:
            tag = child.tag.removeprefix(DAP)
            if tag == "Group":
                walk(child, f"{prefix}{child.get('name')}/")
            elif tag in DAP_TYPES:
                chunks = child.find(f"{DMRPP_NS}chunks")
                assert chunks is not None
                sizes = chunks.find(f"{DMRPP_NS}chunkDimensionSizes")
                variables[prefix + child.get("name", "")] = {
                    "type": tag,
                    "dims": [d.get("name", "").lstrip("/") for d in child.findall(f"{DAP}Dim")],
                    "attrs": _dap_attrs(child),
                    "compression": chunks.get("compressionType"),
                    "chunks": None if sizes is None else tuple(int(v) for v in sizes.text.split()),
                }

    walk(root, "")
    dims = {d.get("name", ""): int(d.get("size", "0")) for d in root.findall(f"{DAP}Dimension")}
    groups = {g.get("name") for g in root.findall(f"{DAP}Group")}
    # build_dmrpp_metadata is added by the DMR++ builder, not stored in the netCDF file.
    attrs = {k: v for k, v in _dap_attrs(root).items() if v[0] != "Container"}
    return {"dims": dims, "groups": groups, "variables": variables, "attrs": attrs}


REAL_RFL = _dmrpp()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SimulatedScene:
    return simulate_scene("emit", out=tmp_path_factory.mktemp("emit"), size="tiny", seed=SEED)


@pytest.fixture(scope="module")
def cloudy(tmp_path_factory: pytest.TempPathFactory) -> SimulatedScene:
    return simulate_scene(
        "emit", out=tmp_path_factory.mktemp("cloudy"), size="tiny", seed=CLOUDY_SEED
    )


def _read_mask(scene: SimulatedScene) -> np.ndarray:
    with netCDF4.Dataset(scene.files["mask"]) as ds:
        return np.asarray(ds["mask"][:])


def _read_truth(scene: SimulatedScene) -> dict[str, np.ndarray]:
    with netCDF4.Dataset(scene.truth["sensor_geometry"]) as ds:
        return {k: np.asarray(ds[k][:]) for k in ("classes", "ch4_ppm_m", "cloud")}


@pytest.fixture(scope="module")
def rfl(scene: SimulatedScene) -> dict[str, Any]:
    with netCDF4.Dataset(scene.files["reflectance"]) as ds:
        return {
            "reflectance": np.asarray(ds["reflectance"][:]),
            "good": np.asarray(ds["sensor_band_parameters/good_wavelengths"][:]),
            "wavelengths": np.asarray(ds["sensor_band_parameters/wavelengths"][:]),
            "lon": np.asarray(ds["location/lon"][:]),
            "lat": np.asarray(ds["location/lat"][:]),
            "glt_x": ds["location/glt_x"][:],
            "glt_y": ds["location/glt_y"][:],
            "geotransform": np.asarray(ds.getncattr("geotransform")),
        }


@pytest.fixture(scope="module")
def mask(scene: SimulatedScene) -> np.ndarray:
    return _read_mask(scene)


@pytest.fixture(scope="module")
def truth(scene: SimulatedScene) -> dict[str, np.ndarray]:
    return _read_truth(scene)


# --- identifiers -----------------------------------------------------------------------------


def test_scene_id_follows_the_granule_ur_and_orbit_of_the_real_granule():
    when = datetime(2023, 3, 16, 4, 51, 33)
    granule = emit.scene_id(when, PRESETS["permian"], 0)
    assert granule.startswith("EMIT_L2A_RFL_001_20230316T045133_2307503_")
    assert len(granule.split("_")[-1]) == 3
    # One day later the ISS has flown about 15.5 more orbits.
    later = emit.scene_id(datetime(2023, 3, 17, 4, 51, 33), PRESETS["permian"], 0)
    assert int(later.split("_")[-2][2:]) - 7503 in (15, 16)


def test_default_chunking_matches_the_real_glt():
    glt = REAL_RFL["variables"]["location/glt_x"]
    shape = (REAL_RFL["dims"]["ortho_y"], REAL_RFL["dims"]["ortho_x"])
    assert emit._chunks(shape, 4) == glt["chunks"] == (849, 1109)


def test_geotransform_corner_convention_of_the_real_file():
    attrs = REAL_RFL["attrs"]
    gt = [float(v) for v in attrs["geotransform"][1]]
    grid = OrthoGrid(gt[0], gt[3], REAL_RFL["dims"]["ortho_y"], REAL_RFL["dims"]["ortho_x"])
    assert grid.geotransform == pytest.approx(gt)
    assert grid.east == pytest.approx(float(attrs["easternmost_longitude"][1][0]), abs=1e-9)
    assert grid.south == pytest.approx(float(attrs["southernmost_latitude"][1][0]), abs=1e-9)


# --- the RFL file against the real DMR++ -----------------------------------------------------


def _check_layout(dims: dict[str, int], groups: set[str], variables: dict[str, Any]) -> None:
    assert list(dims) == list(REAL_RFL["dims"])
    assert groups == REAL_RFL["groups"]
    assert set(variables) == set(REAL_RFL["variables"])
    for name, real in REAL_RFL["variables"].items():
        var = variables[name]
        assert list(var["dims"]) == real["dims"], name
        assert np.dtype(var["dtype"]) == np.dtype(DAP_TYPES[real["type"]]), name
        assert set(var["attrs"]) == set(real["attrs"]), name
        fill_type, fill = real["attrs"]["_FillValue"]
        assert np.dtype(type(var["attrs"]["_FillValue"])) == np.dtype(DAP_TYPES[fill_type])
        assert float(var["attrs"]["_FillValue"]) == float(fill[0]), name
        for key, (_, values) in real["attrs"].items():
            if key != "_FillValue":
                assert isinstance(var["attrs"][key], str), (name, key)
                assert var["attrs"][key] == values[0], (name, key)


def test_rfl_layout_as_read_by_netcdf4_matches_the_dmrpp(scene: SimulatedScene):
    with netCDF4.Dataset(scene.files["reflectance"]) as ds:
        variables = {}
        for group in (ds, *ds.groups.values()):
            prefix = "" if group is ds else f"{group.name}/"
            for name, v in group.variables.items():
                attrs = {k: v.getncattr(k) for k in v.ncattrs()}
                attrs["_FillValue"] = np.asarray(attrs["_FillValue"]).reshape(())[()]
                variables[prefix + name] = {"dims": v.dimensions, "dtype": v.dtype, "attrs": attrs}
        dims = {k: len(d) for k, d in ds.dimensions.items()}
        _check_layout(dims, set(ds.groups), variables)
        assert set(ds.ncattrs()) == set(REAL_RFL["attrs"])
        for key, (dap_type, values) in REAL_RFL["attrs"].items():
            value = ds.getncattr(key)
            if dap_type == "String":
                assert isinstance(value, str), key
            else:
                assert np.asarray(value).dtype == np.float64, key
                assert np.asarray(value).size == len(values), key


def test_rfl_layout_as_read_by_h5netcdf_matches_the_dmrpp(scene: SimulatedScene):
    with h5netcdf.File(scene.files["reflectance"], "r") as f:
        variables = {}
        for group in (f, *f.groups.values()):
            prefix = "" if group is f else f"{group.name.strip('/')}/"
            for name, v in group.variables.items():
                attrs = dict(v.attrs)
                variables[prefix + name] = {"dims": v.dimensions, "dtype": v.dtype, "attrs": attrs}
        dims = {k: d.size for k, d in f.dimensions.items()}
        _check_layout(dims, set(f.groups), variables)
        assert set(f.attrs) == set(REAL_RFL["attrs"])


def test_storage_matches_the_dmrpp(scene: SimulatedScene, rfl: dict[str, Any]):
    with h5py.File(scene.files["reflectance"], "r") as f:
        for name, real in REAL_RFL["variables"].items():
            dset = f[name]
            if real["compression"] is None:
                assert dset.chunks is None and dset.compression is None, name
            else:
                assert real["compression"] == "shuffle deflate"
                assert dset.chunks is not None and dset.shuffle and dset.compression == "gzip"
        # Contiguous BIP: the raw bytes at the dataset's offset are the C-order array, bands
        # fastest, so a spatial subset is a set of byte ranges.
        dset = f["reflectance"]
        offset, nbytes = dset.id.get_offset(), dset.id.get_storage_size()
    data = rfl["reflectance"]
    assert nbytes == data.nbytes
    with scene.files["reflectance"].open("rb") as fh:
        fh.seek(offset)
        raw = np.frombuffer(fh.read(nbytes), dtype="<f4").reshape(data.shape)
    np.testing.assert_array_equal(raw, data)


def test_bands_and_bad_band_values(rfl: dict[str, Any]):
    wl, good, refl = rfl["wavelengths"], rfl["good"], rfl["reflectance"]
    assert wl.shape == (285,) and refl.shape[-1] == 285
    assert 380.0 < wl[0] < 382.0 and 2492.0 < wl[-1] < 2494.0
    assert set(np.unique(good)) == {0, 1}
    is_bad_value = refl == np.float32(-0.1)
    assert np.array_equal(is_bad_value.all(axis=(0, 1)), good == 0)
    assert not is_bad_value[..., good == 1].any()
    in_window = np.zeros(wl.shape, dtype=bool)
    for lo, hi in WATER_VAPOUR_NM:
        assert np.any((good == 0) & (wl > lo) & (wl < hi))
        in_window |= (wl >= lo) & (wl <= hi)
    assert np.all(in_window[good == 0])
    valid = refl[..., good == 1]
    assert 0.0 < np.median(valid) < 0.6 and valid.max() < 1.5


def test_glt_orthorectifies_lat_lon_onto_the_ortho_grid(rfl: dict[str, Any]):
    glt_x, glt_y = rfl["glt_x"], rfl["glt_y"]
    assert glt_x.dtype == np.int32 and glt_y.dtype == np.int32
    assert np.ma.count_masked(glt_x) == 0  # no -9999 anywhere: 0 marks no data
    glt_x, glt_y = np.asarray(glt_x), np.asarray(glt_y)
    lines, samples = rfl["lon"].shape
    valid = glt_x > 0
    assert np.array_equal(valid, glt_y > 0)
    assert 0.3 < valid.mean() < 0.9  # a rotated swath leaves the grid's corners empty
    assert glt_x[valid].min() == 1 and glt_x.max() == samples
    assert glt_y[valid].min() == 1 and glt_y.max() == lines
    west, res, _, north, _, neg_res = rfl["geotransform"]
    assert neg_res == -res
    rows, cols = np.nonzero(valid)
    lon = rfl["lon"][glt_y[valid] - 1, glt_x[valid] - 1]
    lat = rfl["lat"][glt_y[valid] - 1, glt_x[valid] - 1]
    # Errors in ortho pixels against the centres of an upper-left-corner geotransform: under
    # one pixel everywhere and unbiased (a centre convention would be off by half a pixel).
    dx = (lon - (west + (cols + 0.5) * res)) / res
    dy = (lat - (north - (rows + 0.5) * res)) / res
    assert np.abs(dx).max() < 1.0 and np.abs(dy).max() < 1.0
    assert abs(dx.mean()) < 0.1 and abs(dy.mean()) < 0.1


def test_mask_file_layout_and_flags(scene: SimulatedScene, mask: np.ndarray, truth: dict):
    with netCDF4.Dataset(scene.files["mask"]) as ds:
        assert list(ds.dimensions) == [*REAL_RFL["dims"], "packed_wavelength_bands"]
        assert len(ds.dimensions["bands"]) == 8
        assert len(ds.dimensions["packed_wavelength_bands"]) == 36
        assert set(ds.variables) == {"mask", "band_mask"}
        assert set(ds.groups) == {"sensor_band_parameters", "location"}
        assert list(ds["sensor_band_parameters/mask_bands"][:]) == list(MASK_BANDS)
        assert ds["mask"].dimensions == ("downtrack", "crosstrack", "bands")
        assert ds["mask"].dtype == np.float32 and ds["mask"].getncattr("_FillValue") == -9999
        band_mask = ds["band_mask"]
        assert band_mask.dtype == np.uint8
        assert band_mask.dimensions == ("downtrack", "crosstrack", "packed_wavelength_bands")
        bits = np.unpackbits(np.asarray(band_mask[:]), axis=-1)[..., :285]
        assert 0 < bits.mean() < 0.01  # a few interpolated detector elements
        assert set(ds["location"].variables) == {"lon", "lat", "elev", "glt_x", "glt_y"}
    _check_mask_flags(mask, truth)


def test_mask_flags_clouds_and_their_buffer(cloudy: SimulatedScene):
    mask, truth = _read_mask(cloudy), _read_truth(cloudy)
    _check_mask_flags(mask, truth)
    cloud, dilated = mask[..., 0], mask[..., 4]
    assert cloud.sum() > 50
    assert np.all(dilated[cloud == 1] == 1) and dilated.sum() > 2 * cloud.sum()
    item = json.loads(cloudy.item_path.read_text())
    assert item["properties"]["eo:cloud_cover"] == round(100 * float(cloud.mean())) > 0


def _check_mask_flags(mask: np.ndarray, truth: dict[str, np.ndarray]) -> None:
    assert set(np.unique(mask[..., [0, 1, 2, 3, 4, 7]])) <= {0.0, 1.0}
    cloud, cirrus, water, spacecraft, dilated, aod, h2o, aggregate = np.moveaxis(mask, -1, 0)
    assert not cirrus.any() and not spacecraft.any()
    assert np.array_equal(cloud == 1, truth["cloud"] == 1)
    assert np.array_equal(aggregate == 1, (cloud + cirrus + water + spacecraft + dilated) > 0)
    assert water.any() and np.mean((water == 1) == (truth["classes"] == 1)) > 0.95
    assert aod.min() >= 0.02 and aod.max() < 0.3
    assert h2o.min() >= 0.2 and h2o.max() < 5.0


# --- catalog records -------------------------------------------------------------------------


def test_stac_item_is_shaped_like_cmr_stac_and_validates(scene: SimulatedScene, mask: np.ndarray):
    d = json.loads(scene.item_path.read_text())
    assert d["id"] == scene.id and d["collection"] == "EMITL2ARFL_001" == scene.collection
    assert scene.provider == "cmr-stac"
    assert set(d["properties"]) == {"datetime", "start_datetime", "end_datetime", "eo:cloud_cover"}
    assert d["properties"]["eo:cloud_cover"] == round(100 * float(mask[..., 0].mean()))
    links = {link["rel"]: link["href"] for link in d["links"]}
    assert links["self"].startswith("https://cmr.earthdata.nasa.gov/stac/LPCLOUD/collections/")
    assert {"parent", "collection", "root"} <= set(links)
    names = {k: p.name for k, p in scene.files.items()}
    assert set(d["assets"]) == {
        Path(names["reflectance"]).stem,
        Path(names["uncertainty"]).stem,
        Path(names["mask"]).stem,
        "browse",
        "metadata",
    }
    for key, asset in d["assets"].items():
        assert Path(asset["href"]).is_absolute() and Path(asset["href"]).exists(), key
        role = key if key in ("browse", "metadata") else "data"
        assert asset["roles"] == [role]
    ring = np.array(d["geometry"]["coordinates"][0])
    assert ring.shape == (5, 2) and np.array_equal(ring[0], ring[-1])
    x, y = ring[:-1].T
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # counter-clockwise
    assert d["bbox"] == [x.min(), y.min(), x.max(), y.max()]
    # pystac ships the core schemas only; the eo extension schema would be fetched from the
    # network, so validate the core schema offline. stac-validator always fetches its schemas.
    core = pystac.Item.from_dict(d).to_dict(transform_hrefs=False)
    core["stac_extensions"] = []
    pystac.validation.validate_dict(core)


def test_ummg_record_has_the_real_keys_sizes_and_checksums(scene: SimulatedScene):
    real = json.loads(UMMG.read_text())
    ours = json.loads(scene.files["metadata"].read_text())
    assert list(ours) == list(real)
    assert [a["Name"] for a in ours["AdditionalAttributes"]] == [
        a["Name"] for a in real["AdditionalAttributes"]
    ]
    attrs = {a["Name"]: a["Values"][0] for a in ours["AdditionalAttributes"]}
    assert attrs["ORBIT"] == scene.id.split("_")[-2]
    assert int(attrs["SCENE"]) == int(scene.id.split("_")[-1])
    assert 0.0 <= float(attrs["SOLAR_ZENITH"]) < 90.0
    assert ours["GranuleUR"] == scene.id
    archive = ours["DataGranule"]["ArchiveAndDistributionInformation"]
    assert [a["Name"] for a in archive] == [
        scene.files[k].name for k in ("reflectance", "uncertainty", "mask", "browse")
    ]
    for entry in archive:
        path = scene.directory / entry["Name"]
        assert entry["SizeInBytes"] == path.stat().st_size
        assert entry["Checksum"]["Value"] == hashlib.sha512(path.read_bytes()).hexdigest()
    points = ours["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]["GPolygons"][0]
    assert len(points["Boundary"]["Points"]) == 5
    assert isinstance(ours["CloudCover"], int)


def test_truth_rasters_sit_on_the_ortho_grid(scene: SimulatedScene, rfl: dict, truth: dict):
    import rasterio

    assert set(scene.truth) == {"classes", "ch4", "cloud", "sensor_geometry"}
    valid = np.asarray(rfl["glt_x"]) > 0
    with rasterio.open(scene.truth["classes"]) as src:
        assert src.crs.to_epsg() == 4326
        assert src.transform.to_gdal() == pytest.approx(tuple(rfl["geotransform"]))
        classes = src.read(1)
    assert classes.shape == valid.shape
    assert np.array_equal(classes > 0, valid)
    gx, gy = np.asarray(rfl["glt_x"])[valid] - 1, np.asarray(rfl["glt_y"])[valid] - 1
    assert np.array_equal(classes[valid], truth["classes"][gy, gx])
    with rasterio.open(scene.truth["ch4"]) as src:
        ch4 = src.read(1)
    assert np.isnan(ch4[~valid]).all() and np.array_equal(ch4[valid], truth["ch4_ppm_m"][gy, gx])


# --- reproducibility -------------------------------------------------------------------------


def _digests(directory: Path) -> dict[str, str]:
    out = {}
    for path in sorted(directory.iterdir()):
        data = path.read_bytes()
        if path.suffix == ".json" and not path.name.endswith(".cmr.json"):
            data = data.replace(str(directory).encode(), b"<dir>")  # the item's local hrefs
        out[path.name] = hashlib.sha256(data).hexdigest()
    return out


def test_same_seed_gives_identical_bytes(scene: SimulatedScene, tmp_path: Path):
    a = simulate_scene("emit", out=tmp_path / "a", size="tiny", seed=SEED)
    assert _digests(a.directory) == _digests(scene.directory)
    assert len(_digests(a.directory)) == 10


def test_different_seed_gives_different_reflectance(rfl: dict[str, Any], cloudy: SimulatedScene):
    with netCDF4.Dataset(cloudy.files["reflectance"]) as ds:
        refl = np.asarray(ds["reflectance"][:])
    good = rfl["good"] == 1
    assert refl.shape == rfl["reflectance"].shape
    assert np.mean(np.abs(refl[..., good] - rfl["reflectance"][..., good])) > 0.01


# --- the methane plume is retrievable --------------------------------------------------------


def test_matched_filter_retrieves_the_plume(rfl: dict, mask: np.ndarray, truth: dict):
    """A classical matched filter (scene mean and covariance) sees the simulated plume."""
    good = rfl["good"] == 1
    x = rfl["reflectance"][..., good].astype(np.float64)
    clear = mask[..., 7] == 0  # the product's aggregate flag: no cloud, buffer or water
    log_t = ch4_log_transmittance(emit_band_table())
    levels = CH4_LEVELS_PPM_M[:4]
    unit = (levels @ log_t[:4]) / (levels @ levels)  # d log(reflectance) / d ppm m
    mean = x[clear].mean(axis=0)
    cov = np.cov(x[clear], rowvar=False)
    cov += np.eye(len(cov)) * 1e-6 * np.trace(cov) / len(cov)
    target = mean * unit[good]
    w = np.linalg.solve(cov, target)
    mf = ((x - mean) @ w) / (target @ w)  # ppm m

    ch4 = truth["ch4_ppm_m"]
    plume, background = (ch4 > 500) & clear, (ch4 < 50) & clear
    assert plume.sum() >= 50
    assert np.corrcoef(mf[clear], ch4[clear])[0, 1] > 0.5
    near = ndimage.binary_dilation(ch4 > 100, iterations=5) & clear
    assert np.corrcoef(mf[near], ch4[near])[0, 1] > 0.6
    assert np.median(mf[plume]) > np.quantile(mf[background], 0.9)
    slope = np.polyfit(ch4[clear], mf[clear], 1)[0]
    assert 0.5 < slope < 1.5  # in ppm m: the signal has the simulated strength
