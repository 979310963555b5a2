"""Every real provider item in ../shared/real-data, and every simulated flavour, normalises."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest

from spectraflow.catalog import Scene, scene_from_item
from spectraflow.errors import SceneFormatError
from spectraflow.simulate import simulate_scene

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data"
DLR_ITEM = (
    REAL
    / "dlr-geoservice"
    / (
        "ENMAP_HSI_L2A_ENMAP01-____L2A-DT0000080454_20240630T082045Z_001_V010402_20240701T122237Z.json"
    )
)
ES_L2A = REAL / "earth-search-v1" / "sentinel-2-l2a_S2A_13TDE_20231008_0_L2A.json"
ES_C1 = REAL / "earth-search-v1" / "sentinel-2-c1-l2a_S2B_T24MUV_20250731T130245_L2A.json"
PC_ITEMS = REAL / "planetary-computer" / "sentinel-2-l2a-pc_4items_PB05.10.json"
EMIT_UMMG = REAL / "emit" / "EMIT_L2A_RFL_001_20230316T045133_2307503_005.cmr.json"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def cmr_stac_item(ummg: dict[str, Any]) -> dict[str, Any]:
    """The item CMR-STAC builds from a UMM-G record (no real CMR-STAC item could be recorded).

    CMR-STAC makes one asset per related URL, keyed after the file name (``s3_`` for the S3 copy),
    in the order of the record, and copies the polygon, times and cloud cover.
    """
    assets = {}
    for url in ummg["RelatedUrls"]:
        if url["Type"] not in (
            "GET DATA",
            "GET DATA VIA DIRECT ACCESS",
            "GET RELATED VISUALIZATION",
        ):
            continue
        name = url["URL"].rsplit("/", 1)[-1]
        key = ("s3_" if url["URL"].startswith("s3://") else "") + name
        assets[key] = {"href": url["URL"], "title": url.get("Description"), "roles": ["data"]}
    points = ummg["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]["GPolygons"][0]
    ring = [[p["Longitude"], p["Latitude"]] for p in points["Boundary"]["Points"]]
    lons, lats = zip(*ring, strict=True)
    times = ummg["TemporalExtent"]["RangeDateTime"]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": ummg["GranuleUR"],
        "collection": "EMITL2ARFL_001",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": times["BeginningDateTime"],
            "start_datetime": times["BeginningDateTime"],
            "end_datetime": times["EndingDateTime"],
            "eo:cloud_cover": ummg["CloudCover"],
        },
        "links": [
            {
                "rel": "self",
                "href": "https://cmr.earthdata.nasa.gov/stac/LPCLOUD/collections/EMITL2ARFL_001"
                f"/items/{ummg['GranuleUR']}",
            }
        ],
        "assets": assets,
    }


def test_real_dlr_enmap_item():
    scene = scene_from_item(load(DLR_ITEM))
    assert scene.sensor == "enmap"
    assert scene.provider == "dlr"
    assert scene.cloud_cover == 0.0  # "0" as a string in the item
    assert len(scene.bands) == 224
    wl = scene.bands.wavelengths
    assert 418 < wl[0] < 419 and 2444 < wl[-1] < 2446  # nm, as DLR gives them
    assert np.all(np.diff(wl) > 0)
    assert set(scene.bands.scale) == {1e-4} and set(scene.bands.offset) == {0.0}
    assert 0 < scene.bands.good_mask.sum() < 224  # the absorption windows are flagged
    assert scene.crs == "EPSG:32736"
    assert scene.shape == (1220, 1517)  # not 1000 × 1000
    assert scene.transform == (30.0, 0.0, 454245.0, 0.0, -30.0, 7246185.0)
    assert scene.assets["data"].endswith("-SPECTRAL_IMAGE_COG.TIF")
    assert scene.assets["mask"].endswith("-QL_PIXELMASK_COG.TIF")
    assert scene.assets["metadata"].endswith("-METADATA.XML")
    assert scene.assets["quality:cloud"].endswith("-QL_QUALITY_CLOUD_COG.TIF")
    assert len([k for k in scene.assets if k.startswith("quality:")]) == 7
    assert scene.datetime.isoformat() == "2024-06-30T08:20:45+00:00"


def test_real_dlr_gain_and_offset_are_read_not_assumed():
    item = load(DLR_ITEM)
    for band in item["assets"]["image"]["eo:bands"]:
        band["enmap:gain_of_band"] = "0.0002"  # strings, as DLR sends numbers
        band["enmap:offset_of_band"] = "-0.01"
    scene = scene_from_item(item)
    assert set(scene.bands.scale) == {2e-4} and set(scene.bands.offset) == {-0.01}


@pytest.mark.parametrize(
    ("path", "offset", "collection"),
    [
        (ES_L2A, 0.0, "sentinel-2-l2a"),  # baseline 05.09 but boa_offset_applied: already shifted
        (ES_C1, -0.1, "sentinel-2-c1-l2a"),  # raster:bands offset -0.1 is right
    ],
)
def test_real_earth_search_items(path, offset, collection):
    scene = scene_from_item(load(path))
    assert scene.sensor == "sentinel2"
    assert scene.provider == "earth-search"
    assert scene.collection == collection
    assert len(scene.bands) == 12
    assert scene.bands.name[0] == "B01" and scene.bands.name[-1] == "B12"
    assert scene.bands.wavelengths[1] == pytest.approx(490.0)  # µm in the item, nm here
    assert set(scene.bands.scale) == {1e-4}
    assert scene.bands.offset == pytest.approx((offset,) * 12)
    assert scene.assets["data:B02"].endswith("/B02.tif")
    assert scene.assets["mask"].endswith("/SCL.tif")
    assert scene.crs in ("EPSG:32613", "EPSG:32724")
    assert scene.shape == (10980, 10980) and scene.transform is not None
    assert scene.transform[0] == 10.0
    assert scene.tile in ("13TDE", "24MUV")


def test_earth_search_flag_false_falls_back_to_the_baseline_rule():
    item = load(ES_L2A)
    item["properties"]["earthsearch:boa_offset_applied"] = False
    assert scene_from_item(item).bands.offset == pytest.approx((-0.1,) * 12)
    item["properties"]["s2:processing_baseline"] = "03.01"
    assert set(scene_from_item(item).bands.offset) == {0.0}


def test_real_planetary_computer_items():
    items = load(PC_ITEMS)
    scenes = [scene_from_item(item) for item in items]
    assert len(scenes) == 4
    for scene, item in zip(scenes, items, strict=True):
        assert scene.provider == "planetary-computer"
        assert scene.sensor == "sentinel2" and scene.platform in ("sentinel-2a", "sentinel-2b")
        assert scene.bands.offset == pytest.approx((-0.1,) * 12)  # baseline 05.10, no raster:bands
        assert scene.assets["data:B8A"] == item["assets"]["B8A"]["href"]
        assert scene.assets["mask"] == item["assets"]["SCL"]["href"]
        assert scene.tile == item["properties"]["s2:mgrs_tile"]
        assert scene.crs == f"EPSG:{item['properties']['proj:epsg']}"


def test_signed_hrefs_are_never_kept():
    item = load(PC_ITEMS)[0]
    signed = copy.deepcopy(item)
    for asset in signed["assets"].values():
        if ".blob.core.windows.net/" in asset["href"]:
            asset["href"] += "?st=2024-01-01&se=2024-01-02&sp=rl&sv=2021&sr=c&sig=SECRET%3D"
    scene = scene_from_item(signed)
    assert "SECRET" not in scene.model_dump_json()
    assert scene.assets == scene_from_item(item).assets


def test_real_emit_granule_through_cmr_stac():
    ummg = load(EMIT_UMMG)
    scene = scene_from_item(cmr_stac_item(ummg))
    granule = ummg["GranuleUR"]
    base = f"https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/EMITL2ARFL.001/{granule}"
    assert scene.sensor == "emit" and scene.provider == "cmr-stac"
    assert scene.assets["data"] == f"{base}/{granule}.nc"  # HTTPS preferred over s3://
    assert scene.assets["uncertainty"] == f"{base}/{granule.replace('_RFL_', '_RFLUNCERT_')}.nc"
    assert scene.assets["mask"] == f"{base}/{granule.replace('_RFL_', '_MASK_')}.nc"
    assert scene.cloud_cover == 23.0
    assert len(scene.bands) == 285 and scene.bands.wavelengths[0] == pytest.approx(381.0, abs=0.1)
    assert scene.crs is None and scene.shape is None  # sensor geometry


def test_emit_assets_are_found_by_file_name_whatever_their_keys():
    item = cmr_stac_item(load(EMIT_UMMG))
    item["assets"] = {f"asset_{i}": a for i, a in enumerate(reversed(item["assets"].values()))}
    scene = scene_from_item(item)
    assert scene.assets["data"].startswith("https://")
    assert Path(scene.assets["data"]).name.startswith("EMIT_L2A_RFL_001_")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sim")
    runs = [
        ("emit", None),
        ("enmap", None),
        ("sentinel2", "earth-search"),
        ("sentinel2", "earth-search-l2a"),
        ("sentinel2", "planetary-computer"),
    ]
    return {
        f"{sensor}:{provider}": simulate_scene(sensor, out=out, provider=provider).item_path
        for sensor, provider in runs
    }


def test_simulated_items_normalise_with_local_files(simulated):
    for key, path in simulated.items():
        scene = scene_from_item(pystac.Item.from_file(str(path)))
        assert scene.sensor == key.split(":")[0]
        for href in scene.band_hrefs().values():
            assert Path(href).is_file(), href
        assert isinstance(scene, Scene)


def test_item_without_data_asset_is_a_clear_error():
    item = load(DLR_ITEM)
    del item["assets"]["image"]
    with pytest.raises(SceneFormatError, match="SPECTRAL_IMAGE") as err:
        scene_from_item(item)
    assert item["id"] in str(err.value) and "Fix:" in str(err.value)


def test_s2_item_missing_a_band_names_it():
    item = load(ES_C1)
    del item["assets"]["nir08"]
    with pytest.raises(SceneFormatError, match="B8A"):
        scene_from_item(item)


def test_item_of_another_sensor_is_rejected():
    item = load(ES_C1)
    item["properties"]["platform"] = "landsat-9"
    item["properties"].pop("constellation", None)
    item["collection"] = "landsat-c2-l2"
    with pytest.raises(SceneFormatError, match="not an EMIT"):
        scene_from_item(item)


def test_string_cloud_cover_that_is_not_a_number():
    item = load(DLR_ITEM)
    item["properties"]["eo:cloud_cover"] = "cloudy"
    with pytest.raises(SceneFormatError, match="eo:cloud_cover"):
        scene_from_item(item)
