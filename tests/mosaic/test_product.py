"""write_product: COGs, STAC item, quicklook, Zarr, atomic replacement and catalog publishing."""

from __future__ import annotations

import fcntl
import json
import math
import os
import resource
import signal
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pyproj
import pystac
import pystac.validation
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from PIL import Image
from pystac.extensions.classification import ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from pystac_client import Client
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import Point, shape

from spectraflow.catalog.store import LocalCatalog
from spectraflow.errors import CatalogError, ProductError
from spectraflow.mosaic.layers import block_windows
from spectraflow.mosaic.product import Product, SourceRef, write_product
from spectraflow.mosaic.quicklook import LEGEND_WIDTH, quicklook_size
from spectraflow.mosaic.stac_item import PROCESSING_SCHEMA, clean_href

CLASSES = {1: ("water", "#1f78b4"), 2: ("tree_cover", "#33a02c"), 3: ("built-up", "#e31a1c")}
UTM = "EPSG:32613"
TRANSFORM = Affine(30.0, 0.0, 580_000.0, 0.0, -30.0, 3_550_020.0)
SOURCES = (
    SourceRef(
        "EMIT_L2A_001",
        "emit",
        "2024-06-12T17:47:42Z",
        "https://stac.example.test/items/EMIT_L2A_001.json?sig=s3cret&se=2030-01-01",
    ),
    SourceRef(
        "ENMAP_L2A_002",
        "enmap",
        "2024-06-27T10:00:00Z",
        "https://user:pass@stac.example.test/items/ENMAP_L2A_002.json",
    ),
)


def _majority(rows: int = 600, cols: int = 700) -> np.ndarray:
    """Class stripes whose edges fall between 2 x 2 blocks; 0 = no data."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    classes = (1 + (xx // 100 + yy // 150) % 3).astype(np.uint8)
    classes[:, :40] = 0  # a no-data strip
    return classes


def _class_layers(rows: int = 600, cols: int = 700, *, chunks: int | None = None) -> xr.Dataset:
    classes = _majority(rows, cols)
    # Speckle: one pixel of each 2 x 2 block, at each of the 4 places in turn, is another class.
    yy, xx = np.mgrid[0:rows:2, 0:cols:2]
    rr, cc = yy + (yy // 2) % 2, xx + (xx // 2) % 2
    classes[rr, cc] = np.where(classes[rr, cc] > 0, classes[rr, cc] % 3 + 1, 0)
    yy, xx = np.mgrid[0:rows, 0:cols]
    confidence = np.where(classes > 0, (xx % 97) / 97.0, np.nan).astype(np.float32)
    data: dict[str, Any] = {"class": classes, "confidence": confidence}
    if chunks:
        data = {k: da.from_array(v, chunks=chunks) for k, v in data.items()}
    ds = xr.Dataset({k: (("y", "x"), v) for k, v in data.items()})
    ds["class"].attrs.update(
        long_name="class value (0 = no data)",
        flag_values=list(CLASSES),
        flag_meanings=" ".join(name for name, _ in CLASSES.values()),
        flag_colors=[colour for _, colour in CLASSES.values()],
    )
    ds["confidence"].attrs.update(long_name="probability of the chosen class", units="1")
    ds.attrs.update(model="lc-any-wavelength", model_version="1.0.0", policy="latest")
    return ds.rio.write_crs(UTM).rio.write_transform(TRANSFORM)


def _ch4_layers(data: Any, uncertainty: Any) -> xr.Dataset:
    rows, cols = data.shape
    ds = xr.Dataset(
        {"ch4_enhancement": (("y", "x"), data), "uncertainty": (("y", "x"), uncertainty)},
        coords={  # pixel centres: rioxarray derives the transform from them
            "y": TRANSFORM.f + (np.arange(rows) + 0.5) * TRANSFORM.e,
            "x": TRANSFORM.c + (np.arange(cols) + 0.5) * TRANSFORM.a,
        },
    )
    ds["ch4_enhancement"].attrs.update(units="ppm m", long_name="CH4 enhancement")
    ds["uncertainty"].attrs.update(units="ppm m")
    ds.attrs.update(model="ch4-mf", model_version="0.3")
    return ds.rio.write_crs(UTM)


def _ch4_values(rows: int, cols: int) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    plume = 800.0 * np.exp(-((xx - 300.0) ** 2 + (yy - 200.0) ** 2) / 4000.0)
    values = (plume + (xx % 7) * 3.0).astype(np.float32)
    values[:30, :] = np.nan
    return values


def _hrefs(doc: dict[str, Any]) -> list[str]:
    return [a["href"] for a in doc["assets"].values()] + [link["href"] for link in doc["links"]]


def _validate_core(doc: dict[str, Any]) -> None:
    # No installed package ships the proj/raster/classification/processing extension schemas
    # (pystac, rustac and stac-validator bundle the core ones only, and fetch the others).
    pystac.validation.validate_dict(doc, extensions=[])


def _no_leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def class_product(tmp_path_factory: pytest.TempPathFactory) -> Product:
    out = tmp_path_factory.mktemp("products")
    return write_product(_class_layers(), out=out, name="lc-permian", sources=SOURCES, zarr=True)


def test_class_map_cog_reads_back_equal(class_product: Product) -> None:
    layers = _class_layers()
    assert class_product.cog == class_product.item.parent / "lc-permian.tif"
    assert set(class_product.assets) == {"data", "confidence", "categories", "quicklook", "zarr"}
    for path in (class_product.cog, class_product.assets["confidence"]):
        valid, errors, warnings = cog_validate(path, strict=True, quiet=True)
        assert valid, (path, errors, warnings)
    with rasterio.open(class_product.cog) as src:
        assert (src.dtypes[0], src.nodata, src.crs.to_epsg()) == ("uint8", 0, 32613)
        assert src.transform == TRANSFORM
        assert src.block_shapes[0] == (512, 512)
        assert src.compression is not None and src.compression.value == "ZSTD"
        np.testing.assert_array_equal(src.read(1), layers["class"].values)
        assert src.overviews(1) == [2]
        colours = src.colormap(1)
        for value, (_, colour) in CLASSES.items():
            assert colours[value][:3] == tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert src.descriptions[0] == "class: 1=water, 2=tree_cover, 3=built-up"
        assert src.tags(1)["flag_meanings"] == "water tree_cover built-up"
        assert src.tags()["model"] == "lc-any-wavelength"
        assert src.tags()["OVERVIEW_RESAMPLING"] == "MODE"
    with rasterio.open(class_product.cog, overview_level=0) as overview:
        # mode: class values only, the block's majority (nearest would pick the speckle in 1/4)
        np.testing.assert_array_equal(overview.read(1), _majority()[::2, ::2])
    with rasterio.open(class_product.assets["confidence"]) as src:
        assert src.dtypes[0] == "float32" and math.isnan(src.nodata)
        assert src.units == ("1",)
        np.testing.assert_array_equal(src.read(1), layers["confidence"].values)
    # GDAL category names: the PAM sidecar beside the COG, index = pixel value
    root = ET.parse(class_product.assets["categories"]).getroot()
    names = [c.text or "" for c in root.iter("Category")]
    assert names == ["no data", "water", "tree_cover", "built-up"]


def test_class_map_item(class_product: Product) -> None:
    doc = json.loads(class_product.item.read_text())
    _validate_core(doc)
    assert doc["id"] == "lc-permian"
    assert set(doc["stac_extensions"]) >= {
        ProjectionExtension.get_schema_uri(),
        RasterExtension.get_schema_uri(),
        ClassificationExtension.get_schema_uri(),
        PROCESSING_SCHEMA,
    }
    hrefs = _hrefs(doc)
    assert not any("?" in href or "@" in href or "s3cret" in href for href in hrefs)
    assert all(a["href"].startswith("./") for a in doc["assets"].values())
    assert [link["href"] for link in doc["links"] if link["rel"] == "derived_from"] == [
        "https://stac.example.test/items/EMIT_L2A_001.json",
        "https://stac.example.test/items/ENMAP_L2A_002.json",
    ]
    props = doc["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-06-12T17:47:42Z",
        "2024-06-27T10:00:00Z",
    )
    assert props["instruments"] == ["emit", "enmap"]
    assert props["processing:level"] == "L4"
    assert "spectraflow" in props["processing:software"]
    assert "lc-any-wavelength" in props["processing:lineage"]
    assert "latest" in props["processing:lineage"]

    item = pystac.Item.from_dict(doc)
    proj = ProjectionExtension.ext(item)
    assert (proj.code, proj.shape) == ("EPSG:32613", [600, 700])
    assert proj.transform == list(TRANSFORM)[:6]
    to_lonlat = pyproj.Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    corners = [TRANSFORM @ (c, r) for c in (0, 700) for r in (0, 600)]
    lons, lats = to_lonlat.transform(*zip(*corners, strict=True))
    assert item.bbox == pytest.approx([min(lons), min(lats), max(lons), max(lats)], abs=1e-3)
    assert shape(item.geometry).contains(Point(*to_lonlat.transform(*(TRANSFORM @ (350, 300)))))
    data = item.assets["data"]
    assert data.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    (band,) = RasterExtension.ext(data).bands or []
    assert (band.data_type, band.nodata, band.spatial_resolution) == ("uint8", 0, 30.0)
    classes = {c.value: c for c in ClassificationExtension.ext(data).classes or []}
    assert classes[0].nodata is True
    for value, (name, colour) in CLASSES.items():
        assert (classes[value].name, classes[value].color_hint) == (name, colour[1:].upper())
    counts = np.bincount(_class_layers()["class"].values.ravel(), minlength=4)
    assert [classes[v].count for v in CLASSES] == counts[1:].tolist()
    (conf,) = RasterExtension.ext(item.assets["confidence"]).bands or []
    assert (conf.nodata, conf.unit) == ("nan", "1")
    values = _class_layers()["confidence"].values.astype(np.float64)
    assert conf.statistics is not None
    assert conf.statistics.mean == pytest.approx(float(np.nanmean(values)), rel=1e-9)
    assert conf.statistics.stddev == pytest.approx(float(np.nanstd(values)), rel=1e-6)
    assert conf.statistics.valid_percent == pytest.approx(100 * 660 / 700, abs=1e-3)
    assert item.assets["zarr"].media_type == "application/vnd+zarr"
    assert item.assets["quicklook"].media_type == "image/png"


def test_class_map_quicklook_and_zarr(class_product: Product) -> None:
    assert class_product.quicklook is not None
    with Image.open(class_product.quicklook) as image:
        assert image.format == "PNG"
        assert image.size == quicklook_size((600, 700), classes=3)
        pixels = np.asarray(image.convert("RGBA"))
    legend = pixels[:, 700:]
    assert legend.shape[1] == LEGEND_WIDTH
    for _, colour in CLASSES.values():
        rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        assert (legend[..., :3] == rgb).all(axis=-1).sum() >= 100  # a 14 x 14 swatch
    assert (pixels[:, :40, 3] == 0).all()  # the no-data strip is transparent

    zarr = xr.open_zarr(class_product.assets["zarr"], consolidated=True)
    layers = _class_layers()
    assert zarr["class"].dtype == np.uint8
    np.testing.assert_array_equal(zarr["class"].values, layers["class"].values)
    np.testing.assert_array_equal(zarr["confidence"].values, layers["confidence"].values)
    assert zarr.rio.crs.to_epsg() == 32613
    assert zarr.rio.transform() == TRANSFORM
    assert zarr.attrs["model"] == "lc-any-wavelength"


def test_continuous_map_from_dask_block_by_block(tmp_path: Path) -> None:
    rows, cols, chunk = 700, 1100, 512
    values = _ch4_values(rows, cols)
    calls: Counter[tuple[int, ...]] = Counter()
    lock = threading.Lock()

    def block(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        assert block_info is not None
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        with lock:
            calls[(r0, c0)] += 1
        return values[r0:r1, c0:c1]

    lazy = da.map_blocks(block, chunks=((512, 188), (512, 512, 76)), dtype=np.float32,
                         meta=np.array((), dtype=np.float32))  # fmt: skip
    seen: list[tuple[int, int]] = []
    product = write_product(
        _ch4_layers(lazy, lazy * np.float32(0.1)),
        out=tmp_path,
        name="ch4-plume",
        compress="deflate",
        progress=lambda done, total: seen.append((done, total)),
    )
    windows = block_windows((rows, cols), ((512, 188), (512, 512, 76)))
    assert len(windows) == 6
    assert calls == {(r, c): 1 for r in (0, chunk) for c in (0, chunk, 2 * chunk)}  # each once
    assert seen == [(i, 6 + 2 + 1) for i in range(1, 10)]

    with rasterio.open(product.cog) as src:
        assert cog_validate(product.cog, strict=True, quiet=True)[0]
        assert (src.dtypes[0], src.units, src.descriptions) == (
            "float32",
            ("ppm m",),
            ("CH4 enhancement",),
        )
        assert math.isnan(src.nodata) and src.crs.to_epsg() == 32613
        assert src.transform == TRANSFORM
        assert src.compression is not None and src.compression.value == "DEFLATE"
        np.testing.assert_array_equal(src.read(1), values)
        assert src.overviews(1) == [2, 4]
        assert src.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
        half = src.read(1, out_shape=(350, 550))[100:200, 100:200]  # served by the 1st overview
        means = values[200:400, 200:400].reshape(100, 2, 100, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(half, means, rtol=1e-5)
        assert float(src.tags(1)["STATISTICS_MAXIMUM"]) == pytest.approx(np.nanmax(values))
    with rasterio.open(product.assets["uncertainty"]) as src:
        np.testing.assert_allclose(src.read(1), values * np.float32(0.1), rtol=1e-6)
    assert "categories" not in product.assets and "zarr" not in product.assets

    doc = json.loads(product.item.read_text())
    _validate_core(doc)
    assert ClassificationExtension.get_schema_uri() not in doc["stac_extensions"]
    (band,) = doc["assets"]["data"]["raster:bands"]
    assert (band["data_type"], band["nodata"], band["unit"]) == ("float32", "nan", "ppm m")
    assert band["statistics"]["minimum"] == pytest.approx(float(np.nanmin(values)))
    assert doc["properties"]["datetime"] is not None and doc["links"] == []
    assert product.quicklook is not None
    with Image.open(product.quicklook) as image:
        assert image.size == quicklook_size((rows, cols))


def _invalid_layers() -> dict[str, tuple[xr.Dataset | Any, str]]:
    good = _class_layers(64, 64)
    rotated = good.rio.write_transform(Affine(30, 5, 580_000, 5, -30, 3_550_000))
    three_d = good.assign(probabilities=(("label", "y", "x"), np.zeros((2, 64, 64), np.float32)))
    boolean = good.assign(mask=(("y", "x"), np.ones((64, 64), bool)))
    no_flags = good.assign(count=(("y", "x"), np.ones((64, 64), np.int16)))
    bad_flags = good.copy()
    bad_flags["class"].attrs = {**good["class"].attrs, "flag_colors": ["blue", "#00ff00", "#f00"]}
    float_classes = good.assign({"class": good["class"].astype(np.float32)})
    return {
        "no CRS": (xr.Dataset({"v": (("y", "x"), np.zeros((4, 4), np.float32))}), "no CRS"),
        "no variables": (xr.Dataset().rio.write_crs(UTM), "no data variables"),
        "rotated": (rotated, "north-up"),
        "south-up": (good.rio.write_transform(Affine(30, 0, 0, 0, 30, 0)), "north-up"),
        "wrong dims": (three_d, "dims"),
        "bool dtype": (boolean, "dtype bool"),
        "int without classes": (no_flags, "dtype int16"),
        "bad colours": (bad_flags, "flag_colors"),
        "float classes": (float_classes, "dtype float32"),
        "transposed": (good.transpose("x", "y"), "dims"),
        "not a dataset": (good["class"], "xarray Dataset"),
    }


@pytest.mark.parametrize("case", list(_invalid_layers()))
def test_invalid_layers_write_nothing(tmp_path: Path, case: str) -> None:
    layers, message = _invalid_layers()[case]
    out = tmp_path / "out"
    with pytest.raises(ProductError, match=message) as info:
        write_product(layers, out=out, name="bad")
    assert info.value.where and info.value.fix
    assert not out.exists()


def test_bad_name_sources_and_catalog_write_nothing(tmp_path: Path) -> None:
    layers, out = _class_layers(64, 64), tmp_path / "out"
    for name in ("", "../escape", ".hidden", "a b"):
        with pytest.raises(ProductError, match="invalid product name"):
            write_product(layers, out=out, name=name)
    bad = SourceRef("s", "emit", "yesterday")
    with pytest.raises(ProductError, match="ISO 8601") as info:
        write_product(layers, out=out, name="ok", sources=[bad])
    assert info.value.where == "sources[0].datetime"
    not_a_dir = tmp_path / "catalog.txt"
    not_a_dir.write_text("")
    with pytest.raises(CatalogError, match="not a directory"):
        write_product(layers, out=out, name="ok", catalog=not_a_dir)
    assert not out.exists()


@pytest.fixture
def file_size_limit() -> Iterator[Any]:
    """Set RLIMIT_FSIZE for the test (writes past it fail with EFBIG, as on a full disk)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death

    def limit(size: int | None) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size or old_limit[0], old_limit[1]))

    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_failed_rewrite_keeps_the_old_product(tmp_path: Path, file_size_limit: Any) -> None:
    first = write_product(_class_layers(64, 64), out=tmp_path, name="p", quicklook=False)
    before = {p.name: p.read_bytes() for p in first.item.parent.iterdir()}
    noise = np.random.default_rng(1).random((600, 700), dtype=np.float32)  # incompressible
    big = _ch4_layers(noise, noise)
    file_size_limit(200_000)
    try:
        # GDAL reports a failed tile write only on the next read: the message names no errno
        with pytest.raises(ProductError, match=r"could not write the product|disk is full") as info:
            write_product(big, out=tmp_path, name="p")
    finally:
        file_size_limit(None)
    assert info.value.fix and "free space" in info.value.fix
    assert {p.name: p.read_bytes() for p in first.item.parent.iterdir()} == before
    assert _no_leftovers(tmp_path) == []

    second = write_product(big, out=tmp_path, name="p", quicklook=False)
    assert second.item == first.item
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    assert json.loads(second.item.read_text())["assets"].keys() == {"data", "uncertainty"}


def test_next_write_cleans_up_after_a_crash(tmp_path: Path, file_size_limit: Any) -> None:
    first = write_product(_class_layers(64, 64), out=tmp_path, name="p", quicklook=False)
    before = {p.name: p.read_bytes() for p in first.item.parent.iterdir()}
    # A crash between the two renames: the old product aside, no out/p, a staging directory.
    (tmp_path / ".p.k2j4x9ab.old").mkdir()
    (tmp_path / "p").rename(tmp_path / ".p.k2j4x9ab.old" / "p")
    (tmp_path / ".p.q8zz01cd.partial" / ".work").mkdir(parents=True)
    (tmp_path / ".p.q8zz01cd.partial" / ".work" / "p.tif").write_bytes(b"half a tiff")
    others = [".p.b.k2j4x9ab.old", ".q.k2j4x9ab.partial", ".p.partial", ".p.old"]  # not p's
    for other in others:
        (tmp_path / other).mkdir()
    live = tmp_path / ".p.livewrtr.partial"  # a concurrent writer's: it holds the lock
    live.mkdir()
    noise = np.random.default_rng(2).random((600, 700), dtype=np.float32)
    handle = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        file_size_limit(200_000)
        try:  # this write fails: the old product must be back in place all the same
            with pytest.raises(ProductError):
                write_product(_ch4_layers(noise, noise), out=tmp_path, name="p")
        finally:
            file_size_limit(None)
    finally:
        os.close(handle)
    assert {p.name: p.read_bytes() for p in (tmp_path / "p").iterdir()} == before
    assert _no_leftovers(tmp_path) == sorted([live.name, *others])

    (tmp_path / ".p.zz9zz9zz.old" / "p").mkdir(parents=True)  # stale: out/p exists
    write_product(_class_layers(64, 64), out=tmp_path, name="p", quicklook=False)
    assert _no_leftovers(tmp_path) == sorted(others)  # the lock is gone: the live one too


def test_publish_to_local_catalog_and_search(tmp_path: Path) -> None:
    catalog_dir = tmp_path / "catalog"
    product = write_product(
        _class_layers(64, 64), out=tmp_path / "out", name="lc-tiny", sources=SOURCES,
        catalog=catalog_dir, quicklook=False,
    )  # fmt: skip
    single = write_product(
        _ch4_layers(_ch4_values(64, 64), _ch4_values(64, 64)),
        out=tmp_path / "out",
        name="ch4-tiny",
        sources=SOURCES[:1],
        catalog=catalog_dir,
        quicklook=False,
    )
    (stored,) = [i for i in LocalCatalog(catalog_dir).items() if i["id"] == "lc-tiny"]
    assert Path(stored["assets"]["data"]["href"]) == product.cog
    with LocalCatalog(catalog_dir).serve() as server:
        assert server.url.startswith("http://127.0.0.1:")
        client = Client.open(server.url)
        found = list(client.search(ids=["lc-tiny"]).items())
        assert [item.id for item in found] == ["lc-tiny"]
        bbox = json.loads(product.item.read_text())["bbox"]
        near = client.search(bbox=bbox, datetime="2024-06-20/2024-06-30")
        assert sorted(item.id for item in near.items()) == ["lc-tiny"]  # range overlaps
        early = client.search(bbox=bbox, datetime="2024-06-12/2024-06-13")
        assert sorted(item.id for item in early.items()) == ["ch4-tiny", "lc-tiny"]
        item = found[0]
        hrefs = [a.href for a in item.assets.values()] + [link.href for link in item.links]
        assert not any("?" in href for href in hrefs)
        assert Path(item.assets["data"].href) == product.cog
        assert {link.href for link in item.links if link.rel == "derived_from"} == {
            clean_href(s.item_href or "") for s in SOURCES
        }
    assert single.item.is_file()


def test_clean_href() -> None:
    assert clean_href("https://u:p@h.test/a/b.json?sig=x#f") == "https://h.test/a/b.json"
    assert clean_href("s3://bucket/key.zarr") == "s3://bucket/key.zarr"
    assert clean_href("/data/items/x.json") == "/data/items/x.json"
