"""Geometry of simulated EMIT granules (pure code, no I/O).

EMIT images in raw sensor geometry: ``downtrack`` lines along the ISS ground track and
``crosstrack`` samples across it, 60 m apart, on a swath rotated with the track. The L2A files
carry a geographic lookup table (GLT) that maps an EPSG:4326 grid onto raw pixels; the grid's
``geotransform`` is in GDAL order with the upper-left *corner*. Here the swath is laid out on the
region's UTM plane (metres from the region centre, as :func:`spectraflow.simulate.render.render`
expects) and the GLT is the exact inverse of that layout: each ortho pixel centre takes the raw
pixel whose centre is nearest in the plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer

from spectraflow.sensors.emit import ORTHO_PIXEL_DEG, PIXEL_M

_GLT_BLOCK_ROWS = 256


@dataclass(frozen=True)
class Swath:
    """Raw EMIT geometry on the region's UTM plane (metres from the region centre).

    Line ``i``, sample ``j`` is centred at ``origin + j * col_step + i * row_step``: lines run
    along the ISS track (``heading_deg`` clockwise from north), samples across it such that the
    image is not mirrored ("as seen on ground").
    """

    shape: tuple[int, int]
    heading_deg: float
    origin: tuple[float, float]

    @classmethod
    def for_scene(cls, shape: tuple[int, int], region_seed: int, seed: int) -> Swath:
        """A scene's swath centred on the region, its heading and sub-pixel offset from the seeds.

        Headings of 35-55 deg are those of the ISS ground track at EMIT's mid latitudes.
        """
        rng = np.random.default_rng([region_seed, seed, 4242])
        heading = float(rng.uniform(35.0, 55.0))
        centre = rng.uniform(-0.5 * PIXEL_M, 0.5 * PIXEL_M, 2)
        rows, cols = shape
        probe = cls(shape, heading, (0.0, 0.0))
        (cx, cy), (rx, ry) = probe.col_step, probe.row_step
        ox = centre[0] - (cols - 1) / 2 * cx - (rows - 1) / 2 * rx
        oy = centre[1] - (cols - 1) / 2 * cy - (rows - 1) / 2 * ry
        return cls(shape, heading, (float(ox), float(oy)))

    @property
    def row_step(self) -> tuple[float, float]:
        """Ground vector (m) from one line to the next: along track."""
        t = np.deg2rad(self.heading_deg)
        return float(PIXEL_M * np.sin(t)), float(PIXEL_M * np.cos(t))

    @property
    def col_step(self) -> tuple[float, float]:
        """Ground vector (m) from one sample to the next: across track."""
        t = np.deg2rad(self.heading_deg)
        return float(-PIXEL_M * np.cos(t)), float(PIXEL_M * np.sin(t))

    def xy(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates of (fractional) line ``i`` and sample ``j``."""
        (cx, cy), (rx, ry) = self.col_step, self.row_step
        return self.origin[0] + j * cx + i * rx, self.origin[1] + j * cy + i * ry

    def rows_xy(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centres of a block of lines as full (h, W) arrays."""
        i = np.arange(rows.start, rows.stop, dtype=float)[:, None]
        j = np.arange(self.shape[1], dtype=float)[None, :]
        return self.xy(i, j)

    def ij(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (line, sample) of plane points: the exact inverse of :meth:`xy`."""
        (cx, cy), (rx, ry) = self.col_step, self.row_step
        det = cx * ry - cy * rx
        dx, dy = x - self.origin[0], y - self.origin[1]
        return (cx * dy - cy * dx) / det, (ry * dx - rx * dy) / det

    def outline(self, densify: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates of the footprint's edge (pixel corners), densified."""
        rows, cols = self.shape
        t = np.linspace(0.0, 1.0, densify + 1)[:-1]
        i = np.concatenate([np.zeros_like(t), t * rows, np.full_like(t, rows), (1 - t) * rows])
        j = np.concatenate([t * cols, np.full_like(t, cols), (1 - t) * cols, np.zeros_like(t)])
        return self.xy(i - 0.5, j - 0.5)


@dataclass(frozen=True)
class OrthoGrid:
    """The EPSG:4326 grid of the GLT: upper-left corner, pixel size (deg) and shape."""

    west: float
    north: float
    rows: int
    cols: int
    res: float = ORTHO_PIXEL_DEG

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL order, upper-left corner (what the real files store)."""
        return (self.west, self.res, -0.0, self.north, -0.0, -self.res)

    @property
    def transform(self) -> Affine:
        """The same as an affine transform."""
        return Affine.from_gdal(*self.geotransform)

    @property
    def east(self) -> float:
        """Longitude of the eastern edge."""
        return self.west + self.cols * self.res

    @property
    def south(self) -> float:
        """Latitude of the southern edge."""
        return self.north - self.rows * self.res


@dataclass(frozen=True)
class Geolocation:
    """Swath plus the transformations between its plane and WGS 84."""

    swath: Swath
    crs_epsg: int
    centre_utm: tuple[float, float]

    @cached_property
    def _to_ll(self) -> Transformer:
        return Transformer.from_crs(self.crs_epsg, 4326, always_xy=True)

    @cached_property
    def _to_plane(self) -> Transformer:
        return Transformer.from_crs(4326, self.crs_epsg, always_xy=True)

    def lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (deg) of plane points."""
        e0, n0 = self.centre_utm
        lon, lat = self._to_ll.transform(x + e0, y + n0)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def ortho_grid(self) -> OrthoGrid:
        """Smallest grid of EMIT's ortho pixel covering the whole footprint."""
        lon, lat = self.lonlat(*self.swath.outline())
        west, north = float(lon.min()), float(lat.max())
        cols = int(np.ceil((lon.max() - west) / ORTHO_PIXEL_DEG))
        rows = int(np.ceil((north - lat.min()) / ORTHO_PIXEL_DEG))
        return OrthoGrid(west, north, rows, cols)

    def glt(self, grid: OrthoGrid) -> tuple[np.ndarray, np.ndarray]:
        """GLT ``(glt_x, glt_y)`` int32 (rows, cols): the raw pixel nearest each ortho centre."""
        glt_x = np.zeros((grid.rows, grid.cols), dtype=np.int32)
        glt_y = np.zeros_like(glt_x)
        e0, n0 = self.centre_utm
        lon = grid.west + (np.arange(grid.cols) + 0.5) * grid.res
        for start in range(0, grid.rows, _GLT_BLOCK_ROWS):
            stop = min(start + _GLT_BLOCK_ROWS, grid.rows)
            lat = grid.north - (np.arange(start, stop) + 0.5) * grid.res
            lon2, lat2 = np.meshgrid(lon, lat)
            e, n = self._to_plane.transform(lon2, lat2)
            i, j = self.swath.ij(np.asarray(e) - e0, np.asarray(n) - n0)
            i, j = np.rint(i).astype(np.int64), np.rint(j).astype(np.int64)
            rows, cols = self.swath.shape
            inside = (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
            glt_x[start:stop] = np.where(inside, j + 1, 0)
            glt_y[start:stop] = np.where(inside, i + 1, 0)
        return glt_x, glt_y


def orthorectify(raw: np.ndarray, glt_x: np.ndarray, glt_y: np.ndarray, fill: Any) -> np.ndarray:
    """Map a raw (lines, samples, ...) array onto the GLT's grid; ``fill`` where there is none."""
    valid = (glt_x > 0) & (glt_y > 0)
    out = np.full(glt_x.shape + raw.shape[2:], fill, dtype=raw.dtype)
    out[valid] = raw[glt_y[valid] - 1, glt_x[valid] - 1]
    return out


def counter_clockwise(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ring ``points`` (x, y; not closed) in counter-clockwise order, as UMM-G wants it."""
    x, y = np.array(points).T
    area = float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return points if area > 0 else points[::-1]
