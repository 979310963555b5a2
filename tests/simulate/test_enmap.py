"""Simulated EnMAP L2A products against the real DLR patch and the real DLR STAC item."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from pystac.validation import validate_dict
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import Polygon, shape

from spectraflow.simulate import SimulatedScene, simulate_scene
from spectraflow.simulate.world import CLASS_INDEX

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data"
PATCH = REAL / "enmap-l2a-hyspecnet-patch"
REAL_ITEM = next((REAL / "dlr-geoservice").glob("ENMAP_HSI_L2A_*.json"))
# A region whose centre is half lake, and a seed with clouds over it, so that the water and
# cloud layers are exercised even at tiny size.
REGION, SEED = "-108.89,36.40", 0
QL_SUFFIXES = {
    "pixelmask": "QL_PIXELMASK",
    "quality_classes": "QL_QUALITY_CLASSES",
    "quality_cloud": "QL_QUALITY_CLOUD",
    "quality_cloud_shadow": "QL_QUALITY_CLOUDSHADOW",
    "quality_haze": "QL_QUALITY_HAZE",
    "quality_cirrus": "QL_QUALITY_CIRRUS",
    "quality_snow": "QL_QUALITY_SNOW",
    "quality_testflags": "QL_QUALITY_TESTFLAGS",
    "vnir": "QL_VNIR",
    "swir": "QL_SWIR",
}


def real_patch(suffix: str) -> Path:
    return next(PATCH.glob(f"*-{suffix}.TIF"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimulatedScene]:
    out = {}
    for name, seed in (("a", SEED), ("again", SEED), ("other", SEED + 1)):
        out[name] = simulate_scene(
            "enmap", out=tmp_path_factory.mktemp(name), size="tiny", region=REGION, seed=seed
        )
    return out


@pytest.fixture(scope="module")
def scene(scenes: dict[str, SimulatedScene]) -> SimulatedScene:
    return scenes["a"]


@pytest.fixture(scope="module")
def item(scene: SimulatedScene) -> dict[str, Any]:
    return json.loads(scene.item_path.read_text())


@pytest.fixture(scope="module")
def real_item() -> dict[str, Any]:
    return json.loads(REAL_ITEM.read_text())


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_product_name_and_files(scene: SimulatedScene) -> None:
    m = re.fullmatch(
        r"ENMAP01-____L2A-DT(\d{10})_(\d{8}T\d{6})Z_(\d{3})_V010402_(\d{8}T\d{6})Z", scene.id
    )
    assert m, scene.id
    acquired = datetime.strptime(m[2], "%Y%m%dT%H%M%S")
    processed = datetime.strptime(m[4], "%Y%m%dT%H%M%S")
    assert 0.4 < (processed - acquired).total_seconds() / 86400 < 2.0
    assert acquired == scene.datetime.replace(tzinfo=None)
    assert (scene.provider, scene.collection) == ("dlr", "ENMAP_HSI_L2A")
    assert set(scene.files) == {"image", "metadata", *QL_SUFFIXES}
    assert scene.files["image"].name == f"{scene.id}-SPECTRAL_IMAGE_COG.TIF"
    assert scene.files["metadata"].name == f"{scene.id}-METADATA.XML"
    for key, suffix in QL_SUFFIXES.items():
        assert scene.files[key].name == f"{scene.id}-{suffix}_COG.TIF"
    for path in [*scene.files.values(), *scene.truth.values(), scene.item_path]:
        assert path.parent == scene.directory and path.is_file()
    assert not list(scene.directory.parent.glob(".*partial"))


def test_spectral_image_matches_real_patch(scene: SimulatedScene) -> None:
    with (
        rasterio.open(real_patch("SPECTRAL_IMAGE")) as real,
        rasterio.open(scene.files["image"]) as sim,
    ):
        for attr in ("count", "dtypes", "nodata"):
            assert getattr(sim, attr) == getattr(real, attr), attr
        for key in ("interleave", "compress"):
            assert sim.profile[key] == real.profile[key], key
        assert sim.crs.to_epsg() == 32612  # UTM zone of the region centre
        t = sim.transform
        assert (t.a, t.b, t.d, t.e) == (30.0, 0.0, 0.0, -30.0)
        assert t.c % 30 == 15 and t.f % 30 == 15  # odd multiples of 15 m, like DLR's grids
        assert sim.shape == (64, 64)
        real_data, data = real.read(), sim.read()
    nodata = -32768
    real_empty = {b for b in range(224) if (real_data[b] == nodata).all()}
    sim_empty = {b for b in range(224) if (data[b] == nodata).all()}
    assert sim_empty == real_empty and len(sim_empty) == 22
    # The valid area is the rotated tile: ~75 % of a tiny raster, same pixels in every band.
    valid = data[0] != nodata
    assert 0.7 < valid.mean() < 0.8
    good = sorted(set(range(224)) - sim_empty)
    assert ((data[good] != nodata) == valid).all()
    assert valid[32, 32] and not valid[0, 0] and not valid[-1, -1]


def test_quality_layers_match_real_patch(scene: SimulatedScene) -> None:
    image = read(scene.files["image"])
    valid = image[0] != -32768
    for key, suffix in QL_SUFFIXES.items():
        with rasterio.open(real_patch(suffix)) as real, rasterio.open(scene.files[key]) as sim:
            for attr in ("count", "dtypes", "nodata", "colorinterp"):
                assert getattr(sim, attr) == getattr(real, attr), (suffix, attr)
            for attr in ("interleave", "compress"):
                assert sim.profile[attr] == real.profile[attr], (suffix, attr)
            data = sim.read()
        if key == "quality_classes":
            assert set(np.unique(data)) == {1, 2, 3}
            assert ((data[0] == 3) == ~valid).all()
        elif key in ("vnir", "swir"):
            assert ((data[3] == 255) == valid).all() and set(np.unique(data[3])) == {0, 255}
            assert (data[:3, ~valid] == 0).all() and data[:3, valid].std() > 1
        else:
            assert set(np.unique(data)) <= {0, 1}
            assert not data[:, ~valid].any()
    for key in ("quality_cloud", "quality_cloud_shadow", "quality_haze"):
        assert read(scene.files[key]).any(), key
    # Dead detector elements: lines along track in some bands; the DNs there stay plausible.
    mask = read(scene.files["pixelmask"]).astype(bool)
    bands_hit = np.flatnonzero(mask.any(axis=(1, 2)))
    assert 10 <= len(bands_hit) <= 20
    assert (image[mask] != -32768).all()
    for b in bands_hit:
        rows_hit = np.flatnonzero(mask[b].any(axis=1))
        assert len(rows_hit) > 30  # a line through the tile, not scattered pixels
        neighbours = 0.5 * (image[b - 1].astype(float) + image[b + 1])
        assert np.allclose(image[b][mask[b]], neighbours[mask[b]], atol=1.0)


def test_files_are_valid_cogs(scene: SimulatedScene) -> None:
    for path in [*(p for p in scene.files.values() if p.suffix == ".TIF"), *scene.truth.values()]:
        ok, errors, _ = cog_validate(str(path))
        assert ok, (path.name, errors)


def test_metadata_xml_decodes_reflectance(
    scene: SimulatedScene, item: dict[str, Any], real_item: dict[str, Any]
) -> None:
    root = ET.parse(scene.files["metadata"]).getroot()
    assert root.tag == "level_X"
    bands = root.findall("specific/bandCharacterisation/bandID")
    assert [int(b.get("number", 0)) for b in bands] == list(range(1, 225))

    def column(tag: str) -> np.ndarray:
        return np.array([float(b.findtext(tag, "nan")) for b in bands])

    wl, fwhm = column("wavelengthCenterOfBand"), column("FWHMOfBand")
    gain, offset = column("GainOfBand"), column("OffsetOfBand")
    assert np.all(np.diff(wl) > 0) and 418 < wl[0] < 419 and 2445 < wl[-1] < 2446
    real_wl = [b["center_wavelength"] for b in real_item["assets"]["image"]["eo:bands"]]
    np.testing.assert_allclose(wl, real_wl)
    # VNIR and SWIR channels interleave around 900-1000 nm: FWHM jumps back and forth there.
    overlap = (wl[:-1] > 895) & (wl[1:] < 1000)
    assert (np.abs(np.diff(fwhm))[overlap] > 0.5).sum() >= 10
    dn = read(scene.files["image"]).astype(np.float64)
    valid = dn != -32768
    refl = dn * gain[:, None, None] + offset[:, None, None]
    values = refl[valid]
    # Noise takes dark water slightly below zero, as in real L2A products.
    assert values.min() >= -0.05 and values.max() <= 1.2 and (values >= 0).mean() > 0.97
    assert 0.05 < np.median(values) < 0.6

    merge = root.find("product/image/merge")
    assert merge is not None
    assert merge.findtext("channels") == "224"
    assert (merge.findtext("dimension/rows"), merge.findtext("dimension/columns")) == ("64", "64")
    assert root.findtext("product/ortho/projection") == "UTM_Zone12_North"
    assert float(root.findtext("product/ortho/resolution", "nan")) == 30.0
    stats = root.findall("product/bandStatistics/bandID")
    assert len(stats) == 224
    for b in (0, 50, 200):
        v = dn[b][valid[b]]
        assert float(stats[b].findtext("wavelength", "nan")) == wl[b]
        assert float(stats[b].findtext("mean", "nan")) == pytest.approx(v.mean(), abs=1e-3)
        assert float(stats[b].findtext("stdDeviation", "nan")) == pytest.approx(v.std(), abs=1e-3)
    frames = [
        p.findtext("frame") for p in root.findall("base/spatialCoverage/boundingPolygon/point")
    ]
    assert frames == ["upper_left", "lower_left", "lower_right", "upper_right", "center"]
    props = item["properties"]
    assert root.findtext("base/temporalCoverage/startTime") == props["start_datetime"]
    assert root.findtext("base/temporalCoverage/stopTime") == props["end_datetime"]
    assert root.findtext("specific/sunElevationAngle/center") == props["enmap:sunElevationAngle"]
    assert root.findtext("specific/sunAzimuthAngle/center") == props["enmap:sunAzimuthAngle"]


def json_type(value: Any) -> str:
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else type(value).__name__
    )


def test_item_is_shaped_like_the_real_dlr_item(
    item: dict[str, Any], real_item: dict[str, Any], scene: SimulatedScene
) -> None:
    assert item["id"] == scene.id and item["collection"] == "ENMAP_HSI_L2A"
    assert item["stac_extensions"] == real_item["stac_extensions"]
    assert list(item) == list(real_item)
    props, real_props = item["properties"], real_item["properties"]
    assert set(props) == set(real_props)
    assert {k: json_type(v) for k, v in props.items()} == {
        k: json_type(v) for k, v in real_props.items()
    }
    assert props["proj:epsg"] is None and props["eo:cloud_cover"].isdigit()
    assert list(item["assets"]) == list(real_item["assets"])
    for key, asset in item["assets"].items():
        real = real_item["assets"][key]
        assert list(asset) == list(real), key
        for field in ("type", "title", "description", "roles"):
            assert asset[field] == real[field], (key, field)
        assert {k: json_type(v) for k, v in asset.items() if k != "href"} == {
            k: json_type(v) for k, v in real.items() if k != "href"
        }
        path = Path(asset["href"])
        assert path.is_absolute() and path.parent == scene.directory and path.exists(), key
        for rb, real_rb in zip(
            asset.get("raster:bands", []), real.get("raster:bands", []), strict=True
        ):
            assert list(rb) == list(real_rb) and list(rb["statistics"]) == list(
                real_rb["statistics"]
            )
            assert len(rb["histogram"]["buckets"]) == len(real_rb["histogram"]["buckets"])
    eo_bands = item["assets"]["image"]["eo:bands"]
    real_bands = real_item["assets"]["image"]["eo:bands"]
    assert len(eo_bands) == 224
    assert [{k: json_type(v) for k, v in b.items()} for b in eo_bands] == [
        {k: json_type(v) for k, v in b.items()} for b in real_bands
    ]
    assert [b["name"] for b in eo_bands] == list(range(1, 225))
    assert [b["full_width_half_max"] for b in eo_bands] == [
        b["full_width_half_max"] for b in real_bands
    ]
    assert [r["rel"] for r in item["links"]] == [r["rel"] for r in real_item["links"]]
    with rasterio.open(scene.files["image"]) as src:
        image = item["assets"]["image"]
        assert image["proj:epsg"] == src.crs.to_epsg()
        assert image["proj:shape"] == list(src.shape)
        assert image["proj:transform"] == [*src.transform[:6], 0.0, 0.0, 1.0]
        assert image["proj:bbox"] == list(src.bounds)


def test_item_statistics_and_cover_follow_the_rasters(
    item: dict[str, Any], scene: SimulatedScene
) -> None:
    classes = read(scene.files["quality_classes"])[0]
    cloud = read(scene.files["quality_cloud"])[0]
    valid = classes != 3
    props = item["properties"]
    assert props["eo:cloud_cover"] == str(round(100 * cloud[valid].mean()))
    assert props["enmap:water_cover"] == str(round(100 * (classes[valid] == 2).mean()))
    stats = item["assets"]["quality_classes"]["raster:bands"][0]["statistics"]
    assert stats["mean"] == pytest.approx(classes[valid].mean())
    assert stats["valid_percent"] == pytest.approx(100 * valid.mean())
    vnir = read(scene.files["vnir"])
    assert item["assets"]["vnir"]["raster:bands"][0]["statistics"]["mean"] == pytest.approx(
        vnir[0][valid].mean()
    )


def test_item_validates(item: dict[str, Any], real_item: dict[str, Any]) -> None:
    round_trip = pystac.Item.from_dict(item).to_dict(transform_hrefs=False)
    assert round_trip["assets"].keys() == item["assets"].keys()
    # Offline, pystac has only its bundled core schema (STAC 1.1.0) and cannot fetch the
    # 1.0.0 core or the extension schemas: validate the core schema, relabelled 1.1.0, and
    # check that the same check accepts the real DLR item.
    for d in (item, real_item):
        validate_dict({**d, "stac_version": "1.1.0", "stac_extensions": []}, extensions=[])
    with pytest.raises(pystac.STACValidationError):
        bad = {
            **item,
            "stac_version": "1.1.0",
            "stac_extensions": [],
            "geometry": {"type": "Polygon"},
        }
        validate_dict(bad, extensions=[])


def test_geometry_lies_on_the_valid_raster_area(
    item: dict[str, Any], scene: SimulatedScene
) -> None:
    geometry = shape(item["geometry"])
    lons, lats = zip(*item["geometry"]["coordinates"][0], strict=True)
    assert item["bbox"] == [min(lons), min(lats), max(lons), max(lats)]
    with rasterio.open(scene.files["image"]) as src:
        b, crs, valid = src.bounds, src.crs, src.read(1) != -32768
    t = np.linspace(0, 1, 33)
    x = np.concatenate(
        [
            b.left + t * (b.right - b.left),
            np.full_like(t, b.right),
            b.right - t * (b.right - b.left),
            np.full_like(t, b.left),
        ]
    )
    y = np.concatenate(
        [
            np.full_like(t, b.top),
            b.top - t * (b.top - b.bottom),
            np.full_like(t, b.bottom),
            b.bottom + t * (b.top - b.bottom),
        ]
    )
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
    raster = Polygon(zip(lon, lat, strict=True))
    assert raster.buffer(1e-6).contains(geometry)
    assert geometry.area / raster.area == pytest.approx(valid.mean(), abs=0.03)
    assert item["geometry"]["coordinates"][0][0] == max(
        item["geometry"]["coordinates"][0], key=lambda p: p[1]
    )


def test_truth_aligns_with_quality_layers(scene: SimulatedScene) -> None:
    with rasterio.open(scene.files["image"]) as src:
        transform, crs = src.transform, src.crs
        valid = src.read(1) != -32768
    with rasterio.open(scene.truth["classes"]) as src:
        assert (src.transform, src.crs) == (transform, crs)
        classes = src.read(1)
    ql = read(scene.files["quality_classes"])[0]
    assert ((classes == 0) == ~valid).all()
    water = classes[valid] == CLASS_INDEX["water"] + 1
    assert 0.05 < water.mean() < 0.95  # the scene really has land and water
    assert (water == (ql[valid] == 2)).mean() >= 0.95
    ch4 = read(scene.truth["ch4"])[0]
    assert np.isnan(ch4[~valid]).all() and np.isfinite(ch4[valid]).all()
    cloud = read(scene.truth["cloud"])[0]
    assert (cloud[~valid] == 255).all()
    assert ((cloud[valid] == 1) == (read(scene.files["quality_cloud"])[0][valid] == 1)).all()
    assert ((cloud[valid] == 2) == (read(scene.files["quality_cloud_shadow"])[0][valid] == 1)).all()


def test_same_seed_gives_the_same_bytes(scenes: dict[str, SimulatedScene]) -> None:
    a, again, other = scenes["a"], scenes["again"], scenes["other"]
    assert a.id == again.id
    names = sorted(p.name for p in a.directory.iterdir())
    assert names == sorted(p.name for p in again.directory.iterdir())
    for name in names:
        assert (a.directory / name).read_bytes().replace(str(a.directory).encode(), b"") == (
            again.directory / name
        ).read_bytes().replace(str(again.directory).encode(), b""), name
    assert a.files["image"].read_bytes() != other.files["image"].read_bytes()
