"""Quicklook PNGs: size, legend, colours, transparency and decimated reads of large rasters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.enums import Resampling

from spectraflow.mosaic.layers import MapClass
from spectraflow.mosaic.quicklook import (
    LEGEND_WIDTH,
    RAMP_ANCHORS,
    quicklook_size,
    ramp,
    write_quicklook,
)

CLASSES = (
    MapClass(1, "water", "#1f78b4"),
    MapClass(2, "tree_cover", "#33a02c"),
    MapClass(5, "a_class_with_a_name_far_too_long_for_the_legend_panel", "#e31a1c"),
)


def _tif(path: Path, data: np.ndarray, *, nodata: float, overviews: bool = False) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 400_000, 0, -10, 5_000_000),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.set_band_description(1, "ch4_enhancement")
        if overviews:
            dst.build_overviews([2, 4], Resampling.average)
    return path


def _rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def test_class_quicklook_legend_and_transparency(tmp_path: Path) -> None:
    data = np.zeros((300, 400), np.uint8)
    data[:, 100:200], data[:, 200:300], data[:, 300:] = 1, 2, 5
    data[:50, 300:] = 9  # a value that is not a class: grey
    png = write_quicklook(_tif(tmp_path / "c.tif", data, nodata=0), tmp_path / "c.png",
                          classes=CLASSES, title="land cover")  # fmt: skip
    with Image.open(png) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.size == quicklook_size((300, 400), classes=3) == (400 + LEGEND_WIDTH, 300)
        pixels = np.asarray(image)
    assert (pixels[:, :100, 3] == 0).all()  # no data: transparent
    assert (pixels[100:, 100:200, :3] == _rgb("#1f78b4")).all()
    assert (pixels[:50, 300:400, :3] == 128).all()
    legend = pixels[:, 400:]
    assert (legend[..., 3] == 255).all()
    for cls in CLASSES:
        swatch = (legend[..., :3] == _rgb(cls.color)).all(axis=-1)
        assert swatch.sum() == 14 * 14, cls.name
    text = (legend[..., :3] < 100).all(axis=-1)
    assert text[:, 30:].any()  # names are written beside the swatches
    assert not text[:, LEGEND_WIDTH - 8 :].any()  # the long name was cut to fit


def test_continuous_quicklook_ramp_and_colour_bar(tmp_path: Path) -> None:
    data = np.tile(np.linspace(0.0, 1000.0, 500, dtype=np.float32), (200, 1))
    data[:20] = np.nan
    data[20:40] = -9999.0  # the file's nodata value
    tif = _tif(tmp_path / "m.tif", data, nodata=-9999.0)
    png = write_quicklook(tif, tmp_path / "m.png", units="ppm m")
    legend_height = quicklook_size((200, 500))[1]
    with Image.open(png) as image:
        assert image.size == (500 + LEGEND_WIDTH, legend_height)  # the colour bar is taller
        pixels = np.asarray(image)
    assert (pixels[:40, :500, 3] == 0).all()  # NaN and nodata transparent
    assert (pixels[200:, :500, 3] == 0).all()  # below the map
    lo, hi = ramp()[0], ramp()[-1]
    assert (pixels[100, :5, :3] == lo).all()  # at or below the 2nd percentile
    assert (pixels[100, 495:500, :3] == hi).all()
    bar = pixels[:, 500:, :3]
    assert (bar == lo).all(axis=-1).any() and (bar == hi).all(axis=-1).any()

    fixed = write_quicklook(tif, tmp_path / "f.png", value_range=(0.0, 2000.0))
    with Image.open(fixed) as image:
        middle = np.asarray(image)[100, 499, :3]
    assert tuple(middle) == tuple(ramp()[128])  # 1000 of 0..2000: the ramp's middle


def test_large_raster_is_decimated(tmp_path: Path) -> None:
    data = np.arange(2400 * 1600, dtype=np.float32).reshape(1600, 2400)
    tif = _tif(tmp_path / "big.tif", data, nodata=float("nan"), overviews=True)
    png = write_quicklook(tif, tmp_path / "big.png", max_size=600)
    with Image.open(png) as image:
        assert image.size == quicklook_size((1600, 2400), max_size=600) == (600 + LEGEND_WIDTH, 400)


def test_ramp_is_perceptually_ordered() -> None:
    colours = ramp().astype(float)
    assert colours.shape == (256, 3)
    assert tuple(colours[0]) == RAMP_ANCHORS[0] and tuple(colours[-1]) == RAMP_ANCHORS[-1]
    luminance = colours @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luminance) >= 0).all()  # brighter with the value: readable in grey too
    assert luminance[-1] > 5 * luminance[0]


@pytest.mark.parametrize("shape", [(1, 1), (10, 5000), (5000, 10)])
def test_quicklook_size_keeps_aspect(shape: tuple[int, int]) -> None:
    width, height = quicklook_size(shape, max_size=1024, classes=2)
    map_width = width - LEGEND_WIDTH
    assert 1 <= map_width <= 1024 and height >= 1
    if max(shape) > 1024:
        assert max(map_width, height) >= 1024 - 1
