"""Simulated Sentinel-2 L2A scenes against the real Earth Search and Planetary Computer items."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation import validate_dict
from rio_cogeo.cogeo import cog_validate

from spectraflow.sensors.sentinel2 import BANDS, offset_applies
from spectraflow.simulate import PROVIDERS, SIZES, SimulatedScene, resolve_region, simulate_scene
from spectraflow.simulate import sentinel2 as s2
from spectraflow.simulate.scene import DEFAULT_DATE, scene_conditions
from spectraflow.simulate.sentinel2_meta import mgrs_tile

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data"
ES = REAL / "earth-search-v1"
REAL_ITEMS = {
    "earth-search": ES / "sentinel-2-c1-l2a_S2B_T24MUV_20250731T130245_L2A.json",
    "earth-search-l2a": ES / "sentinel-2-l2a_S2A_13TDE_20231008_0_L2A.json",
    "planetary-computer": REAL / "planetary-computer" / "sentinel-2-l2a-pc_4items_PB05.10.json",
}
# Real asset keys the simulator leaves out: Planetary Computer's tiler endpoints (a TileJSON
# and a PNG rendered on request by its data API), which are services, not files of the product.
OMITTED = {
    "earth-search": set(),
    "earth-search-l2a": set(),
    "planetary-computer": {"tilejson", "rendered_preview"},
}
REGION = "-103.2,32.3"  # its tiny scene has a lake, land cover, cloud and cloud shadow
BAND_KEYS = {b.name for b in BANDS}
PC_BAND = {b.name: b.name for b in BANDS}
ES_BAND = {b.name: b.common_name for b in BANDS}
TIME_OR_TILE = [
    (re.compile(r"\d{8}T\d{6}"), "<time>"),
    (re.compile(r"T\d{2}[C-X][A-Z]{2}"), "T<tile>"),
    (re.compile(r"_A\d{6}_"), "_A<orbit>_"),
]


def real_item(provider: str) -> dict[str, Any]:
    data = json.loads(REAL_ITEMS[provider].read_text())
    return data[0] if isinstance(data, list) else data


def json_type(value: Any) -> str:
    # Providers write 0 for zero percentages and 12.3 otherwise: both are JSON numbers.
    if isinstance(value, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string", list: "array", dict: "object"}[
        type(value)
    ]


def read(path: str | Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


def simulate(out: Path, provider: str, seed: int = 0) -> tuple[SimulatedScene, dict[str, Any]]:
    scene = simulate_scene(
        "sentinel2", out=out, size="tiny", region=REGION, seed=seed, provider=provider
    )
    return scene, json.loads(scene.item_path.read_text())


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SimulatedScene, dict]]:
    return {p: simulate(tmp_path_factory.mktemp(p), p) for p in PROVIDERS["sentinel2"]}


def decode(item: dict[str, Any], key: str) -> np.ndarray:
    """Reflectance as a careful reader decodes it from the item's own metadata."""
    asset = item["assets"][key]
    dn = read(asset["href"]).astype(np.float64)
    props = item["properties"]
    if props.get("earthsearch:boa_offset_applied") and asset["type"].startswith("image/tiff"):
        return dn / 10000.0  # raster:bands' -0.1 is wrong for these COGs
    if "raster:bands" in asset:
        return dn * asset["raster:bands"][0]["scale"] + asset["raster:bands"][0]["offset"]
    shift = 1000.0 if offset_applies(props["s2:processing_baseline"]) else 0.0
    return (dn - shift) / 10000.0


def band_asset(provider: str, band: str) -> str:
    return PC_BAND[band] if provider == "planetary-computer" else ES_BAND[band]


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_asset_keys_mirror_the_real_item(scenes, provider):
    _, item = scenes[provider]
    real = real_item(provider)
    assert set(real["assets"]) - set(item["assets"]) == OMITTED[provider]
    assert set(item["assets"]) <= set(real["assets"])
    data_keys = {k for k, a in real["assets"].items() if "data" in a.get("roles", [])}
    assert data_keys <= set(item["assets"])
    assert [k for k in real["assets"] if k in item["assets"]] == list(item["assets"])


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_properties_links_and_extensions_mirror_the_real_item(scenes, provider):
    scene, item = scenes[provider]
    real = real_item(provider)
    assert list(item) == list(real)
    assert list(item["properties"]) == list(real["properties"])
    for key, value in real["properties"].items():
        assert json_type(item["properties"][key]) == json_type(value), key
    assert item["stac_extensions"] == real["stac_extensions"]
    assert [link["rel"] for link in item["links"]] == [link["rel"] for link in real["links"]]
    assert item["collection"] == real["collection"] == scene.collection
    assert (
        item["properties"]["s2:processing_baseline"]
        == {
            "earth-search": "05.11",
            "earth-search-l2a": "05.09",
            "planetary-computer": "05.10",
        }[provider]
    )


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_assets_carry_the_real_fields_and_wording(scenes, provider):
    _, item = scenes[provider]
    real = real_item(provider)
    per_file = {"href", "file:checksum", "file:size", "proj:shape", "proj:transform", "proj:bbox"}
    for key, asset in item["assets"].items():
        ref = real["assets"][key]
        assert list(asset) == list(ref), key
        for field in set(ref) - per_file:
            assert asset[field] == ref[field], (key, field)


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
@pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")  # local hrefs
def test_item_validates(scenes, provider):
    _, item = scenes[provider]
    parsed = pystac.Item.from_dict(item)
    # Offline, pystac has the core STAC 1.1.0 schemas only: validate the migrated item against
    # them; the extension schemas (and stac-validator's 1.0.0 core) need the network.
    assert validate_dict(parsed.to_dict(transform_hrefs=False), stac_version="1.1.0", extensions=[])
    assert parsed.bbox is not None and parsed.geometry is not None
    lon = [p[0] for p in item["geometry"]["coordinates"][0]]
    assert min(lon) == pytest.approx(item["bbox"][0]) and max(lon) == pytest.approx(item["bbox"][2])


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # thumbnails
def test_every_file_is_an_asset_and_every_raster_opens(scenes, provider):
    scene, item = scenes[provider]
    hrefs = {Path(a["href"]) for a in item["assets"].values()}
    written = {p for p in scene.directory.rglob("*") if p.is_file()}
    assert written == hrefs | set(scene.truth.values()) | {scene.item_path}
    for key, asset in item["assets"].items():
        path = Path(asset["href"])
        assert path.is_absolute() and path.is_relative_to(scene.directory), key
        if asset["type"] == s2_cog():
            valid, errors, warnings = cog_validate(str(path), quiet=True)
            assert valid and not errors and not warnings, (key, errors, warnings)
        if asset["type"].startswith("image/"):
            with rasterio.open(path) as src:
                assert src.count >= 1
                assert src.driver == {"image/jp2": "JP2OpenJPEG", "image/jpeg": "JPEG"}.get(
                    asset["type"], "GTiff"
                )


def s2_cog() -> str:
    return "image/tiff; application=geotiff; profile=cloud-optimized"


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_rasters_agree_with_their_asset_metadata(scenes, provider):
    _, item = scenes[provider]
    for key, asset in item["assets"].items():
        if "proj:shape" not in asset:
            continue
        with rasterio.open(asset["href"]) as src:
            assert list(src.shape) == asset["proj:shape"], key
            assert list(src.transform)[:6] == asset["proj:transform"], key
            assert src.crs.to_epsg() == item["properties"]["proj:epsg"]
            for i, rb in enumerate(asset.get("raster:bands", [])):
                assert src.dtypes[i] == rb["data_type"], key
                if src.driver == "GTiff":
                    assert src.nodata == rb["nodata"] == 0, key
            assert src.count == len(asset.get("raster:bands", asset.get("eo:bands", [None])))
        if "file:checksum" in asset:
            data = Path(asset["href"]).read_bytes()
            assert asset["file:size"] == len(data)
            assert asset["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_band_grids_nest_like_a_real_tile(scenes, provider):
    scene, _ = scenes[provider]
    rows, cols = SIZES["tiny"]["sentinel2"]
    expected = {10: (2 * rows, 2 * cols), 20: (rows, cols), 60: (rows // 3, cols // 3)}
    corners = set()
    for band in BANDS:
        with rasterio.open(scene.files[band.name]) as src:
            assert src.shape == expected[band.resolution_m], band.name
            assert src.res == (band.resolution_m, band.resolution_m)
            assert src.dtypes[0] == "uint16" and src.nodata == 0
            corners.add((src.transform.c, src.transform.f))
    assert len(corners) == 1
    west, north = corners.pop()
    assert west % 60 == 0 and north % 60 == 0
    with rasterio.open(scene.files["visual"]) as src:
        assert src.count == 3 and src.dtypes[0] == "uint8" and src.shape == expected[10]
    with rasterio.open(scene.files["SCL"]) as src:
        assert src.dtypes[0] == "uint8" and src.shape == expected[20]
    res = 10 if provider == "planetary-computer" else 20  # PC serves AOT and WVP at 10 m
    for name in ("AOT", "WVP"):
        with rasterio.open(scene.files[name]) as src:
            assert src.shape == expected[res] and src.dtypes[0] == "uint16"


def test_baseline_rule_gives_the_same_reflectance_in_every_flavour(scenes):
    items = {p: item for p, (_, item) in scenes.items()}
    c1, l2a, pc = items["earth-search"], items["earth-search-l2a"], items["planetary-computer"]
    for band in BANDS:
        dn_c1 = read(c1["assets"][ES_BAND[band.name]]["href"]).astype(np.int64)
        dn_l2a = read(l2a["assets"][ES_BAND[band.name]]["href"]).astype(np.int64)
        dn_pc = read(pc["assets"][band.name]["href"]).astype(np.int64)
        shifted = dn_l2a > 1  # negative reflectance is clipped to DN 1 once the offset is gone
        assert shifted.mean() > 0.9
        np.testing.assert_array_equal(dn_c1[shifted] - dn_l2a[shifted], 1000)
        np.testing.assert_array_equal(dn_c1, dn_pc)
        ref = decode(c1, ES_BAND[band.name])
        assert np.abs(decode(l2a, ES_BAND[band.name]) - ref)[shifted].max() < 1e-4
        assert np.abs(decode(pc, band.name) - ref).max() < 1e-4
        # The JPEG 2000 twins keep ESA's DNs, for which raster:bands' offset is right.
        assert np.abs(decode(l2a, f"{ES_BAND[band.name]}-jp2") - ref).max() < 1e-4
        assert -0.02 < np.median(ref) < 0.8, band.name


def test_reflectance_looks_like_the_ground(scenes):
    scene, item = scenes["earth-search"]
    red = decode(item, "red").reshape(96, 2, 96, 2).mean(axis=(1, 3))
    nir = decode(item, "nir").reshape(96, 2, 96, 2).mean(axis=(1, 3))
    scl = read(scene.files["SCL"])
    ndvi = (nir - red) / (nir + red)
    assert np.median(ndvi[scl == 4]) > 0.3
    assert np.median(nir[scl == 6]) < 0.06
    assert np.median(decode(item, "blue").reshape(96, 2, 96, 2).mean(axis=(1, 3))[scl == 9]) > 0.3


def test_true_colour_image_is_the_reflectance_up_to_0_2(scenes):
    scene, item = scenes["earth-search"]
    for band, channel in (("red", 1), ("green", 2), ("blue", 3)):
        refl = decode(item, band)
        tci = read(scene.files["visual"], channel).astype(int)
        unsaturated = refl < 0.195
        expected = np.clip(np.round(refl * 1275.0), 1, 255)
        assert np.abs(tci - expected)[unsaturated].max() <= 1
        assert np.all(tci[refl > 0.205] == 255)


def test_twenty_metre_bands_agree_with_ten_metre_bands(scenes):
    scene, _ = scenes["earth-search"]
    b08 = read(scene.files["B08"]).astype(float).reshape(96, 2, 96, 2).mean(axis=(1, 3))
    b8a = read(scene.files["B8A"]).astype(float)
    assert np.corrcoef(b08.ravel(), b8a.ravel())[0, 1] > 0.95
    b02 = read(scene.files["B02"]).astype(float).reshape(32, 6, 32, 6).mean(axis=(1, 3))
    b01 = read(scene.files["B01"]).astype(float)
    assert np.corrcoef(b02.ravel(), b01.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_scene_classification_follows_the_truth(scenes, provider):
    scene, item = scenes[provider]
    scl = read(scene.files["SCL"])
    truth = read(scene.truth["classes"])
    cloud = read(scene.truth["cloud"])
    assert set(np.unique(scl)) <= set(range(12))
    assert np.isin(scl, (2, 7)).mean() < 0.05  # a few dark / unclassified pixels at most
    assert {3, 4, 5, 6, 10} <= set(np.unique(scl)) and set(np.unique(scl)) & {8, 9}
    clear = cloud == 0
    assert clear.mean() > 0.5
    assert ((scl == 6) == (truth == 1))[clear].mean() >= 0.9
    np.testing.assert_array_equal(np.isin(scl, (8, 9)), cloud == 1)
    assert np.all(cloud[scl == 3] == 2)  # shadow, unless thin cloud lies over it
    assert np.isin(scl[cloud == 2], (3, 10)).all()
    props = item["properties"]
    counts = np.bincount(scl.ravel(), minlength=12)
    for name, value in (("water", 6), ("vegetation", 4), ("cloud_shadow", 3)):
        assert props[f"s2:{name}_percentage"] == pytest.approx(counts[value] / scl.size * 100)
    cirrus = props["s2:thin_cirrus_percentage"]
    assert props["eo:cloud_cover"] == pytest.approx(
        props["s2:medium_proba_clouds_percentage"]
        + props["s2:high_proba_clouds_percentage"]
        + cirrus
    )
    assert props["eo:cloud_cover"] - cirrus == pytest.approx((cloud == 1).mean() * 100)


def test_truth_sits_on_the_twenty_metre_grid(scenes):
    scene, _ = scenes["earth-search"]
    assert set(scene.truth) == {"classes", "ch4", "cloud"}
    with rasterio.open(scene.files["SCL"]) as scl:
        for path in scene.truth.values():
            with rasterio.open(path) as src:
                assert src.shape == scl.shape and src.transform == scl.transform
    assert read(scene.truth["ch4"]).max() > 100.0  # the central plume is in every scene


def test_sun_angles_come_from_the_scene_conditions(scenes):
    region = resolve_region(REGION)
    when, conditions = scene_conditions("sentinel2", region, DEFAULT_DATE, 0)
    c1 = scenes["earth-search"][1]["properties"]
    pc = scenes["planetary-computer"][1]["properties"]
    assert c1["view:sun_azimuth"] == pytest.approx(conditions.sun_azimuth_deg)
    assert c1["view:sun_elevation"] == pytest.approx(90.0 - conditions.sun_zenith_deg)
    assert pc["s2:mean_solar_zenith"] == pytest.approx(conditions.sun_zenith_deg)
    assert scenes["earth-search"][0].datetime == when
    assert c1["datetime"].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))


def normalise(path: str) -> str:
    for pattern, token in TIME_OR_TILE:
        path = pattern.sub(token, path)
    return path


@pytest.mark.parametrize("provider", PROVIDERS["sentinel2"])
def test_ids_and_file_names_follow_the_provider(scenes, provider):
    scene, item = scenes[provider]
    real = real_item(provider)
    pattern = {
        "earth-search": r"S2[ABC]_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}_L2A",
        "earth-search-l2a": r"S2[ABC]_\d{1,2}[C-X][A-Z]{2}_\d{8}_0_L2A",
        "planetary-computer": r"S2[ABC]_MSIL2A_\d{8}T\d{6}_R\d{3}_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}",
    }[provider]
    assert re.fullmatch(pattern, real["id"]) and re.fullmatch(pattern, item["id"])
    assert scene.id == item["id"]
    # Flavours other than the default live in "<scene id>.<provider>" beside the default one.
    suffix = "" if provider == "earth-search" else f".{provider}"
    dir_id = scene.directory.name.removesuffix(suffix)
    assert scene.directory.name == dir_id + suffix
    assert re.fullmatch(r"S2[ABC]_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}_L2A", dir_id)
    assert scene.item_path == scene.directory / f"{dir_id}.json"
    for key, asset in item["assets"].items():
        ours, theirs = asset["href"], real["assets"][key]["href"]
        if provider == "planetary-computer":
            # The SAFE tree below the product directory, tile and times aside.
            ours_rel = ours.split(".SAFE/")[1]
            assert normalise(ours_rel) == normalise(theirs.split(".SAFE/")[1]), key
        else:
            assert Path(ours).name == Path(theirs).name, key


def test_scene_record_lists_band_files(scenes):
    for provider, (scene, _) in scenes.items():
        assert scene.sensor == "sentinel2" and scene.provider == provider
        assert set(scene.files) == BAND_KEYS | {"SCL", "AOT", "WVP", "visual"}
        assert all(p.is_file() for p in scene.files.values())


def test_metadata_documents_describe_the_product(scenes):
    for provider, product_key, granule_key in (
        ("earth-search", "product_metadata", "granule_metadata"),
        ("planetary-computer", "product-metadata", "granule-metadata"),
    ):
        _, item = scenes[provider]
        props = item["properties"]
        product = ET.parse(item["assets"][product_key]["href"]).getroot()
        assert product.findtext(".//PROCESSING_BASELINE") == props["s2:processing_baseline"]
        offsets = [int(e.text or "") for e in product.iter("BOA_ADD_OFFSET")]
        assert offsets == [-1000] * 13
        assert product.findtext(".//BOA_QUANTIFICATION_VALUE") == "10000"
        granule = ET.parse(item["assets"][granule_key]["href"]).getroot()
        red = item["assets"]["red" if provider == "earth-search" else "B04"]
        ulx = float(granule.findtext(".//Geoposition[@resolution='10']/ULX") or "nan")
        assert ulx == red["proj:transform"][2]
        assert granule.findtext(".//HORIZONTAL_CS_CODE") == f"EPSG:{props['proj:epsg']}"
    _, pc = scenes["planetary-computer"]
    manifest = ET.parse(pc["assets"]["safe-manifest"]["href"]).getroot()
    safe_dir = Path(pc["assets"]["safe-manifest"]["href"]).parent
    listed = {e.get("href"): e for e in manifest.iter("fileLocation")}
    b02 = Path(pc["assets"]["B02"]["href"])
    assert f"./{b02.relative_to(safe_dir)}" in listed
    tile_info = json.loads(
        Path(scenes["earth-search"][1]["assets"]["tileinfo_metadata"]["href"]).read_text()
    )
    assert tile_info["gridSquare"] == scenes["earth-search"][1]["properties"]["mgrs:grid_square"]


def test_mgrs_tiles_of_the_real_items():
    # Centres of the real tiles 13TDE (Earth Search L2A item) and 24MUV (Collection 1 item).
    assert mgrs_tile(32613, 40.15, 454880.0, 4445100.0) == (13, "T", "DE")
    assert mgrs_tile(32724, -4.7, 354900.0, 9445120.0) == (24, "M", "UV")


def test_same_seed_same_bytes_other_seed_other_noise(scenes, tmp_path):
    first, _ = scenes["earth-search"]
    again, _ = simulate(tmp_path / "again", "earth-search")
    ours = sorted(p.relative_to(first.directory) for p in first.directory.rglob("*"))
    assert ours == sorted(p.relative_to(again.directory) for p in again.directory.rglob("*"))
    for rel in ours:
        a, b = (first.directory / rel).read_bytes(), (again.directory / rel).read_bytes()
        if rel.suffix == ".json" and rel.name == first.item_path.name:
            b = b.replace(str(tmp_path / "again").encode(), str(first.directory.parent).encode())
        assert a == b, rel
    other, _ = simulate(tmp_path / "other", "earth-search", seed=1)
    assert not np.array_equal(read(other.files["B02"]), read(first.files["B02"]))


def test_blocks_change_noise_only(scenes, tmp_path, monkeypatch):
    one_block, _ = scenes["earth-search"]
    monkeypatch.setattr(s2, "PIXELS_PER_BLOCK", 192 * 30)  # 30 rows at 10 m: 7 blocks
    calls: list[tuple[int, int]] = []
    scene = simulate_scene(
        "sentinel2",
        out=tmp_path,
        size="tiny",
        region=REGION,
        progress=lambda i, n: calls.append((i, n)),
    )
    assert calls[-1] == (7, 7)
    for key in ("classes", "cloud", "ch4"):
        np.testing.assert_array_equal(read(scene.truth[key]), read(one_block.truth[key]))
    np.testing.assert_array_equal(read(scene.files["SCL"]), read(one_block.files["SCL"]))
    for band in ("B02", "B8A", "B01"):
        diff = read(scene.files[band]).astype(int) - read(one_block.files[band]).astype(int)
        assert 0 < np.abs(diff).mean() < 60, band  # a few noise sigmas, nothing misplaced
