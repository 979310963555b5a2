"""Grids and footprints of simulated products (pure code)."""

from __future__ import annotations

from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from spectraflow.simulate.world import World


def north_up_grid(
    world: World, rows: int, cols: int, res: float, *, phase: float = 0.0
) -> tuple[Affine, np.ndarray, np.ndarray]:
    """A north-up UTM grid of ``rows × cols`` pixels of ``res`` metres centred on the region.

    The upper-left corner is snapped to ``k * res + phase`` metres (EnMAP grids sit at odd
    multiples of 15 m, Sentinel-2 tiles at multiples of 60 m). Returns the GDAL-order affine
    transform and the pixel-centre coordinates relative to the region centre as (1, W) and
    (H, 1) arrays, ready for :func:`spectraflow.simulate.render.render`.
    """
    e0, n0 = world.centre_utm
    west = np.floor((e0 - cols * res / 2.0 - phase) / res) * res + phase
    north = np.floor((n0 + rows * res / 2.0 - phase) / res) * res + phase
    transform = Affine(res, 0.0, west, 0.0, -res, north)
    xs = west + (np.arange(cols) + 0.5) * res - e0
    ys = north - (np.arange(rows) + 0.5) * res - n0
    return transform, xs[None, :], ys[:, None]


def grid_footprint(
    crs: CRS, transform: Affine, rows: int, cols: int, *, densify: int = 8
) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon (lon/lat) and bbox of a raster's outline, densified along its edges."""
    t = np.linspace(0.0, 1.0, densify + 1)[:-1]
    cx = np.concatenate([t * cols, np.full_like(t, cols), (1 - t) * cols, np.zeros_like(t)])
    cy = np.concatenate([np.zeros_like(t), t * rows, np.full_like(t, rows), (1 - t) * rows])
    x = transform.a * cx + transform.b * cy + transform.c
    y = transform.d * cx + transform.e * cy + transform.f
    return polygon_lonlat(crs, x, y)


def polygon_lonlat(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], list[float]]:
    """Close a ring given in ``crs`` and return it as a lon/lat GeoJSON polygon with its bbox."""
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(x, y)
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [
        round(float(np.min(lon)), 7),
        round(float(np.min(lat)), 7),
        round(float(np.max(lon)), 7),
        round(float(np.max(lat)), 7),
    ]
    return {"type": "Polygon", "coordinates": [ring]}, bbox
