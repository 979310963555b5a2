"""Target grids of mosaics: what a grid is and how the default one is planned (pure, no I/O).

A :class:`TargetGrid` is a north-up raster grid: a CRS, an affine transform mapping pixel
*corners* (pixel ``(row, col)`` has its centre at ``transform @ (col + 0.5, row + 0.5)``) and a
shape ``(rows, cols)``. Input scenes are described by the same type (their *footprints*).

:func:`target_grid` plans the grid of a mosaic from its inputs' footprints:

CRS
    The UTM zone (WGS 84, northern or southern hemisphere) of the centre of the inputs' union,
    unless ``crs`` is given.
Resolution
    The coarsest input resolution expressed in the target CRS's units, unless ``resolution``
    is given: a projected input's pixel size converted to metres by its unit; a geographic
    input's (EMIT's ortho grid) the ground size of its larger pixel side at its centre latitude,
    rounded to the metre. A geographic target CRS gets degrees (metres converted at the centre
    latitude). Pixels are square.
Bounds
    The union of the footprints in the target CRS (edges densified, so curved edges are
    covered) snapped outward to whole multiples of the resolution (like ``gdalwarp -tap``),
    unless ``bounds`` is given; given bounds keep their upper-left corner and grow right and
    down to whole pixels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyproj
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj.exceptions import CRSError

from spectraflow.errors import ConfigError

__all__ = ["BBox", "GridLike", "PixelWindow", "TargetGrid", "crs_transformer", "target_grid"]

BBox: TypeAlias = tuple[float, float, float, float]
"""``(minx, miny, maxx, maxy)`` in a grid's CRS units."""
PixelWindow: TypeAlias = tuple[int, int, int, int]
"""``(row_start, row_stop, col_start, col_stop)`` of a grid, stops exclusive."""

MAX_PIXELS = 2**34
"""Largest target grid planned (16 Gpx): beyond it the resolution is almost surely in the
wrong units (degrees for a UTM grid)."""

_DENSIFY = 21  # points per edge when transforming a box: curved edges stay covered
_SNAP_EPS = 1e-6  # in pixels: coordinates this close to a pixel edge are on it (float noise)


def _to_crs(crs: Any, *, where: str) -> pyproj.CRS:
    try:
        if isinstance(crs, pyproj.CRS):
            return crs
        if hasattr(crs, "to_wkt"):  # rasterio / odc-geo CRS
            return pyproj.CRS.from_wkt(crs.to_wkt())
        return pyproj.CRS.from_user_input(crs)
    except (CRSError, TypeError, ValueError) as err:
        raise ConfigError(
            f"unknown CRS {crs!r}", where=where, fix="give an EPSG code ('EPSG:32633') or WKT"
        ) from err


@functools.lru_cache(maxsize=64)
def crs_transformer(src_wkt: str, dst_wkt: str) -> pyproj.Transformer:
    """A cached ``always_xy`` transformer between two CRSs given as WKT.

    Building one costs milliseconds and grids transform bounds per block; pyproj's transformers
    are thread-safe (pyproj ≥ 3.1), so one serves every thread.
    """
    return pyproj.Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)


@dataclass(frozen=True)
class TargetGrid:
    """A north-up raster grid: CRS, affine transform (pixel corners) and ``(rows, cols)``.

    Parameters
    ----------
    crs
        Any CRS-like (``"EPSG:32613"``, WKT, pyproj, rasterio or odc-geo CRS); stored as a
        :class:`pyproj.CRS`.
    transform
        Affine transform from (column, row) to map coordinates of pixel corners; north-up
        (no rotation, ``a > 0``, ``e < 0``).
    shape
        ``(rows, cols)``, both positive.

    Raises
    ------
    ConfigError
        Unknown CRS, a rotated or south-up transform, or an empty shape.
    """

    crs: pyproj.CRS
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "crs", _to_crs(self.crs, where="crs"))
        t = self.transform
        if not isinstance(t, Affine) or t.b != 0 or t.d != 0 or not (t.a > 0 > t.e):
            raise ConfigError(
                f"the grid's transform must be north-up (a > 0, b = d = 0, e < 0), got {t!r}",
                where="transform",
                fix="pass Affine(res, 0, left, 0, -res, top)",
            )
        rows, cols = (int(v) for v in self.shape)
        if rows < 1 or cols < 1:
            raise ConfigError(
                f"the grid's shape must be positive, got {tuple(self.shape)}",
                where="shape",
                fix="pass (rows, cols) of at least one pixel each",
            )
        object.__setattr__(self, "shape", (rows, cols))

    @classmethod
    def from_geobox(cls, geobox: GeoBox) -> TargetGrid:
        """The grid of an :class:`odc.geo.geobox.GeoBox`."""
        if geobox.crs is None:
            raise ConfigError("the GeoBox has no CRS", where="geobox", fix="give it a CRS")
        crs = pyproj.CRS.from_wkt(geobox.crs.wkt)
        return cls(crs, geobox.affine, (geobox.shape.y, geobox.shape.x))

    @classmethod
    def from_bounds(cls, crs: Any, bounds: BBox, resolution: float) -> TargetGrid:
        """The grid with upper-left corner ``(minx, maxy)`` covering ``bounds`` in whole pixels."""
        minx, miny, maxx, maxy = _check_bounds(bounds)
        res = _check_resolution(resolution)
        cols = max(1, math.ceil((maxx - minx) / res - _SNAP_EPS))
        rows = max(1, math.ceil((maxy - miny) / res - _SNAP_EPS))
        _check_size(rows, cols, res)
        return cls(crs, Affine(res, 0.0, minx, 0.0, -res, maxy), (rows, cols))

    @property
    def height(self) -> int:
        """Rows."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Columns."""
        return self.shape[1]

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units, both positive."""
        return (self.transform.a, -self.transform.e)

    @property
    def bounds(self) -> BBox:
        """``(minx, miny, maxx, maxy)`` of the outer pixel edges."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def geobox(self) -> GeoBox:
        """The same grid as an odc-geo :class:`~odc.geo.geobox.GeoBox`."""
        return GeoBox(self.shape, self.transform, self.crs.to_wkt())

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates (``width``)."""
        return self.transform.c + (np.arange(self.width) + 0.5) * self.transform.a

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates (``height``), decreasing."""
        return self.transform.f + (np.arange(self.height) + 0.5) * self.transform.e

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> TargetGrid:
        """The sub-grid of pixel rows ``[r0, r1)`` and columns ``[c0, c1)``."""
        (r0, r1), (c0, c1) = rows, cols
        if not (0 <= r0 < r1 <= self.height and 0 <= c0 < c1 <= self.width):
            raise ConfigError(
                f"window rows {rows}, cols {cols} is not inside the grid {self.shape}",
                where="window",
                fix="pass a window inside the grid",
            )
        return TargetGrid(self.crs, self.transform @ Affine.translation(c0, r0), (r1 - r0, c1 - c0))

    def blocks(self, block: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Pixel windows ``((r0, r1), (c0, c1))`` of square blocks of ``block`` pixels, by row."""
        if block < 1:
            raise ConfigError(
                f"block must be a positive number of pixels, got {block}",
                where="block",
                fix="pass e.g. block=1024",
            )
        return [
            ((r0, min(r0 + block, self.height)), (c0, min(c0 + block, self.width)))
            for r0 in range(0, self.height, block)
            for c0 in range(0, self.width, block)
        ]

    def bounds_in(self, crs: Any) -> BBox | None:
        """The grid's bounds transformed to ``crs`` (edges densified); None if not finite."""
        dst = _to_crs(crs, where="crs")
        if dst == self.crs:
            return self.bounds
        tr = crs_transformer(self.crs.to_wkt(), dst.to_wkt())
        try:
            out = tr.transform_bounds(*self.bounds, densify_pts=_DENSIFY)
        except pyproj.exceptions.ProjError:
            return None
        if not all(math.isfinite(v) for v in out):
            return None
        return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))

    def window_covering(self, other: TargetGrid, *, margin: int = 1) -> PixelWindow | None:
        """The pixel window of this grid covering ``other``'s footprint, grown by ``margin``.

        Parameters
        ----------
        other
            A grid in any CRS (e.g. a block of a mosaic's target grid).
        margin
            Extra pixels on every side (1 for nearest; one more for bilinear's kernel).

        Returns
        -------
        PixelWindow or None
            Cut to this grid; None when the footprints do not overlap.
        """
        box = other.bounds_in(self.crs)
        if box is None:
            return None
        inv = ~self.transform
        c_a, r_a = inv @ (box[0], box[3])
        c_b, r_b = inv @ (box[2], box[1])
        r0 = max(0, math.floor(min(r_a, r_b)) - margin)
        r1 = min(self.height, math.ceil(max(r_a, r_b)) + margin)
        c0 = max(0, math.floor(min(c_a, c_b)) - margin)
        c1 = min(self.width, math.ceil(max(c_a, c_b)) + margin)
        if r0 >= r1 or c0 >= c1:
            return None
        return (r0, r1, c0, c1)


GridLike: TypeAlias = TargetGrid | GeoBox
"""A footprint: a :class:`TargetGrid` or an odc-geo GeoBox."""


def _as_grid(g: GridLike, i: int) -> TargetGrid:
    if isinstance(g, TargetGrid):
        return g
    if isinstance(g, GeoBox):
        return TargetGrid.from_geobox(g)
    raise ConfigError(
        f"footprint {i} is a {type(g).__name__}, not a TargetGrid or GeoBox",
        where=f"footprints[{i}]",
        fix="pass the inputs' grids (TargetGrid or odc.geo GeoBox)",
    )


def _check_bounds(bounds: Sequence[float]) -> BBox:
    try:
        minx, miny, maxx, maxy = (float(v) for v in bounds)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"bounds must be 4 numbers (minx, miny, maxx, maxy), got {bounds!r}",
            where="bounds",
            fix="pass (minx, miny, maxx, maxy) in the target CRS",
        ) from err
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or minx >= maxx or miny >= maxy:
        raise ConfigError(
            f"bounds must be finite with minx < maxx and miny < maxy, got {tuple(bounds)}",
            where="bounds",
            fix="pass (minx, miny, maxx, maxy) in the target CRS",
        )
    return (minx, miny, maxx, maxy)


def _check_resolution(resolution: float) -> float:
    try:
        res = float(resolution)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"resolution must be a number, got {resolution!r}",
            where="resolution",
            fix="pass the pixel size in the target CRS's units, e.g. 30.0",
        ) from err
    if not math.isfinite(res) or res <= 0:
        raise ConfigError(
            f"resolution must be a positive number, got {resolution!r}",
            where="resolution",
            fix="pass the pixel size in the target CRS's units, e.g. 30.0",
        )
    return res


def _check_size(rows: int, cols: int, res: float) -> None:
    if rows * cols > MAX_PIXELS:
        raise ConfigError(
            f"the target grid would be {rows} × {cols} pixels at resolution {res}",
            where="resolution, bounds",
            fix="check that the resolution is in the target CRS's units (metres for UTM)",
        )


def _centre_lonlat(grids: Sequence[TargetGrid]) -> tuple[float, float]:
    """Longitude and latitude of the centre of the grids' union."""
    boxes = [g.bounds_in("EPSG:4326") for g in grids]
    good = [b for b in boxes if b is not None]
    if not good:
        raise ConfigError(
            "the inputs' footprints cannot be placed on the globe",
            where="footprints",
            fix="check the inputs' CRS and transform",
        )
    # Longitudes unwrapped around the first box, so a union across the antimeridian stays small.
    ref = (good[0][0] + good[0][2]) / 2
    xs = []
    for b in good:
        west, east = b[0], (b[2] if b[2] >= b[0] else b[2] + 360.0)
        shift = 360.0 * round(((west + east) / 2 - ref) / 360.0)
        xs += [west - shift, east - shift]
    lon = (min(xs) + max(xs)) / 2
    lat = (min(b[1] for b in good) + max(b[3] for b in good)) / 2
    return ((lon + 180.0) % 360.0) - 180.0, lat


def _utm(lon: float, lat: float) -> pyproj.CRS:
    """The WGS 84 UTM zone of a point (EPSG 326zz north, 327zz south)."""
    zone = min(60, int((lon + 180.0) // 6.0) + 1)
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _metres_per_degree(crs: pyproj.CRS, lon: float, lat: float) -> tuple[float, float]:
    """Ground metres of one degree of longitude and of latitude at ``(lon, lat)``."""
    geod = crs.get_geod() or pyproj.Geod(ellps="WGS84")
    _, _, along_x = geod.inv(lon - 0.5, lat, lon + 0.5, lat)
    _, _, along_y = geod.inv(lon, lat - 0.5, lon, lat + 0.5)
    return float(along_x), float(along_y)


def _resolution_metres(g: TargetGrid) -> float:
    """The larger pixel side of ``g`` on the ground, metres."""
    if g.crs.is_geographic:
        lon0, lat0 = g.transform @ (g.width / 2, g.height / 2)
        mx, my = _metres_per_degree(g.crs, lon0, lat0)
        return float(round(max(g.resolution[0] * mx, g.resolution[1] * my)))
    factor = g.crs.axis_info[0].unit_conversion_factor if g.crs.axis_info else 1.0
    return max(g.resolution) * float(factor)


def _default_resolution(grids: Sequence[TargetGrid], crs: pyproj.CRS) -> float:
    """The coarsest input resolution in ``crs``'s units."""
    if crs.is_geographic:
        lon, lat = _centre_lonlat(grids)
        _, per_degree = _metres_per_degree(crs, lon, lat)
        sizes = [
            max(g.resolution) if g.crs.is_geographic else _resolution_metres(g) / per_degree
            for g in grids
        ]
        return max(sizes)
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return max(_resolution_metres(g) for g in grids) / float(factor)


def _union_bounds(grids: Sequence[TargetGrid], crs: pyproj.CRS) -> BBox:
    boxes = [g.bounds_in(crs) for g in grids]
    good = [b for b in boxes if b is not None and b[0] < b[2] and b[1] < b[3]]
    if not good:
        raise ConfigError(
            "none of the inputs' footprints can be expressed in the target CRS",
            where="crs",
            fix="choose a CRS that covers the inputs (e.g. their UTM zone), or pass bounds",
        )
    return (
        min(b[0] for b in good),
        min(b[1] for b in good),
        max(b[2] for b in good),
        max(b[3] for b in good),
    )


def _snap_out(box: BBox, res: float) -> BBox:
    """``box`` grown to whole multiples of ``res`` (the edge of a ``-tap`` grid)."""
    return (
        math.floor(box[0] / res + _SNAP_EPS) * res,
        math.floor(box[1] / res + _SNAP_EPS) * res,
        math.ceil(box[2] / res - _SNAP_EPS) * res,
        math.ceil(box[3] / res - _SNAP_EPS) * res,
    )


def target_grid(
    footprints: Sequence[GridLike],
    *,
    crs: Any = None,
    resolution: float | None = None,
    bounds: Sequence[float] | None = None,
) -> TargetGrid:
    """Plan a mosaic's grid from its inputs' footprints (see the module docstring for the rules).

    Parameters
    ----------
    footprints
        The inputs' grids (:class:`TargetGrid` or odc-geo ``GeoBox``), in any CRSs. May be
        empty only when ``crs``, ``resolution`` and ``bounds`` are all given.
    crs
        Target CRS (CRS-like); default: the UTM zone of the centre of the inputs' union.
    resolution
        Square pixel size in the target CRS's units; default: the coarsest input resolution.
    bounds
        ``(minx, miny, maxx, maxy)`` in the target CRS; default: the inputs' union snapped
        outward to the resolution.

    Returns
    -------
    TargetGrid

    Raises
    ------
    ConfigError
        No footprints (and not all of crs/resolution/bounds), an unknown CRS, a resolution
        that is not positive, bounds with ``minx >= maxx`` or ``miny >= maxy``, or a grid too
        large to be meant (:data:`MAX_PIXELS`).
    """
    grids = [_as_grid(g, i) for i, g in enumerate(footprints)]
    if not grids and (crs is None or resolution is None or bounds is None):
        raise ConfigError(
            "no inputs to plan a target grid from",
            where="footprints",
            fix="pass at least one input, or give crs, resolution and bounds",
        )
    box = _check_bounds(bounds) if bounds is not None else None
    res = _check_resolution(resolution) if resolution is not None else None
    target = _to_crs(crs, where="crs") if crs is not None else _utm(*_centre_lonlat(grids))
    if res is None:
        res = _default_resolution(grids, target)
    if box is None:
        box = _snap_out(_union_bounds(grids, target), res)
    return TargetGrid.from_bounds(target, box, res)
