"""EnMAP L2A reader: simulated products (with METADATA.XML) and the real HySpecNet patch."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.io
from rasterio.enums import Resampling

from spectraflow.catalog import Scene, scene_from_item
from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.bands import BandTable
from spectraflow.sensors.enmap import (
    CLASSES_BACKGROUND,
    NODATA,
    enmap_band_table,
    nodata_bands,
    open_enmap,
)
from spectraflow.sensors.enmap_metadata import parse_metadata
from spectraflow.simulate import simulate_scene

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data" / "enmap-l2a-hyspecnet-patch"
REAL_NAME = (
    "ENMAP01-____L2A-DT0000004950_20221103T162438Z_001_V010110_20221118T145147Z-Y01460273_X03110438"
)
# Bands (0-based) the real patch holds entirely as nodata, found by reading it whole.
REAL_EMPTY = [*range(126, 141), *range(160, 167)]
QUALITY_FILES = {
    "quality:classes": "CLASSES",
    "quality:cloud": "CLOUD",
    "quality:cloudshadow": "CLOUDSHADOW",
    "quality:haze": "HAZE",
    "quality:cirrus": "CIRRUS",
    "quality:snow": "SNOW",
    "quality:testflags": "TESTFLAGS",
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    result = simulate_scene("enmap", out=tmp_path_factory.mktemp("enmap"), size="tiny", seed=3)
    return scene_from_item(pystac.Item.from_file(str(result.item_path)))


def real_scene(folder: Path = REAL, *, bands: BandTable | None = None, **changes: Any) -> Scene:
    """The real patch as a Scene built by hand: it comes without a STAC item or METADATA.XML."""
    assets = {
        "data": str(folder / f"{REAL_NAME}-SPECTRAL_IMAGE.TIF"),
        "mask": str(folder / f"{REAL_NAME}-QL_PIXELMASK.TIF"),
        **{
            role: str(folder / f"{REAL_NAME}-QL_QUALITY_{s}.TIF")
            for role, s in QUALITY_FILES.items()
        },
    }
    fields: dict[str, Any] = {
        "id": REAL_NAME,
        "sensor": "enmap",
        "provider": "dlr",
        "collection": "ENMAP_HSI_L2A",
        "datetime": dt.datetime(2022, 11, 3, 16, 24, 38, tzinfo=dt.UTC),
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[-74.7, 41.15], [-74.65, 41.15], [-74.65, 41.19], [-74.7, 41.19], [-74.7, 41.15]]
            ],
        },
        "bbox": (-74.7, 41.15, -74.65, 41.19),
        "assets": assets,
        "bands": bands if bands is not None else enmap_band_table(),
        "crs": "EPSG:32618",
        "transform": (30.0, 0.0, 688005.0, 0.0, -30.0, 4561935.0),
        "shape": (128, 128),
    }
    fields.update(changes)
    return Scene(**fields)


def read_all(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def xml_bands(path: str) -> dict[str, np.ndarray]:
    """Band characterisation read straight from the XML, independently of the reader."""
    root = ET.parse(path).getroot()
    entries = sorted(
        root.findall("specific/bandCharacterisation/bandID"), key=lambda e: int(e.get("number", 0))
    )
    tags = {
        "wavelength": "wavelengthCenterOfBand",
        "fwhm": "FWHMOfBand",
        "gain": "GainOfBand",
        "offset": "OffsetOfBand",
    }
    return {k: np.array([float(e.findtext(t) or "nan") for e in entries]) for k, t in tags.items()}


def decoded(dn: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    refl = dn * gain[:, None, None] + offset[:, None, None]
    return np.where(dn == NODATA, np.nan, refl)


# --- simulated product with METADATA.XML ---------------------------------------------------------


def test_simulated_values_wavelengths_and_grid_match_the_files(sim: Scene) -> None:
    ds = open_enmap(sim, chunks=24)
    dn = read_all(sim.assets["data"])
    xml = xml_bands(sim.assets["metadata"])
    assert ds.attrs["band_table"] == "METADATA.XML"
    assert ds.reflectance.dims == ("band", "y", "x")
    assert ds.reflectance.dtype == np.float32
    assert ds.reflectance.chunks == ((224,), (24, 24, 16), (24, 24, 16))
    np.testing.assert_allclose(
        ds.reflectance.values, decoded(dn, xml["gain"], xml["offset"]), rtol=1e-6, equal_nan=True
    )
    assert np.isnan(ds.reflectance.values[dn == NODATA]).all()
    np.testing.assert_array_equal(ds.wavelength.values, xml["wavelength"])
    np.testing.assert_array_equal(ds.fwhm.values, xml["fwhm"])
    assert ds.wavelength.dtype == np.float64
    assert list(ds.band.values[:3]) == ["1", "2", "3"]

    with rasterio.open(sim.assets["data"]) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
        rows, cols = np.arange(src.height), np.arange(src.width)
        xs, _ = rasterio.transform.xy(transform, np.zeros_like(cols), cols)
        _, ys = rasterio.transform.xy(transform, rows, np.zeros_like(rows))
    assert ds.rio.crs == crs
    assert ds.rio.transform() == transform
    assert (ds.sizes["y"], ds.sizes["x"]) == shape
    np.testing.assert_allclose(ds.x.values, xs)  # pixel centres, as rasterio.transform.xy gives
    np.testing.assert_allclose(ds.y.values, ys)

    empty = (dn == NODATA).all(axis=(1, 2))
    assert empty.sum() == 22
    np.testing.assert_array_equal(ds.good_band.values, ~empty)
    assert ds.attrs["nodata_bands"] == [str(i + 1) for i in np.flatnonzero(empty)]


def test_quality_layers_defective_count_and_valid_follow_the_files(sim: Scene) -> None:
    ds = open_enmap(sim, chunks=32).compute()
    pixelmask = read_all(sim.assets["mask"])
    assert pixelmask.shape[0] == 224 and pixelmask.any()
    np.testing.assert_array_equal(ds.defective.values, pixelmask.sum(axis=0))
    assert ds.defective.dtype == np.uint8
    layers = {}
    for role, suffix in QUALITY_FILES.items():
        name = "quality_cloud_shadow" if suffix == "CLOUDSHADOW" else f"quality_{suffix.lower()}"
        layers[suffix] = read_all(sim.assets[role])[0]
        np.testing.assert_array_equal(ds[name].values, layers[suffix])
        assert ds[name].dtype == np.uint8 and ds[name].dims == ("y", "x")
    dn = read_all(sim.assets["data"])
    expected = (
        (dn != NODATA).any(axis=0)
        & (layers["CLASSES"] != CLASSES_BACKGROUND)
        & (layers["CLOUD"] == 0)
    )
    assert 0 < expected.sum() < expected.size and (layers["CLOUD"] == 1).any()
    np.testing.assert_array_equal(ds.valid.values, expected)
    assert ds.valid.dtype == bool
    assert ds.attrs["sensor"] == "enmap" and ds.attrs["scene_id"] == sim.id
    assert ds.attrs["source"]["data"] == sim.assets["data"]
    assert set(ds.attrs["source"]) == {"data", "metadata", "mask", *QUALITY_FILES}


def test_gains_and_wavelengths_come_from_the_xml_not_the_item(sim: Scene, tmp_path: Path) -> None:
    tree = ET.parse(sim.assets["metadata"])
    band = tree.getroot().find("specific/bandCharacterisation/bandID[@number='10']")
    assert band is not None
    for tag, value in (
        ("GainOfBand", "0.0002"),
        ("OffsetOfBand", "0.01"),
        ("wavelengthCenterOfBand", "500.5"),
    ):
        element = band.find(tag)
        assert element is not None
        element.text = value
    xml_path = tmp_path / "METADATA.XML"
    tree.write(xml_path)
    ds = open_enmap(sim.model_copy(update={"assets": {**sim.assets, "metadata": str(xml_path)}}))
    dn = read_all(sim.assets["data"])[9]
    np.testing.assert_allclose(
        ds.reflectance[9].values, np.where(dn == NODATA, np.nan, dn * 2e-4 + 0.01), rtol=1e-6
    )
    assert ds.wavelength.values[9] == 500.5
    assert sim.bands.wavelength_nm[9] != 500.5


def test_without_xml_the_item_band_table_is_used(sim: Scene) -> None:
    assets = {k: v for k, v in sim.assets.items() if k != "metadata"}
    bands = sim.bands.model_copy(update={"scale": (2e-4,) * 224})
    ds = open_enmap(sim.model_copy(update={"assets": assets, "bands": bands}))
    assert ds.attrs["band_table"] == "item eo:bands"
    dn = read_all(sim.assets["data"])[:, :8, :8]
    np.testing.assert_allclose(
        ds.reflectance[:, :8, :8].values, decoded(dn, np.full(224, 2e-4), np.zeros(224)), rtol=1e-6
    )


def test_missing_quality_assets_are_left_out_of_the_dataset_and_the_rule(sim: Scene) -> None:
    assets = {k: v for k, v in sim.assets.items() if k in ("data", "metadata", "quality:classes")}
    ds = open_enmap(sim.model_copy(update={"assets": assets}))
    assert "quality_cloud" not in ds and "defective" not in ds and "quality_classes" in ds
    classes = read_all(sim.assets["quality:classes"])[0]
    dn = read_all(sim.assets["data"])
    np.testing.assert_array_equal(ds.valid.values, (dn != NODATA).any(axis=0) & (classes != 3))
    assert any("quality:cloud" in note for note in ds.attrs["notes"])


# --- the real patch (no METADATA.XML) ------------------------------------------------------------


def test_real_patch_bands_nodata_scaling_and_masks() -> None:
    ds = open_enmap(real_scene(), chunks=64)
    dn = read_all(str(REAL / f"{REAL_NAME}-SPECTRAL_IMAGE.TIF"))
    assert ds.sizes == {"band": 224, "y": 128, "x": 128}
    assert ds.attrs["band_table"] == "item eo:bands"
    refl = ds.reflectance.values
    np.testing.assert_allclose(refl, np.where(dn == NODATA, np.nan, dn * 1e-4), rtol=1e-6)
    assert np.isnan(refl[REAL_EMPTY]).all()
    assert not np.isnan(np.delete(refl, REAL_EMPTY, axis=0)).any()
    assert np.flatnonzero(~ds.good_band.values).tolist() == REAL_EMPTY
    assert str(ds.rio.crs) == "EPSG:32618"
    assert tuple(ds.rio.transform())[:6] == (30.0, 0.0, 688005.0, 0.0, -30.0, 4561935.0)
    assert ds.x.values[0] == 688020.0 and ds.y.values[0] == 4561920.0
    assert ds.valid.values.all()  # all water, no cloud, every pixel has data
    pixelmask = read_all(str(REAL / f"{REAL_NAME}-QL_PIXELMASK.TIF"))
    np.testing.assert_array_equal(ds.defective.values, pixelmask.sum(axis=0))
    assert ds.defective.values.max() > 0


def test_real_patch_empty_bands_are_detected_not_taken_from_the_table() -> None:
    table = enmap_band_table()
    all_good = table.model_copy(update={"good": (True,) * 224})
    ds = open_enmap(real_scene(bands=all_good))
    assert np.flatnonzero(~ds.good_band.values).tolist() == REAL_EMPTY
    assert ds.attrs["nodata_bands"] == [str(i + 1) for i in REAL_EMPTY]


def test_empty_bands_are_detected_from_overviews(tmp_path: Path) -> None:
    image = tmp_path / f"{REAL_NAME}-SPECTRAL_IMAGE.TIF"
    shutil.copy(REAL / image.name, image)
    os.chmod(image, 0o644)
    with rasterio.open(image, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.nearest)
    with rasterio.open(image) as src:
        assert src.overviews(1) == [2, 4]
    all_good = enmap_band_table().model_copy(update={"good": (True,) * 224})
    scene = real_scene(bands=all_good, assets={"data": str(image)})
    ds = open_enmap(scene)
    assert np.flatnonzero(~ds.good_band.values).tolist() == REAL_EMPTY


def test_nodata_bands_rule() -> None:
    sample = np.array([[1, 2, NODATA], [NODATA, NODATA, NODATA], [NODATA, 5, NODATA]])
    assert nodata_bands(sample, NODATA).tolist() == [False, True, False]
    assert nodata_bands(np.full((3, 4), NODATA), NODATA) is None  # no evidence either way
    assert not nodata_bands(sample, None).any()


# --- laziness and the dask graph -----------------------------------------------------------------


def test_open_reads_only_a_small_sample_and_a_window_reads_only_that_window(
    sim: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[Any, Any]] = []
    original = rasterio.io.DatasetReader.read

    def spy(self: rasterio.io.DatasetReader, *args: Any, **kwargs: Any) -> np.ndarray:
        reads.append((kwargs.get("window"), kwargs.get("out_shape")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    ds = open_enmap(sim, chunks=16)
    assert ds.reflectance.data.npartitions == 16
    assert ds.valid.data.npartitions == 16
    # Open time: the five sample windows of the spectral image, at most 32 × 32 each.
    assert 0 < len(reads) <= 5
    assert all(w.height <= 32 and w.width <= 32 for w, _ in reads)

    reads.clear()
    with dask.config.set(scheduler="synchronous"):
        part = ds.reflectance.isel(y=slice(20, 26), x=slice(3, 7)).values
    assert part.shape == (224, 6, 4)
    assert len(reads) == 1
    window = reads[0][0]
    assert (window.row_off, window.col_off, window.height, window.width) == (20, 3, 6, 4)

    reads.clear()
    with dask.config.set(scheduler="synchronous"):
        cloud = ds.quality_cloud[16:32, 0:16].values
    assert cloud.shape == (16, 16)
    assert len(reads) == 1 and reads[0][0].height == 16


def test_graph_pickles_and_computes_after_a_round_trip(sim: Scene) -> None:
    ds = open_enmap(sim, chunks=32)
    arr = pickle.loads(pickle.dumps(ds.reflectance.data))
    valid = pickle.loads(pickle.dumps(ds.valid.data))
    np.testing.assert_array_equal(arr.compute(scheduler="threads"), ds.reflectance.values)
    np.testing.assert_array_equal(valid.compute(), ds.valid.values)


# --- bad input -----------------------------------------------------------------------------------


def copy_image(sim: Scene, tmp_path: Path) -> Path:
    path = tmp_path / Path(sim.assets["data"]).name
    shutil.copy(sim.assets["data"], path)
    return path


def with_image(sim: Scene, path: Path) -> Scene:
    return sim.model_copy(update={"assets": {**sim.assets, "data": str(path)}})


def test_truncated_image_is_refused_at_open_naming_the_file(sim: Scene, tmp_path: Path) -> None:
    path = copy_image(sim, tmp_path)
    os.truncate(path, path.stat().st_size * 2 // 3)
    with pytest.raises(SceneFormatError, match="truncated") as info:
        open_enmap(with_image(sim, path))
    assert path.name in str(info.value) and info.value.where == str(path)


def test_corrupt_image_is_refused_naming_the_file(sim: Scene, tmp_path: Path) -> None:
    path = tmp_path / "x-SPECTRAL_IMAGE_COG.TIF"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(SceneFormatError, match=r"x-SPECTRAL_IMAGE_COG\.TIF"):
        open_enmap(with_image(sim, path))


def test_missing_image_file_is_refused(sim: Scene, tmp_path: Path) -> None:
    with pytest.raises(SceneFormatError, match="does not exist"):
        open_enmap(with_image(sim, tmp_path / "gone-SPECTRAL_IMAGE.TIF"))
    no_data = {k: v for k, v in sim.assets.items() if k != "data"}
    with pytest.raises(SceneFormatError, match="'data'"):
        open_enmap(sim.model_copy(update={"assets": no_data}))


def test_file_damaged_after_open_fails_at_compute_naming_the_file(
    sim: Scene, tmp_path: Path
) -> None:
    path = copy_image(sim, tmp_path)
    ds = open_enmap(with_image(sim, path))
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(SceneFormatError, match="corrupt or truncated") as info:
        ds.reflectance.compute()
    assert path.name in str(info.value)


def test_band_count_differs_from_the_band_table(sim: Scene) -> None:
    table = enmap_band_table()
    short = BandTable.from_arrays(table.wavelengths[:223], table.fwhms[:223], scale=1e-4)
    assets = {k: v for k, v in sim.assets.items() if k != "metadata"}
    with pytest.raises(SceneFormatError, match="has 224 bands but the band table") as info:
        open_enmap(sim.model_copy(update={"assets": assets, "bands": short}))
    assert Path(sim.assets["data"]).name in str(info.value)


def test_xml_with_fewer_bands_than_the_image_is_refused(sim: Scene, tmp_path: Path) -> None:
    tree = ET.parse(sim.assets["metadata"])
    characterisation = tree.getroot().find("specific/bandCharacterisation")
    assert characterisation is not None
    characterisation.remove(characterisation.findall("bandID")[-1])
    xml_path = tmp_path / "METADATA.XML"
    tree.write(xml_path)
    with pytest.raises(
        SceneFormatError, match=r"224 bands but the band table \(METADATA.XML\) has 223"
    ):
        open_enmap(sim.model_copy(update={"assets": {**sim.assets, "metadata": str(xml_path)}}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crs": "EPSG:32614"}, "item says EPSG:32614"),
        ({"transform": (30.0, 0.0, 688035.0, 0.0, -30.0, 4561935.0)}, "has transform"),
        ({"shape": (127, 128)}, "128 × 128 pixels but the item says 127 × 128"),
    ],
)
def test_grid_differs_from_the_item(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SceneFormatError, match=message) as info:
        open_enmap(real_scene(**change))
    assert "SPECTRAL_IMAGE.TIF" in str(info.value)


def test_image_without_crs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nocrs-SPECTRAL_IMAGE.TIF"
    profile = {
        "driver": "GTiff",
        "dtype": "int16",
        "count": 224,
        "height": 8,
        "width": 8,
        "nodata": NODATA,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((224, 8, 8), np.int16))
    scene = real_scene(assets={"data": str(path)}, crs=None, transform=None, shape=None)
    with pytest.raises(SceneFormatError, match=r"nocrs-SPECTRAL_IMAGE\.TIF has no CRS"):
        open_enmap(scene)


def test_quality_layer_on_another_grid_is_refused(sim: Scene) -> None:
    scene = real_scene(
        assets={
            "data": str(REAL / f"{REAL_NAME}-SPECTRAL_IMAGE.TIF"),
            "quality:cloud": sim.assets["quality:cloud"],
        }
    )
    with pytest.raises(SceneFormatError, match="expected 1 on the grid of"):
        open_enmap(scene)


def test_bad_arguments(sim: Scene) -> None:
    with pytest.raises(ConfigError, match="chunks"):
        open_enmap(sim, chunks=0)
    with pytest.raises(SceneFormatError, match="emit scene"):
        open_enmap(sim.model_copy(update={"sensor": "emit"}))


# --- METADATA.XML parsing (pure) -----------------------------------------------------------------


def test_parse_metadata_reads_bands_in_number_order_and_grid_facts() -> None:
    xml = """<level_X><specific><bandCharacterisation>
      <bandID number="2"><wavelengthCenterOfBand>424.0</wavelengthCenterOfBand>
        <FWHMOfBand>6.6</FWHMOfBand><GainOfBand>2e-4</GainOfBand><OffsetOfBand>0.5</OffsetOfBand>
      </bandID>
      <bandID number="1"><wavelengthCenterOfBand>418.4</wavelengthCenterOfBand>
        <FWHMOfBand>7.0</FWHMOfBand><GainOfBand>1e-4</GainOfBand><OffsetOfBand>0</OffsetOfBand>
      </bandID>
    </bandCharacterisation></specific>
    <product><image><merge><channels>2</channels><dimension><rows>5</rows><columns>6</columns></dimension></merge></image>
      <ortho><projection>UTM_Zone13_North</projection><resolution>30</resolution></ortho></product></level_X>"""
    meta = parse_metadata(xml, where="m.xml")
    assert meta.bands.name == ("1", "2")
    assert meta.bands.wavelength_nm == (418.4, 424.0)
    assert meta.bands.scale == (1e-4, 2e-4) and meta.bands.offset == (0.0, 0.5)
    assert (meta.channels, meta.rows, meta.columns) == (2, 5, 6)
    assert meta.projection == "UTM_Zone13_North" and meta.resolution_m == 30.0


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<level_X><specific>", "not well-formed"),
        ("<level_X><specific/></level_X>", "no specific/bandCharacterisation"),
        (
            '<level_X><specific><bandCharacterisation><bandID number="1">'
            "<wavelengthCenterOfBand>418</wavelengthCenterOfBand><FWHMOfBand>7</FWHMOfBand><GainOfBand>x</GainOfBand>"
            "<OffsetOfBand>0</OffsetOfBand></bandID></bandCharacterisation></specific></level_X>",
            "bandID 1 has no valid gain",
        ),
        (
            '<level_X><specific><bandCharacterisation><bandID number="2">'
            "<wavelengthCenterOfBand>418</wavelengthCenterOfBand><FWHMOfBand>7</FWHMOfBand><GainOfBand>1</GainOfBand>"
            "<OffsetOfBand>0</OffsetOfBand></bandID></bandCharacterisation></specific></level_X>",
            "band numbers are not 1…1",
        ),
    ],
)
def test_parse_metadata_refuses_bad_documents(xml: str, message: str) -> None:
    with pytest.raises(SceneFormatError, match=message) as info:
        parse_metadata(xml, where="/data/x-METADATA.XML")
    assert info.value.where == "/data/x-METADATA.XML"
