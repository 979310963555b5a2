"""Georeferencing attributes of a cube (pure).

A cube states its CRS and affine transform twice, for two families of readers:

CF / GDAL / rioxarray
    A scalar ``spatial_ref`` coordinate whose attributes are the CF grid mapping of the CRS
    (pyproj's ``CRS.to_cf()``), ``crs_wkt`` and GDAL's ``spatial_ref`` (WKT2), and GDAL's
    ``GeoTransform`` (six numbers, GDAL order ``c a b f d e``); every data variable on the grid
    carries ``grid_mapping = "spatial_ref"``. This is what ``rioxarray`` writes and reads, so
    ``ds.rio.crs`` and ``ds.rio.transform()`` are right after ``open_cube``.
GeoZarr conventions
    ``proj:code`` (when the CRS has an authority code) and ``proj:wkt2`` from the ``proj:``
    convention; ``spatial:dimensions``, ``spatial:transform`` (affine ``[a, b, c, d, e, f]``,
    rasterio order, upper-left corner of the upper-left pixel), ``spatial:shape``,
    ``spatial:bbox`` and ``spatial:registration`` from the ``spatial:`` convention; both
    conventions registered in ``zarr_conventions``.

Transforms map pixel corners: pixel ``(row, col)`` has its centre at ``transform @ (col + 0.5,
row + 0.5)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pyproj
from affine import Affine
from pyproj.enums import WktVersion

__all__ = [
    "GRID_MAPPING",
    "PROJ_CONVENTION",
    "SPATIAL_CONVENTION",
    "cf_grid_mapping_attrs",
    "crs_code",
    "geozarr_attrs",
    "to_crs",
    "transform_from_gdal",
    "transform_from_geozarr",
]

GRID_MAPPING = "spatial_ref"
"""Name of the CF grid-mapping coordinate (rioxarray's default)."""

PROJ_CONVENTION: dict[str, str] = {
    "schema_url": "https://raw.githubusercontent.com/zarr-experimental/geo-proj/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-experimental/geo-proj/blob/v1/README.md",
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "name": "proj:",
    "description": "Coordinate reference system information for geospatial data",
}
"""Registration of the GeoZarr ``proj:`` convention in ``zarr_conventions``."""

SPATIAL_CONVENTION: dict[str, str] = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v1/README.md",
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
    "name": "spatial:",
    "description": "Spatial coordinate information",
}
"""Registration of the GeoZarr ``spatial:`` convention in ``zarr_conventions``."""


def to_crs(crs: Any) -> pyproj.CRS:
    """A :class:`pyproj.CRS` from any CRS-like input (pyproj or rasterio CRS, WKT, "EPSG:n", int).

    Raises
    ------
    pyproj.exceptions.CRSError
        If the input is not a CRS.
    """
    if isinstance(crs, pyproj.CRS):
        return crs
    if hasattr(crs, "to_wkt"):  # rasterio.crs.CRS and friends
        return pyproj.CRS.from_wkt(crs.to_wkt())
    return pyproj.CRS.from_user_input(crs)


def crs_code(crs: Any) -> str | None:
    """``"AUTHORITY:CODE"`` of a CRS when it is exactly a registered one, else None."""
    auth = to_crs(crs).to_authority(min_confidence=100)
    return f"{auth[0]}:{auth[1]}" if auth else None


def transform_from_gdal(geotransform: Sequence[float]) -> Affine:
    """An affine transform from GDAL's six geotransform numbers ``(c, a, b, f, d, e)``."""
    if len(geotransform) != 6:
        raise ValueError(f"a GDAL geotransform has 6 numbers, got {len(geotransform)}")
    return Affine.from_gdal(*(float(v) for v in geotransform))


def transform_from_geozarr(attrs: Mapping[str, Any]) -> Affine:
    """The affine transform in GeoZarr ``spatial:transform`` attributes."""
    a, b, c, d, e, f = (float(v) for v in attrs["spatial:transform"])
    return Affine(a, b, c, d, e, f)


def _gdal_string(transform: Affine) -> str:
    # repr keeps every digit: the transform must survive the text round trip exactly.
    return " ".join(repr(float(v)) for v in transform.to_gdal())


def cf_grid_mapping_attrs(crs: Any, transform: Affine) -> dict[str, Any]:
    """Attributes of the CF ``spatial_ref`` coordinate for ``crs`` and ``transform``.

    Parameters
    ----------
    crs
        CRS-like (see :func:`to_crs`).
    transform
        Affine transform of the grid (pixel corners).

    Returns
    -------
    dict
        CF grid-mapping parameters, ``crs_wkt``, ``spatial_ref`` and ``GeoTransform``.
    """
    pcrs = to_crs(crs)
    wkt = pcrs.to_wkt(WktVersion.WKT2_2019)
    with warnings.catch_warnings():
        # CF has no grid mapping for some projections; crs_wkt then carries the CRS alone.
        warnings.simplefilter("ignore")
        attrs: dict[str, Any] = dict(pcrs.to_cf())
    attrs["crs_wkt"] = wkt
    attrs["spatial_ref"] = wkt
    attrs["GeoTransform"] = _gdal_string(transform)
    return attrs


def geozarr_attrs(
    crs: Any,
    transform: Affine,
    *,
    dims: tuple[str, str],
    shape: tuple[int, int],
) -> dict[str, Any]:
    """GeoZarr ``proj:`` and ``spatial:`` attributes of a grid.

    Parameters
    ----------
    crs
        CRS-like (see :func:`to_crs`).
    transform
        Affine transform of the grid (pixel corners).
    dims
        The grid's (row, column) dimension names, e.g. ``("y", "x")``.
    shape
        The grid's (rows, columns).

    Returns
    -------
    dict
        ``zarr_conventions``, ``proj:code`` (when the CRS has one), ``proj:wkt2``,
        ``spatial:dimensions``, ``spatial:transform``, ``spatial:shape``, ``spatial:bbox``,
        ``spatial:registration``.
    """
    pcrs = to_crs(crs)
    rows, cols = shape
    corners = [transform @ (c, r) for c in (0, cols) for r in (0, rows)]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    attrs: dict[str, Any] = {
        "zarr_conventions": [dict(PROJ_CONVENTION), dict(SPATIAL_CONVENTION)],
    }
    code = crs_code(pcrs)
    if code:
        attrs["proj:code"] = code
    attrs["proj:wkt2"] = pcrs.to_wkt(WktVersion.WKT2_2019)
    attrs["spatial:dimensions"] = [dims[0], dims[1]]
    attrs["spatial:transform_type"] = "affine"
    attrs["spatial:transform"] = [float(v) for v in tuple(transform)[:6]]
    attrs["spatial:shape"] = [int(rows), int(cols)]
    attrs["spatial:bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    attrs["spatial:registration"] = "pixel"
    return attrs
