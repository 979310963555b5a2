"""From cubes to map products over a multi-scene, multi-sensor region, through the CLI.

EnMAP, Sentinel-2 and EMIT scenes of one simulated region (different dates, CRSs and
geometries: UTM grids and EMIT's sensor geometry with its GLT) are predicted with the
wavelength-conditioned land-cover model and mosaicked into one product; two EMIT scenes give a
methane product with the matched filter.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from spectraflow.catalog import find_scene
from spectraflow.catalog.store import LocalCatalog
from spectraflow.cli import app
from spectraflow.cube import ingest
from spectraflow.mosaic import open_prediction
from spectraflow.simulate import simulate_scene


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("region")
    # The matched filter's per-column statistics need more lines than bands: demo-size EMIT.
    scenes = [
        ("enmap", "2024-06-10", 1, "tiny"),
        ("sentinel2", "2024-06-12", 2, "tiny"),
        ("emit", "2024-06-14", 3, "demo"),
        ("emit", "2024-06-20", 4, "demo"),
    ]
    cubes: dict[str, list[str]] = {}
    for sensor, date, seed, size in scenes:
        sim = simulate_scene(sensor, out=root / "scenes", size=size, date=date, seed=seed)
        cubes.setdefault(sensor, []).append(ingest(find_scene(sim.item_path), out=root / "cubes"))
    return cubes


def _predict(cubes: list[str], model: str, out: Path) -> list[str]:
    for cube in cubes:
        _cli("predict", cube, "--model", model, "--out", str(out), "--device", "cpu")
    stores = sorted(str(p) for p in out.glob(f"*.{model}.zarr"))
    assert len(stores) == len(cubes)
    return stores


def test_land_cover_product_from_three_sensors(region, tmp_path):
    cubes = [c for sensor in ("enmap", "sentinel2", "emit") for c in region[sensor][:1]]
    stores = _predict(cubes, "lc-any-wavelength", tmp_path / "predictions")
    products, catalog = tmp_path / "products", tmp_path / "catalog"
    _cli(
        "mosaic", *stores, "--out", str(products), "--name", "land-cover", "--res", "30",
        "--catalog", str(catalog),
    )  # fmt: skip

    folder = products / "land-cover"
    cog = folder / "land-cover.tif"
    assert cog_validate(str(cog))[0]
    with rasterio.open(cog) as src:
        classes = src.read(1)
        assert src.crs.to_epsg() == 32613 and src.res == (30.0, 30.0)
        assert src.nodata == 0
        colours = src.colormap(1)
    assert set(np.unique(classes)) - {0} <= set(range(1, 10))
    assert (classes > 0).mean() > 0.3  # the rotated EMIT swath leaves corners of the union empty
    assert colours[1][:3] == (0, 100, 200)  # water's colour from the model card
    item = json.loads((folder / "land-cover.json").read_text())
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert len(derived) == 3
    assert {c["name"] for c in item["assets"]["data"]["classification:classes"]} >= {"water"}
    assert Image.open(folder / "land-cover.png").size[0] > 0
    assert [i["id"] for i in LocalCatalog(catalog).items()] == ["land-cover"]


def test_the_newest_scene_wins_where_scenes_overlap(region, tmp_path):
    cubes = [region["enmap"][0], region["emit"][0]]  # 2024-06-10 and 2024-06-14
    emit, enmap = _predict(cubes, "lc-any-wavelength", tmp_path / "predictions")  # by name
    assert "EMIT" in Path(emit).name and "ENMAP" in Path(enmap).name
    _cli("mosaic", enmap, emit, "--out", str(tmp_path), "--name", "m", "--res", "30")
    with rasterio.open(tmp_path / "m" / "m.tif") as src:
        product, transform, crs = src.read(1), src.transform, src.crs
    newest = open_prediction(emit)  # EMIT on its lon/lat ortho grid (GLT)
    ortho = newest["class"].values
    rows, cols = np.nonzero(product)
    xs, ys = rasterio.transform.xy(transform, rows, cols)  # target pixel centres
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    col, row = ~newest.rio.transform() * (np.asarray(lon), np.asarray(lat))
    row, col = np.floor(row).astype(int), np.floor(col).astype(int)
    inside = (row >= 0) & (row < ortho.shape[0]) & (col >= 0) & (col < ortho.shape[1])
    picked = np.zeros_like(rows, dtype=np.uint8)
    picked[inside] = ortho[row[inside], col[inside]]
    covered = picked > 0
    assert covered.mean() > 0.5
    # where the newest scene has data, the product is its nearest pixel, wherever it lies
    np.testing.assert_array_equal(product[rows[covered], cols[covered]], picked[covered])


def test_methane_product_from_two_emit_scenes(region, tmp_path):
    stores = _predict(region["emit"], "ch4-mf", tmp_path / "predictions")
    products = tmp_path / "products"
    _cli("mosaic", *stores, "--out", str(products), "--name", "ch4", "--policy", "best-confidence")

    cog = products / "ch4" / "ch4.tif"
    assert cog_validate(str(cog))[0]
    with rasterio.open(cog) as src:
        values = src.read(1)
        assert src.dtypes[0] == "float32" and src.units[0] == "ppm m"
        assert src.crs.to_epsg() == 32613  # EMIT's lon/lat ortho grid went to the UTM zone
    assert np.isfinite(values).mean() > 0.3
    assert (products / "ch4" / "ch4.png").exists()
