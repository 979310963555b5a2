"""Plan a cube write: the storage dataset, encodings, shard regions and fingerprint (pure).

:func:`plan_cube` turns a reader Dataset (see ``spectraflow.sensors``) into a :class:`CubePlan`
without reading any pixel: the lazy dataset exactly as it is stored (grid variables chunked by
dask into whole shards, georeferencing attributes, provenance), the zarr encoding of every
variable, the list of shard-aligned :class:`Region` s that write tasks own, and the
fingerprint that makes writes idempotent.

The fingerprint is a SHA-256 over the source provenance (the dataset's attributes and the
caller's ``attrs``), the write parameters (storage dtype, layout, codecs, cube format), the
variables' names, dimensions, shapes, dtypes and attributes, the coordinate values and the
georeferencing. It leaves out the pixel values (reading them is what it saves) and the
spectraflow version (upgrading spectraflow must not invalidate existing cubes; the version is
recorded in ``spectraflow_version``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine

from spectraflow import __version__
from spectraflow.cube import georef
from spectraflow.cube.layout import (
    GridLayout,
    codec_name,
    compressors_for,
    plan_grid,
    spatial_dims_of,
    variable_layout,
)
from spectraflow.errors import ConfigError, CubeError

__all__ = [
    "COMPLETE_ATTR",
    "CUBE_FORMAT",
    "ENCODING_DTYPES",
    "FINGERPRINT_ATTR",
    "INT16_FILL",
    "INT16_SCALE",
    "PARAMS_ATTR",
    "SCALED_VARIABLES",
    "VERSION_ATTR",
    "CubePlan",
    "Region",
    "jsonable",
    "plan_cube",
]

COMPLETE_ATTR = "_spectraflow_complete"
"""Group attribute written last: a group without it is not a cube."""
FINGERPRINT_ATTR = "spectraflow_fingerprint"
"""Group attribute: the write's fingerprint (see the module docstring)."""
PARAMS_ATTR = "spectraflow_write"
"""Group attribute: the write parameters (storage dtype, layout, codecs, cube format)."""
VERSION_ATTR = "spectraflow_version"
"""Group attribute: the spectraflow version that wrote the cube."""
CUBE_FORMAT = 1
"""Version of the cube conventions; part of the fingerprint."""

ENCODING_DTYPES = ("float32", "int16")
"""Storage dtypes of reflectance."""
SCALED_VARIABLES = ("reflectance",)
"""Variables stored with ``encoding_dtype``; other variables keep their dtype."""
INT16_SCALE = 1e-4
"""CF ``scale_factor`` of int16 reflectance: a quantum of 0.0001, range ±3.2767."""
INT16_FILL = -32768
"""CF ``_FillValue`` (and zarr fill value) of int16 reflectance: NaN once decoded."""

_GRID_MAPPING_ATTRS = ("grid_mapping", "coordinates")
_CF_ENCODING_ATTRS = ("_FillValue", "missing_value", "scale_factor", "add_offset", "dtype")
_RESERVED_PREFIXES = ("proj:", "spatial:")
_RESERVED_ATTRS = (COMPLETE_ATTR, FINGERPRINT_ATTR, PARAMS_ATTR, VERSION_ATTR, "zarr_conventions")


@dataclass(frozen=True)
class Region:
    """A shard-aligned window of one grid: the unit of work of a write task.

    Attributes
    ----------
    grid
        Grid name, e.g. ``"y_x"``.
    index
        Shard index (row, column) on the grid.
    window
        Pixel window per spatial dimension, ``{dim: (start, stop)}``.
    variables
        Names of the variables on the grid, all written by the task.
    """

    grid: str
    index: tuple[int, int]
    window: dict[str, tuple[int, int]]
    variables: tuple[str, ...]

    @property
    def key(self) -> str:
        """Name of the region's progress record, e.g. ``"y_x/0_3"``."""
        return f"{self.grid}/{self.index[0]}_{self.index[1]}"


@dataclass(frozen=True)
class CubePlan:
    """Everything a write needs, decided before any pixel is read.

    Attributes
    ----------
    dataset
        The dataset as stored: grid variables as dask arrays chunked into whole shards, other
        variables and coordinates in memory, group attributes (provenance, georeferencing, write
        parameters, fingerprint; not the completion marker).
    encoding
        ``to_zarr`` encoding per variable (chunks, shards, compressors, dtype, fill values).
    grids
        Layout of each grid, by grid name.
    regions
        Shard-aligned regions covering every grid, in a stable order.
    fingerprint
        Hex SHA-256 identifying the inputs and parameters.
    """

    dataset: xr.Dataset
    encoding: dict[str, dict[str, Any]]
    grids: dict[str, GridLayout]
    regions: tuple[Region, ...]
    fingerprint: str


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible Python (numpy, dates, paths, sets and tuples converted)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _clean_attrs(attrs: Mapping[Hashable, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    return {str(k): v for k, v in attrs.items() if str(k) not in drop}


def _source_attrs(attrs: Mapping[Hashable, Any]) -> dict[str, Any]:
    """Dataset attributes minus those a cube write sets itself (e.g. from an opened cube)."""
    kept = {
        str(k): v
        for k, v in attrs.items()
        if str(k) not in _RESERVED_ATTRS and not str(k).startswith(_RESERVED_PREFIXES)
    }
    out: dict[str, Any] = jsonable(kept)
    return out


def _storage_dtype(name: Hashable, var: xr.Variable, encoding_dtype: str) -> np.dtype[Any]:
    if name in SCALED_VARIABLES and var.dtype.kind == "f":
        return np.dtype(encoding_dtype)
    return var.dtype


def _digest(values: np.ndarray[Any, Any]) -> str:
    h = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode())
    if values.dtype.kind in "OUST":
        h.update("\x1f".join(str(v) for v in values.ravel()).encode())
    else:
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def _as_stored_coord(var: xr.Variable) -> xr.Variable:
    """A coordinate in memory; strings as objects so zarr stores them as variable-length UTF-8."""
    var = var.to_base_variable().compute()
    var.encoding = {}
    if var.dtype.kind in "OUST":
        var = var.copy(data=np.asarray(var.values, dtype=str).astype(object))
    return var


def _georeference(ds: xr.Dataset, grid_dims: set[tuple[str, str]]) -> tuple[Any, Affine] | None:
    """CRS and transform of the map grid (``y``, ``x``), checked against its coordinates."""
    if ("y", "x") not in grid_dims:
        return None
    crs = ds.rio.crs
    if crs is None:
        raise CubeError(
            "dataset on the (y, x) grid has no CRS",
            where="spatial_ref",
            fix="write it with ds.rio.write_crs(...) and ds.rio.write_transform(...)",
        )
    transform = ds.rio.transform()
    if not transform.is_rectilinear:
        return crs, transform
    for dim, start, step in (("x", transform.c, transform.a), ("y", transform.f, transform.e)):
        if dim in ds.coords and ds.sizes[dim] > 0:
            expected = start + step * (np.arange(ds.sizes[dim]) + 0.5)
            if not np.allclose(ds[dim].values, expected, rtol=0.0, atol=abs(step) * 1e-6):
                raise CubeError(
                    f"the {dim} coordinates are not the pixel centres of the transform {transform}",
                    where=dim,
                    fix="write the transform matching the coordinates with ds.rio.write_transform",
                )
    return crs, transform


def _ortho_georeference(ds: xr.Dataset) -> tuple[Any, Affine] | None:
    """CRS and transform of EMIT's ortho grid from the ``geotransform``/``ortho_crs`` attributes."""
    gt, crs = ds.attrs.get("geotransform"), ds.attrs.get("ortho_crs")
    if gt is None or crs is None:
        return None
    try:
        return georef.to_crs(crs), georef.transform_from_gdal(list(np.asarray(gt, dtype=float)))
    except (ValueError, TypeError) as err:  # pyproj's CRSError is a ValueError
        raise CubeError(
            f"unreadable ortho-grid georeferencing: {err}",
            where="attrs geotransform/ortho_crs",
            fix="give 6 GDAL geotransform numbers and a CRS such as 'EPSG:4326'",
        ) from err


def _plan_grids(
    ds: xr.Dataset,
    on_grid: Mapping[Hashable, tuple[str, str] | None],
    encoding_dtype: str,
    *,
    chunks: int | None,
    shards: int | None,
) -> dict[str, GridLayout]:
    """Layout of each grid, sized by its heaviest variable as stored."""
    grids: dict[str, GridLayout] = {}
    for dims in sorted({p for p in on_grid.values() if p is not None}):
        bpp = 0
        for name, member in ds.data_vars.items():
            if on_grid[name] == dims:
                other = int(np.prod([ds.sizes[d] for d in member.dims if d not in dims]))
                itemsize = _storage_dtype(name, member.variable, encoding_dtype).itemsize
                bpp = max(bpp, other * itemsize)
        shape = (ds.sizes[dims[0]], ds.sizes[dims[1]])
        grids["_".join(dims)] = plan_grid(dims, shape, bpp, chunk=chunks, shard=shards)
    return grids


def _stored_variable(
    name: Hashable, var: xr.Variable, layout: GridLayout, encoding_dtype: str
) -> tuple[xr.Variable, dict[str, Any], np.dtype[Any]]:
    """A grid variable chunked into whole shards, its encoding and its storage dtype."""
    dtype = _storage_dtype(name, var, encoding_dtype)
    enc: dict[str, Any] = {}
    if name in SCALED_VARIABLES and var.dtype.kind == "f":
        if encoding_dtype == "int16":
            lim = 32767 * INT16_SCALE  # keep values inside int16 instead of wrapping
            var = var.copy(data=np.clip(var.data, -lim, lim))
            enc.update(
                dtype="int16",
                scale_factor=INT16_SCALE,
                _FillValue=INT16_FILL,
                fill_value=INT16_FILL,
            )
        elif var.dtype != np.float32:
            var = var.astype(np.float32)
    elif var.dtype.kind in "iu":
        enc["_FillValue"] = None  # integers (GLT indices, classes) are never masked to NaN
    chunk_shape, shard_shape = variable_layout(var.dims, var.shape, dtype.itemsize, layout)
    var = var.chunk(dict(zip(var.dims, shard_shape, strict=True)))
    enc.update(chunks=chunk_shape, shards=shard_shape, compressors=compressors_for(dtype))
    return var, enc, dtype


def _regions(
    grids: Mapping[str, GridLayout], on_grid: Mapping[str, tuple[str, str] | None]
) -> tuple[Region, ...]:
    """Shard regions of every grid, row by row."""
    out = []
    for gname, g in grids.items():
        names = tuple(n for n, p in on_grid.items() if p == g.dims)
        for row in range(g.n_shards[0]):
            for col in range(g.n_shards[1]):
                rows, cols = g.shard_window(row, col)
                window = {g.dims[0]: (rows.start, rows.stop), g.dims[1]: (cols.start, cols.stop)}
                out.append(Region(gname, (row, col), window, names))
    return tuple(out)


def plan_cube(
    ds: xr.Dataset,
    *,
    attrs: Mapping[str, Any] | None = None,
    encoding_dtype: str = "float32",
    chunks: int | None = None,
    shards: int | None = None,
    version: str | None = None,
) -> CubePlan:
    """Plan the write of a reader Dataset as a cube (nothing is read or written).

    Parameters
    ----------
    ds
        Reader Dataset: grid variables on ``(y, x)`` with a rioxarray CRS and transform, or on
        EMIT's ``(line, sample)`` with ``glt_x``/``glt_y`` on ``(ortho_y, ortho_x)``.
    attrs
        Provenance attributes from the caller (source item, checksums, parameters of ingest).
    encoding_dtype
        Storage dtype of reflectance: ``"float32"`` or ``"int16"`` (CF ``scale_factor``
        :data:`INT16_SCALE`, ``_FillValue`` :data:`INT16_FILL`; values are clipped to the
        representable range).
    chunks, shards
        Spatial chunk and shard edges (pixels) instead of the rules of
        :mod:`spectraflow.cube.layout`.
    version
        spectraflow version recorded in the attributes (default: the running one).

    Returns
    -------
    CubePlan

    Raises
    ------
    ConfigError
        Bad ``encoding_dtype``, ``chunks`` or ``shards``.
    CubeError
        No raster variable, or a map grid without a CRS or with coordinates that contradict
        its transform.
    """
    if encoding_dtype not in ENCODING_DTYPES:
        raise ConfigError(
            f"unknown encoding dtype {encoding_dtype!r}",
            where="encoding_dtype",
            fix=f"use one of {', '.join(ENCODING_DTYPES)}",
        )
    on_grid = {name: spatial_dims_of(var.dims) for name, var in ds.data_vars.items()}
    grid_dims = {pair for pair in on_grid.values() if pair is not None}
    if not grid_dims:
        raise CubeError(
            "dataset has no raster variable on a (y, x), (line, sample) or (ortho_y, ortho_x) grid",
            where=", ".join(str(n) for n in ds.data_vars) or "data variables",
            fix="pass a Dataset from a spectraflow.sensors reader",
        )

    grids = _plan_grids(ds, on_grid, encoding_dtype, chunks=chunks, shards=shards)
    by_dims = {g.dims: name for name, g in grids.items()}
    map_geo = _georeference(ds, grid_dims)
    ortho_geo = _ortho_georeference(ds) if ("ortho_y", "ortho_x") in grid_dims else None

    data_vars: dict[Hashable, xr.Variable] = {}
    encoding: dict[str, dict[str, Any]] = {}
    codecs: dict[str, str] = {}
    for name, member in ds.data_vars.items():
        var = member.variable.to_base_variable()
        var.attrs = _clean_attrs(var.attrs, _GRID_MAPPING_ATTRS + _CF_ENCODING_ATTRS)
        var.encoding = {}
        pair = on_grid[name]
        if pair is None:  # small non-raster variable: stored whole with the template
            data_vars[name] = var.compute()
            continue
        var, enc, dtype = _stored_variable(name, var, grids[by_dims[pair]], encoding_dtype)
        if pair == ("y", "x") and map_geo is not None:
            var.attrs["grid_mapping"] = georef.GRID_MAPPING
        if pair == ("ortho_y", "ortho_x") and ortho_geo is not None:
            shape = grids[by_dims[pair]].shape
            var.attrs.update(georef.geozarr_attrs(*ortho_geo, dims=pair, shape=shape))
        data_vars[name], encoding[str(name)], codecs[str(name)] = var, enc, codec_name(dtype)

    coords: dict[Hashable, xr.Variable] = {}
    for name, coord in ds.coords.items():
        if name == georef.GRID_MAPPING or "crs_wkt" in coord.attrs or "spatial_ref" in coord.attrs:
            continue  # rebuilt below from the CRS
        coords[name] = _as_stored_coord(coord.variable)
    if map_geo is not None:
        coords[georef.GRID_MAPPING] = xr.Variable(
            (), np.int64(0), attrs=georef.cf_grid_mapping_attrs(*map_geo)
        )

    params: dict[str, Any] = {
        "cube_format": CUBE_FORMAT,
        "encoding_dtype": encoding_dtype,
        "grids": {name: g.as_dict() for name, g in grids.items()},
        "codecs": codecs,
    }
    if encoding_dtype == "int16":
        params.update(scale_factor=INT16_SCALE, fill_value=INT16_FILL)
    source = _source_attrs(ds.attrs)
    caller = jsonable(dict(attrs or {}))
    geo_attrs: dict[str, Any] = {}
    if map_geo is not None:
        geo_attrs = georef.geozarr_attrs(*map_geo, dims=("y", "x"), shape=grids["y_x"].shape)
    identity = {
        "params": params,
        "source_attrs": source,
        "attrs": caller,
        "variables": {
            str(n): [list(map(str, v.dims)), list(v.shape), str(v.dtype), jsonable(v.attrs)]
            for n, v in sorted(data_vars.items(), key=lambda kv: str(kv[0]))
        },
        "coords": {str(n): _digest(np.asarray(v.values)) for n, v in coords.items()},
        "georef": geo_attrs,
    }
    fingerprint = hashlib.sha256(
        json.dumps(identity, sort_keys=True, default=str).encode()
    ).hexdigest()

    group_attrs = {
        **source,
        **caller,
        **geo_attrs,
        VERSION_ATTR: version or __version__,
        PARAMS_ATTR: params,
        FINGERPRINT_ATTR: fingerprint,
    }
    dataset = xr.Dataset(data_vars, coords=coords, attrs=group_attrs)
    regions = _regions(grids, {str(n): p for n, p in on_grid.items()})
    return CubePlan(dataset, encoding, grids, regions, fingerprint)
