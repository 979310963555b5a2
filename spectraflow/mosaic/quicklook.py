"""Quicklook PNGs of map products, with a legend, drawn with Pillow only.

The map is read from the product's COG with a decimated read (GDAL serves it from the internal
overviews), so a quicklook costs about the same for any raster size. Layout, in pixels::

    +----------------------+-------------------+
    | map (longest side    | legend panel      |
    | <= max_size,         | LEGEND_WIDTH wide |
    | nodata transparent)  | (white)           |
    +----------------------+-------------------+

Class maps are drawn with their class colours and a legend of swatches and class names;
continuous maps with a viridis colour ramp stretched between the 2nd and 98th percentiles and a
colour bar labelled with those values and the units.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageColor, ImageDraw, ImageFont
from rasterio.enums import Resampling

from spectraflow.mosaic.layers import MapClass

__all__ = ["LEGEND_WIDTH", "RAMP_ANCHORS", "quicklook_size", "ramp", "write_quicklook"]

LEGEND_WIDTH = 240
"""Width of the legend panel right of the map (pixels)."""

# viridis at 0, 1/8, ..., 1 (perceptually uniform, colour-blind safe); interpolated to 256 steps.
RAMP_ANCHORS: tuple[tuple[int, int, int], ...] = (
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
)
_NO_CLASS = (128, 128, 128, 255)  # a value that is not one of the classes: grey
_PAD, _ROW, _SWATCH, _TITLE = 10, 22, 14, 28
_BAR_WIDTH, _BAR_HEIGHT = 24, 200
_TEXT = (30, 30, 30, 255)


def quicklook_size(
    shape: tuple[int, int], *, max_size: int = 1024, classes: int = 0
) -> tuple[int, int]:
    """``(width, height)`` of the quicklook of a raster of ``shape`` (height, width).

    ``classes`` is the number of legend entries of a class map (0: a continuous map).
    """
    map_h, map_w = _map_shape(shape, max_size)
    legend_h = _TITLE + _PAD + (classes * _ROW if classes else _BAR_HEIGHT + 2 * _ROW) + _PAD
    return map_w + LEGEND_WIDTH, max(map_h, legend_h)


def ramp(steps: int = 256) -> np.ndarray:
    """The continuous colour ramp as an ``(steps, 3)`` uint8 array, low values first."""
    anchors = np.asarray(RAMP_ANCHORS, dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, steps)
    channels = [np.interp(t, at, anchors[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=1)).astype(np.uint8)


def write_quicklook(
    cog: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[MapClass] = (),
    units: str | None = None,
    title: str | None = None,
    max_size: int = 1024,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Draw the first band of ``cog`` as a PNG with a legend; return the PNG's path.

    Parameters
    ----------
    cog
        A single-band GeoTIFF, ideally with overviews (decimated reads use them).
    out
        The PNG file to write.
    classes
        The classes of a class map (nodata 0 is transparent, other values not listed grey);
        empty for a continuous map (NaN or the file's nodata transparent).
    units
        Units of a continuous map, written beside the colour bar.
    title
        Legend title (default: the file's band description, else its name).
    max_size
        Longest side of the map part, in pixels; larger rasters are downsampled.
    value_range
        ``(low, high)`` of the colour ramp (default: 2nd and 98th percentiles of the map).
    """
    out = Path(out)
    with rasterio.open(cog) as src:
        map_h, map_w = _map_shape((src.height, src.width), max_size)
        data = src.read(1, out_shape=(map_h, map_w), resampling=Resampling.nearest)
        nodata = src.nodata
        title = title or src.descriptions[0] or Path(cog).stem
    width, height = quicklook_size((src.height, src.width), max_size=max_size, classes=len(classes))
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    panel = Image.new("RGBA", (LEGEND_WIDTH, height), (255, 255, 255, 255))
    draw = ImageDraw.Draw(panel)
    font = _font(13)
    draw.text((_PAD, _PAD), _fit(draw, title, font, LEGEND_WIDTH - 2 * _PAD), fill=_TEXT, font=font)
    if classes:
        rgba = _class_colours(data, classes)
        _class_legend(draw, classes, font)
    else:
        valid = np.isfinite(data) if data.dtype.kind == "f" else np.ones(data.shape, bool)
        if nodata is not None and not np.isnan(nodata):
            valid &= data != nodata
        low, high = value_range or _stretch(data[valid])
        rgba = _ramp_colours(data, valid, low, high)
        note = "fixed range" if value_range else "2nd-98th percentile stretch"
        _colour_bar(draw, (low, high), units, note, font)
    canvas.paste(Image.fromarray(rgba, "RGBA"), (0, 0))
    canvas.paste(panel, (map_w, 0))
    canvas.save(out, format="PNG", optimize=False)
    return out


def _map_shape(shape: tuple[int, int], max_size: int) -> tuple[int, int]:
    height, width = shape
    scale = min(1.0, max_size / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _class_colours(data: np.ndarray, classes: Sequence[MapClass]) -> np.ndarray:
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[1:] = _NO_CLASS
    for cls in classes:
        if 0 < cls.value < 256:
            lut[cls.value] = (*_rgb(cls.color), 255)
    index = np.clip(data, 0, 255).astype(np.uint8)
    return lut[index]


def _ramp_colours(data: np.ndarray, valid: np.ndarray, low: float, high: float) -> np.ndarray:
    colours = ramp()
    with np.errstate(invalid="ignore"):
        t = np.clip((data.astype(np.float64) - low) / (high - low), 0.0, 1.0)
    index = np.where(valid, np.round(t * 255), 0).astype(np.uint8)
    rgba = np.zeros((*data.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colours[index]
    rgba[..., 3] = np.where(valid, 255, 0)
    return rgba


def _stretch(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, [2, 98]))
    if high <= low:  # a constant map: widen so that the ramp's middle shows it
        low, high = low - 0.5, high + 0.5
    return low, high


def _class_legend(
    draw: ImageDraw.ImageDraw, classes: Sequence[MapClass], font: ImageFont.ImageFont
) -> None:
    y = _TITLE + _PAD
    text_x = _PAD + _SWATCH + 8
    for cls in classes:
        box = (_PAD, y, _PAD + _SWATCH - 1, y + _SWATCH - 1)
        draw.rectangle(box, fill=(*_rgb(cls.color), 255), outline=None)
        label = _fit(draw, cls.name.replace("_", " "), font, LEGEND_WIDTH - text_x - _PAD)
        draw.text((text_x, y), label, fill=_TEXT, font=font)
        y += _ROW


def _colour_bar(
    draw: ImageDraw.ImageDraw,
    value_range: tuple[float, float],
    units: str | None,
    note: str,
    font: ImageFont.ImageFont,
) -> None:
    low, high = value_range
    top = _TITLE + _PAD
    colours = ramp(_BAR_HEIGHT)[::-1]  # high values at the top
    for row, colour in enumerate(colours):
        y = top + row
        draw.line([(_PAD, y), (_PAD + _BAR_WIDTH - 1, y)], fill=(*(int(c) for c in colour), 255))
    text_x = _PAD + _BAR_WIDTH + 8
    suffix = f" {units}" if units else ""
    width = LEGEND_WIDTH - text_x - _PAD
    draw.text((text_x, top), _fit(draw, f"{high:.4g}{suffix}", font, width), fill=_TEXT, font=font)
    bottom = top + _BAR_HEIGHT - _ROW + 6
    draw.text(
        (text_x, bottom), _fit(draw, f"{low:.4g}{suffix}", font, width), fill=_TEXT, font=font
    )
    draw.text((_PAD, top + _BAR_HEIGHT + 6), note, fill=_TEXT, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # type: ignore[return-value]
    except (OSError, ImportError):  # Pillow built without FreeType: the bitmap font
        return ImageFont.load_default()  # type: ignore[return-value]


def _rgb(colour: str) -> tuple[int, int, int]:
    try:
        red, green, blue = ImageColor.getrgb(colour)[:3]
    except ValueError:
        return _NO_CLASS[:3]
    return red, green, blue
