"""The layers a map product is made of: plans, grid, block windows and statistics (pure).

:func:`plan_layers` checks the layers of a product and plans each variable's file (class map or
continuous values, data type, nodata, units, classes, overview resampling) on one
:class:`GridSpec`; :func:`block_windows` cuts the grid into the windows that are read at once;
:class:`BlockStats` accumulates a band's statistics block by block into :class:`BandStats`.
Nothing here reads or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from spectraflow.errors import ProductError

__all__ = [
    "BLOCK",
    "BandStats",
    "BlockStats",
    "GridSpec",
    "LayerSpec",
    "MapClass",
    "block_windows",
    "plan_layers",
]

BLOCK = 512
"""COG tile edge (pixels)."""
_MAX_WINDOW = 4096  # largest block window read at once (per variable)
_RESERVED_KEYS = frozenset({"data", "quicklook", "zarr", "categories"})
_NAME_FIX = "use letters, digits, '.', '_' and '-' only, not starting with a dot"


class MapClass(NamedTuple):
    """One class of a class map: pixel value, name, and display colour ``"#rrggbb"``."""

    value: int
    name: str
    color: str


@dataclass(frozen=True)
class BandStats:
    """Statistics of one band over its valid pixels (``None`` when there are none)."""

    minimum: float | None
    maximum: float | None
    mean: float | None
    stddev: float | None
    valid_percent: float
    counts: Mapping[int, int] = field(default_factory=dict)  # class maps: pixels per value

    def gdal_tags(self) -> dict[str, str]:
        """GDAL's own statistics band tags: GDAL and QGIS use them without scanning the raster."""
        if self.minimum is None or self.maximum is None:
            return {}
        tags = {
            "STATISTICS_MINIMUM": repr(self.minimum),
            "STATISTICS_MAXIMUM": repr(self.maximum),
            "STATISTICS_VALID_PERCENT": repr(self.valid_percent),
        }
        if self.mean is not None and self.stddev is not None:
            tags.update(STATISTICS_MEAN=repr(self.mean), STATISTICS_STDDEV=repr(self.stddev))
        return tags


@dataclass(frozen=True)
class LayerSpec:
    """How one variable of the layers is written: file, asset key, kind, nodata, units, classes."""

    var: str
    key: str  # STAC asset key
    filename: str
    kind: Literal["class", "continuous"]
    nodata: float
    units: str | None
    description: str
    classes: tuple[MapClass, ...]

    @property
    def dtype(self) -> str:
        """The file's data type: ``"uint8"`` for class maps, ``"float32"`` otherwise."""
        return "uint8" if self.kind == "class" else "float32"

    @property
    def overview_resampling(self) -> str:
        """GDAL overview resampling: the most common class, or the mean (NaN ignored)."""
        # MODE keeps class values and follows the majority; NEAREST would keep whichever
        # pixel it lands on, so speckle could outvote the class around it in overviews.
        return "MODE" if self.kind == "class" else "AVERAGE"

    def cast(self, block: np.ndarray) -> np.ndarray:
        """``block`` in the file's data type; class values outside 0..255 raise ProductError."""
        if self.kind == "continuous":
            return block.astype(np.float32, copy=False)
        if block.dtype != np.uint8 and block.size and (block.min() < 0 or block.max() > 255):
            raise ProductError(
                "class values outside 0..255",
                where=f"layers[{self.var!r}]",
                fix="class maps must hold class values 1..255 and 0 for no data",
            )
        return block.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class GridSpec:
    """The layers' grid: CRS, north-up transform of the pixel corners, ``(height, width)``."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]


class BlockStats:
    """Running statistics of the valid pixels of a band, from its blocks."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pixels = self.valid = 0
        self.mean = self.m2 = 0.0  # running mean and sum of squared deviations (Chan et al.)
        self.low, self.high = math.inf, -math.inf
        self.counts = np.zeros(256, dtype=np.int64)

    def update(self, block: np.ndarray) -> None:
        """Add one block (uint8 classes with 0 = no data, or floats with NaN = no data)."""
        self.pixels += block.size
        if self.kind == "class":
            self.counts += np.bincount(block.ravel(), minlength=256)
            return
        values = block[np.isfinite(block)].astype(np.float64)
        if values.size:
            count, mean = values.size, float(values.mean())
            m2 = float(np.square(values - mean).sum())
            total = self.valid + count
            delta = mean - self.mean
            self.mean += delta * count / total
            self.m2 += m2 + delta * delta * self.valid * count / total
            self.valid = total
            self.low, self.high = min(self.low, values.min()), max(self.high, values.max())

    def result(self) -> BandStats:
        """The statistics of all blocks added so far."""
        if self.kind == "class":
            present = np.flatnonzero(self.counts[1:]) + 1
            valid = int(self.counts[1:].sum())
            counts = {int(v): int(self.counts[v]) for v in present}
            low = float(present[0]) if valid else None
            high = float(present[-1]) if valid else None
            return BandStats(low, high, None, None, self._percent(valid), counts)
        if not self.valid:
            return BandStats(None, None, None, None, 0.0)
        stddev = math.sqrt(self.m2 / self.valid)
        percent = self._percent(self.valid)
        return BandStats(float(self.low), float(self.high), self.mean, stddev, percent)

    def _percent(self, valid: int) -> float:
        return round(100.0 * valid / self.pixels, 4) if self.pixels else 0.0


# --- planning ---------------------------------------------------------------------------------


def plan_layers(layers: xr.Dataset, name: str) -> tuple[GridSpec, list[LayerSpec]]:
    """Check ``layers`` and ``name`` and plan each variable's file.

    Raises
    ------
    ProductError
        No data variables, a bad name, dims other than ``(y, x)``, no CRS, a transform that is
        not north-up, or a dtype that is neither a class map nor continuous values.
    """
    if not isinstance(layers, xr.Dataset):
        what = f"layers must be an xarray Dataset, not {type(layers).__name__}"
        raise ProductError(what, where="layers", fix="pass an xr.Dataset of map layers")
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or len(name) > 200
        or any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in name)
    ):
        raise ProductError(f"invalid product name {name!r}", where="name", fix=_NAME_FIX)
    if not layers.data_vars:
        fix = "pass a Dataset whose first data variable is the main layer"
        raise ProductError("layers hold no data variables", where="layers", fix=fix)
    for var, array in layers.data_vars.items():
        if array.dims != ("y", "x"):
            raise ProductError(
                f"variable has dims {array.dims}, expected ('y', 'x')",
                where=f"layers[{var!r}]",
                fix="give every layer the dims (y, x) of one grid (transpose or select others)",
            )
    grid = _grid(layers)
    plan = [_layer(str(var), layers[var], name, main=i == 0) for i, var in enumerate(layers)]
    return grid, plan


def _grid(layers: xr.Dataset) -> GridSpec:
    crs = layers.rio.crs
    if crs is None:
        fix = "set it with layers.rio.write_crs(...) (rioxarray)"
        raise ProductError("layers have no CRS", where="layers", fix=fix)
    try:
        transform = layers.rio.transform()
    except Exception as error:  # rioxarray raises several kinds for unusable coordinates
        what = f"layers have no usable affine transform: {error}"
        fix = "give them x/y coordinates or layers.rio.write_transform(...)"
        raise ProductError(what, where="layers", fix=fix) from error
    shape = (int(layers.sizes["y"]), int(layers.sizes["x"]))
    if shape[0] == 0 or shape[1] == 0:
        raise ProductError("layers are empty", where="layers", fix="pass at least one pixel")
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise ProductError(
            f"grid is not north-up (transform {tuple(transform)[:6]})",
            where="layers",
            fix="reproject the layers onto a north-up grid (no rotation, y decreasing)",
        )
    return GridSpec(CRS.from_user_input(crs), transform, shape)


def _layer(var: str, array: xr.DataArray, name: str, *, main: bool) -> LayerSpec:
    where = f"layers[{var!r}]"
    attrs = array.attrs
    key = "data" if main else (f"layer-{var}" if var in _RESERVED_KEYS else var)
    filename = f"{name}.tif" if main else f"{name}_{var}.tif"
    if any(c in var for c in "/\\\0") or var.startswith("."):
        raise ProductError(f"variable name {var!r} cannot name a file", where=where, fix=_NAME_FIX)
    kind = array.dtype.kind
    if "flag_values" in attrs and kind in "ui":
        classes = _classes(attrs, where)
        labels = ", ".join(f"{c.value}={c.name}" for c in classes)
        return LayerSpec(var, key, filename, "class", 0, None, f"{var}: {labels}", classes)
    if kind == "f" and "flag_values" not in attrs:
        units = attrs.get("units")
        description = str(attrs.get("long_name") or var)
        return LayerSpec(
            var, key, filename, "continuous", math.nan, units and str(units), description, ()
        )
    raise ProductError(
        f"variable has dtype {array.dtype}, which is neither a class map nor continuous values",
        where=where,
        fix="give class maps (integers) attrs flag_values/flag_meanings/flag_colors, "
        "or cast continuous values to float32",
    )


def _classes(attrs: Mapping[str, Any], where: str) -> tuple[MapClass, ...]:
    try:
        values = [int(v) for v in np.atleast_1d(attrs["flag_values"])]
    except (TypeError, ValueError) as error:
        what = f"flag_values {attrs['flag_values']!r} are not integers"
        fix = "give the class values as a list of integers"
        raise ProductError(what, where=f"{where}.attrs['flag_values']", fix=fix) from error
    meanings = str(attrs.get("flag_meanings") or "").split()
    colours = [str(c) for c in np.atleast_1d(attrs.get("flag_colors", []))]
    if not values or any(not 0 < v < 256 for v in values) or len(set(values)) != len(values):
        raise ProductError(
            f"class values {values} must be distinct and within 1..255 (0 = no data)",
            where=f"{where}.attrs['flag_values']",
            fix="renumber the classes 1..255",
        )
    if meanings and len(meanings) != len(values):
        raise ProductError(
            f"{len(meanings)} flag_meanings for {len(values)} flag_values",
            where=f"{where}.attrs['flag_meanings']",
            fix="give one space-separated name per class value",
        )
    if colours and (len(colours) != len(values) or any(not _is_hex_colour(c) for c in colours)):
        raise ProductError(
            f"flag_colors must be one '#rrggbb' per class value, got {colours}",
            where=f"{where}.attrs['flag_colors']",
            fix="give one '#rrggbb' colour per class value, or none for a default palette",
        )
    names = meanings or [f"class_{v}" for v in values]
    colours = colours or [_default_colour(i) for i in range(len(values))]
    return tuple(MapClass(v, n, c.lower()) for v, n, c in zip(values, names, colours, strict=True))


def _is_hex_colour(text: str) -> bool:
    return (
        len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in text[1:])
    )


def _default_colour(index: int) -> str:
    # Tableau 10, repeated: distinct colours for class maps that bring none.
    palette = (
        "#4e79a7",
        "#f28e2b",
        "#e15759",
        "#76b7b2",
        "#59a14f",
        "#edc948",
        "#b07aa1",
        "#ff9da7",
        "#9c755f",
        "#bab0ac",
    )
    return palette[index % len(palette)]


def block_windows(
    shape: tuple[int, int], chunks: tuple[tuple[int, ...], ...] | None
) -> list[Window]:
    """Block windows covering ``shape``: the dask chunks when they are whole COG tiles."""
    edges = [_edges(size, None if chunks is None else chunks[i]) for i, size in enumerate(shape)]
    return [
        Window(c0, r0, c1 - c0, r1 - r0)
        for r0, r1 in zip(edges[0][:-1], edges[0][1:], strict=True)
        for c0, c1 in zip(edges[1][:-1], edges[1][1:], strict=True)
    ]


def _edges(size: int, chunks: tuple[int, ...] | None) -> list[int]:
    if chunks and all(c % BLOCK == 0 for c in chunks[:-1]) and max(chunks) <= _MAX_WINDOW:
        return [0, *np.cumsum(chunks).tolist()]
    # Otherwise windows of whole tiles near the chunk size: compressed tiles are written once.
    typical = max(chunks) if chunks else 4 * BLOCK
    step = min(_MAX_WINDOW, max(BLOCK, round(typical / BLOCK) * BLOCK))
    return [*range(0, size, step), size]
