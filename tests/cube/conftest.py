"""Synthetic reader-like Datasets for the cube tests.

The builders are plain functions so that a subprocess (the killed-writer test) can build the
very same Dataset with ``runpy.run_path`` on this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_020.0)
CRS = "EPSG:32613"
GEOTRANSFORM = [-103.75, 0.000542, 0.0, 32.05, 0.0, -0.000542]
ATTRS = {"item": "file:///scenes/X/item.json", "checksums": {"data": "sha256:0123"}}


def pixel_values(band: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Deterministic reflectance in 0.05–0.95 with NaN holes (same everywhere it is computed)."""
    value = np.sin(band * 12.9898 + row * 78.233 + col * 37.719) * 43758.5453
    out = (0.05 + 0.9 * (value - np.floor(value))).astype(np.float32)
    return np.where((row % 17 == 3) & (col % 13 == 5), np.float32(np.nan), out)


def _reflectance(
    shape: tuple[int, int, int],
    chunks: int,
    *,
    slow_s: float = 0.0,
    on_block: Callable[[tuple[int, int]], None] | None = None,
) -> da.Array:
    nb, ny, nx = shape

    def block(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        (b0, b1), (r0, r1), (c0, c1) = block_info[None]["array-location"]
        if on_block is not None:
            on_block((r0, c0))
        if slow_s:
            time.sleep(slow_s)
        b, r, c = np.meshgrid(
            np.arange(b0, b1), np.arange(r0, r1), np.arange(c0, c1), indexing="ij"
        )
        return pixel_values(b, r, c)

    return da.map_blocks(block, chunks=((nb,), _split(ny, chunks), _split(nx, chunks)), dtype="f4")


def _split(n: int, step: int) -> tuple[int, ...]:
    return tuple(min(step, n - i) for i in range(0, n, step))


def _band_coords(nb: int) -> dict[str, Any]:
    good = np.ones(nb, dtype=bool)
    good[1] = False
    return {
        "band": [f"B{i:03d}" for i in range(nb)],
        "wavelength": ("band", np.linspace(400.0, 2400.0, nb)),
        "fwhm": ("band", np.full(nb, 8.5)),
        "good_band": ("band", good),
    }


def map_dataset(
    shape: tuple[int, int, int] = (6, 70, 60),
    *,
    chunks: int = 25,
    slow_s: float = 0.0,
    on_block: Callable[[tuple[int, int]], None] | None = None,
) -> xr.Dataset:
    """A reader-like Dataset on a UTM (y, x) grid: reflectance, valid, scl, aod550."""
    nb, ny, nx = shape
    refl = _reflectance(shape, chunks, slow_s=slow_s, on_block=on_block)
    rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    holes = (rows % 17 == 3) & (cols % 13 == 5)
    aod = np.where(rows > cols, np.float32(np.nan), (rows + cols) / 200.0).astype(np.float32)
    ds = xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl, {"units": "1"}),
            "valid": (("y", "x"), da.from_array(~holes, chunks=chunks)),
            "scl": (
                ("y", "x"),
                da.from_array(((rows * cols) % 12).astype(np.uint8), chunks=chunks),
            ),
            "aod550": (("y", "x"), da.from_array(aod, chunks=chunks)),
        },
        coords={
            **_band_coords(nb),
            "y": TRANSFORM.f + TRANSFORM.e * (np.arange(ny) + 0.5),
            "x": TRANSFORM.c + TRANSFORM.a * (np.arange(nx) + 0.5),
        },
        attrs={"sensor": "enmap", "scene_id": "ENMAP_TEST", "source": {"data": "/in/X.TIF"}},
    )
    return ds.rio.write_crs(CRS).rio.write_transform(TRANSFORM)


def sensor_dataset(shape: tuple[int, int, int] = (5, 40, 36), *, chunks: int = 16) -> xr.Dataset:
    """A reader-like EMIT Dataset: sensor geometry plus GLT on an ortho grid."""
    nb, nl, ns = shape
    oy, ox = 45, 50
    refl = _reflectance(shape, chunks)
    glt_x = np.zeros((oy, ox), dtype=np.int32)
    glt_y = np.zeros((oy, ox), dtype=np.int32)
    glt_x[3:43, 5:41] = np.arange(1, ns + 1)[None, :]
    glt_y[3:43, 5:41] = np.arange(1, nl + 1)[:, None]
    return xr.Dataset(
        {
            "reflectance": (("band", "line", "sample"), refl),
            "valid": (("line", "sample"), da.ones((nl, ns), dtype=bool, chunks=chunks)),
            "cloud": (("line", "sample"), da.zeros((nl, ns), dtype=np.uint8, chunks=chunks)),
            "glt_x": (("ortho_y", "ortho_x"), glt_x),
            "glt_y": (("ortho_y", "ortho_x"), glt_y),
        },
        coords=_band_coords(nb),
        attrs={
            "sensor": "emit",
            "scene_id": "EMIT_TEST",
            "source": {"data": "/in/RFL.nc", "mask": "/in/MASK.nc"},
            "geotransform": np.array(GEOTRANSFORM),
            "ortho_crs": "EPSG:4326",
        },
    )


@pytest.fixture
def make_map_dataset() -> Callable[..., xr.Dataset]:
    return map_dataset


@pytest.fixture
def make_sensor_dataset() -> Callable[..., xr.Dataset]:
    return sensor_dataset
