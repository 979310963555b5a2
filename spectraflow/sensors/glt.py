"""Orthorectification with a geographic lookup table (GLT), as EMIT delivers it (pure, no I/O).

EMIT keeps its products in raw sensor geometry (``line``, ``sample``) and ships a GLT: two
integer rasters ``glt_x`` (sample) and ``glt_y`` (line) on an EPSG:4326 grid (``ortho_y``,
``ortho_x``) whose ``geotransform`` (GDAL order) names the upper-left *corner*. Ortho pixel
``(row, col)`` takes raw pixel ``(glt_y - 1, glt_x - 1)``: indices are 1-based, 0 means no data,
and several ortho pixels may take the same raw pixel. Indices outside ``1 … n`` (a literal -9999
fill in older files, or a corrupt table) are treated as no data too.

:func:`orthorectify` works on numpy arrays (eagerly) and dask arrays (lazily, one task per ortho
block that reads only the raw blocks its GLT block points into), and on xarray objects built
from either. :func:`ortho_coords` gives the pixel-centre longitudes and latitudes of the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple, overload

import dask.array as da
import numpy as np
import xarray as xr

from spectraflow.errors import SceneFormatError

__all__ = ["LonLat", "ortho_coords", "orthorectify"]

RAW_DIMS = ("line", "sample")
ORTHO_DIMS = ("ortho_y", "ortho_x")
DEFAULT_BLOCK = 256


class LonLat(NamedTuple):
    """Pixel-centre coordinates of an ortho grid: ``lon`` (ortho_x) and ``lat`` (ortho_y)."""

    lon: np.ndarray
    lat: np.ndarray


def ortho_coords(geotransform: Sequence[float], shape: tuple[int, int]) -> LonLat:
    """Pixel-centre longitudes (length ``shape[1]``) and latitudes (length ``shape[0]``).

    Parameters
    ----------
    geotransform
        Six GDAL coefficients ``(x0, dx, rx, y0, ry, dy)`` of the upper-left *corner*, degrees.
    shape
        ``(rows, columns)`` of the ortho grid (``ortho_y``, ``ortho_x``).
    """
    gt = [float(v) for v in geotransform]
    if len(gt) != 6 or not np.all(np.isfinite(gt)):
        raise SceneFormatError(
            f"geotransform must be 6 finite numbers, got {list(geotransform)}",
            where="geotransform",
            fix="pass the product's GDAL geotransform (x0, dx, 0, y0, 0, dy)",
        )
    if gt[2] != 0.0 or gt[4] != 0.0:
        raise SceneFormatError(
            "rotated geotransforms have no 1-D pixel-centre coordinates",
            where="geotransform",
            fix="use a north-up grid (rotation terms 0)",
        )
    rows, cols = shape
    lon = gt[0] + (np.arange(cols, dtype=np.float64) + 0.5) * gt[1]
    lat = gt[3] + (np.arange(rows, dtype=np.float64) + 0.5) * gt[5]
    return LonLat(lon=lon, lat=lat)


@overload
def orthorectify(
    data: xr.Dataset, glt_x: Any, glt_y: Any, *, fill: Any = ..., chunks: int | None = ...
) -> xr.Dataset: ...
@overload
def orthorectify(
    data: xr.DataArray, glt_x: Any, glt_y: Any, *, fill: Any = ..., chunks: int | None = ...
) -> xr.DataArray: ...
@overload
def orthorectify(
    data: da.Array, glt_x: Any, glt_y: Any, *, fill: Any = ..., chunks: int | None = ...
) -> da.Array: ...
@overload
def orthorectify(
    data: np.ndarray, glt_x: Any, glt_y: Any, *, fill: Any = ..., chunks: int | None = ...
) -> np.ndarray: ...
def orthorectify(
    data: np.ndarray | da.Array | xr.DataArray | xr.Dataset,
    glt_x: Any,
    glt_y: Any,
    *,
    fill: Any = np.nan,
    chunks: int | None = None,
) -> np.ndarray | da.Array | xr.DataArray | xr.Dataset:
    """Map raw-geometry data onto the GLT's ortho grid.

    Parameters
    ----------
    data
        Array whose two trailing axes are (``line``, ``sample``); leading axes (e.g. ``band``)
        are kept. numpy in → numpy out; dask in → lazy dask out. A ``DataArray`` must have
        trailing dims ``("line", "sample")``; a ``Dataset`` has every such variable
        orthorectified (floats get ``fill``, booleans ``False``, integers their ``nodata``
        attribute or 0) and keeps the variables already on the ortho grid (e.g. ``glt_x``),
        dropping other raw-geometry ones.
    glt_x, glt_y
        GLT sample and line indices (``ortho_y``, ``ortho_x``), 1-based, 0 = no data: numpy,
        dask or ``DataArray``. A dask GLT is computed once here (it is small) to plan which raw
        blocks each ortho block needs.
    fill
        Value of ortho pixels without data. Integer or boolean data with a NaN ``fill`` are
        promoted to floating point; pass an integer ``fill`` to keep their type.
    chunks
        Ortho block size (square) of a dask result; default: the GLT's own chunks when it is a
        dask array, else 256.

    Returns
    -------
    The data on the ortho grid: shape ``(..., ortho_y, ortho_x)``.
    """
    if isinstance(data, xr.Dataset):
        return _orthorectify_dataset(data, glt_x, glt_y, fill=fill, chunks=chunks)
    if isinstance(data, xr.DataArray):
        return _orthorectify_dataarray(data, glt_x, glt_y, fill=fill, chunks=chunks)
    gx, gy, block = _glt_arrays(glt_x, glt_y, chunks)
    if isinstance(data, da.Array):
        return _orthorectify_dask(data, gx, gy, fill=fill, block=block)
    return _orthorectify_numpy(np.asarray(data), gx, gy, fill=fill)


# --- numpy and dask ----------------------------------------------------------------------------


def _glt_arrays(
    glt_x: Any, glt_y: Any, chunks: int | None
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Both GLT rasters as int64 numpy arrays, and the ortho block sizes of a dask result."""
    raw_x = glt_x.data if isinstance(glt_x, xr.DataArray) else glt_x
    raw_y = glt_y.data if isinstance(glt_y, xr.DataArray) else glt_y
    gx = np.asarray(raw_x.compute() if isinstance(raw_x, da.Array) else raw_x)
    gy = np.asarray(raw_y.compute() if isinstance(raw_y, da.Array) else raw_y)
    if gx.ndim != 2 or gx.shape != gy.shape:
        raise SceneFormatError(
            f"glt_x and glt_y must be 2-D rasters of one shape, got {gx.shape} and {gy.shape}",
            where="glt_x, glt_y",
            fix="pass the product's location/glt_x and location/glt_y",
        )
    if gx.dtype.kind not in "iu" or gy.dtype.kind not in "iu":
        raise SceneFormatError(
            f"GLT indices must be integers, got {gx.dtype} and {gy.dtype}",
            where="glt_x, glt_y",
            fix="read the GLT without mask-and-scale decoding (0 already marks no data)",
        )
    if chunks is not None:
        if chunks < 1:
            raise SceneFormatError(
                f"chunks must be a positive integer, got {chunks}",
                where="chunks",
                fix="pass an ortho block size such as 256",
            )
        block = tuple(_split(n, chunks) for n in gx.shape)
    elif isinstance(raw_x, da.Array):
        block = raw_x.chunks
    else:
        block = tuple(_split(n, DEFAULT_BLOCK) for n in gx.shape)
    return gx.astype(np.int64, copy=False), gy.astype(np.int64, copy=False), (block[0], block[1])


def _split(n: int, size: int) -> tuple[int, ...]:
    return tuple(min(size, n - start) for start in range(0, n, size)) or (0,)


def _result_dtype(dtype: np.dtype, fill: Any) -> np.dtype:
    """``dtype`` when ``fill`` fits in it exactly, else the smallest type holding both."""
    f = np.asarray(fill)
    if f.dtype.kind in "fc" and np.isnan(f).any():
        return dtype if dtype.kind in "fc" else np.result_type(dtype, np.float32)
    with np.errstate(all="ignore"):
        fits = bool(f.astype(dtype) == f)
    return dtype if fits else np.result_type(dtype, f.dtype)


def _lookup(
    gx: np.ndarray, gy: np.ndarray, lines: int, samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask of ortho pixels with data and their 0-based raw (line, sample) indices."""
    ok = (gx >= 1) & (gy >= 1) & (gx <= samples) & (gy <= lines)
    return ok, gy[ok] - 1, gx[ok] - 1


def _check_raw(shape: tuple[int, ...]) -> None:
    if len(shape) < 2:
        raise SceneFormatError(
            f"data to orthorectify needs trailing (line, sample) axes, got shape {shape}",
            where="data",
            fix="pass an array shaped (..., line, sample)",
        )


def _orthorectify_numpy(raw: np.ndarray, gx: np.ndarray, gy: np.ndarray, *, fill: Any) -> Any:
    _check_raw(raw.shape)
    dtype = _result_dtype(raw.dtype, fill)
    ok, li, si = _lookup(gx, gy, *raw.shape[-2:])
    out = np.full(raw.shape[:-2] + gx.shape, fill, dtype=dtype)
    out[..., ok] = raw[..., li, si]
    return out


def _gather(
    slab: np.ndarray, ok: np.ndarray, li: np.ndarray, si: np.ndarray, fill: Any, dtype: np.dtype
) -> np.ndarray:
    """One ortho block from the raw slab its GLT block points into (indices relative to it)."""
    out = np.full(slab.shape[:-2] + ok.shape, fill, dtype=dtype)
    out[..., ok] = slab[..., li, si]
    return out


def _orthorectify_dask(
    raw: da.Array,
    gx: np.ndarray,
    gy: np.ndarray,
    *,
    fill: Any,
    block: tuple[tuple[int, ...], tuple[int, ...]],
) -> da.Array:
    """One task per (leading block, ortho block), reading the bounding raw slab of its GLT block.

    Each slab is the bounding box of the raw pixels one ortho block takes, so memory per task is
    bounded by the swath's rotation, not by the scene size.
    """
    _check_raw(raw.shape)
    dtype = _result_dtype(raw.dtype, fill)
    lines, samples = raw.shape[-2:]
    lead_chunks = raw.chunks[:-2]
    y_edges = np.cumsum((0, *block[0]))
    x_edges = np.cumsum((0, *block[1]))
    rows: list[list[da.Array]] = []
    for y0, y1 in itertools.pairwise(y_edges):
        row: list[da.Array] = []
        for x0, x1 in itertools.pairwise(x_edges):
            ok, li, si = _lookup(gx[y0:y1, x0:x1], gy[y0:y1, x0:x1], lines, samples)
            out_chunks = (*lead_chunks, (int(y1 - y0),), (int(x1 - x0),))
            if not ok.any():
                empty = da.full(raw.shape[:-2] + ok.shape, fill, dtype=dtype, chunks=out_chunks)
                row.append(empty)
                continue
            l0, l1 = int(li.min()), int(li.max()) + 1
            s0, s1 = int(si.min()), int(si.max()) + 1
            slab = raw[..., l0:l1, s0:s1].rechunk({raw.ndim - 2: -1, raw.ndim - 1: -1})
            row.append(
                slab.map_blocks(
                    _gather, ok, li - l0, si - s0, fill, dtype, dtype=dtype, chunks=out_chunks
                )
            )
        rows.append(row)
    return _nest_block(rows, raw.ndim - 2)


def _nest_block(rows: list[list[da.Array]], n_lead: int) -> da.Array:
    """``da.block`` of a 2-D list of ortho blocks whose arrays carry ``n_lead`` leading axes."""
    nested: Any = rows
    for _ in range(n_lead):
        nested = [nested]
    return da.block(nested)


# --- xarray ------------------------------------------------------------------------------------


def _ortho_dims_coords(glt: Any) -> tuple[tuple[Hashable, ...], dict[Hashable, Any]]:
    if isinstance(glt, xr.DataArray):
        return glt.dims, {
            k: v.variable for k, v in glt.coords.items() if set(v.dims) <= set(glt.dims)
        }
    return ORTHO_DIMS, {}


def _orthorectify_dataarray(
    arr: xr.DataArray, glt_x: Any, glt_y: Any, *, fill: Any, chunks: int | None
) -> xr.DataArray:
    if arr.dims[-2:] != RAW_DIMS:
        raise SceneFormatError(
            f"DataArray must end with dims {RAW_DIMS}, got {arr.dims}",
            where=str(arr.name),
            fix="transpose it so that (line, sample) come last",
        )
    lead = arr.dims[:-2]
    dims, coords = _ortho_dims_coords(glt_x)
    coords.update(
        {k: v.variable for k, v in arr.coords.items() if v.dims and set(v.dims) <= set(lead)}
    )
    coords.update({k: v.variable for k, v in arr.coords.items() if not v.dims})
    data = orthorectify(arr.data, glt_x, glt_y, fill=fill, chunks=chunks)
    return xr.DataArray(data, dims=(*lead, *dims), coords=coords, name=arr.name, attrs=arr.attrs)


def _orthorectify_dataset(
    ds: xr.Dataset, glt_x: Any, glt_y: Any, *, fill: Any, chunks: int | None
) -> xr.Dataset:
    out: dict[Hashable, xr.DataArray] = {}
    for name, var in ds.data_vars.items():
        if var.dims[-2:] == RAW_DIMS:
            kind = var.dtype.kind
            f = fill if kind in "fc" else (False if kind == "b" else var.attrs.get("nodata", 0))
            out[name] = _orthorectify_dataarray(var, glt_x, glt_y, fill=f, chunks=chunks)
        elif not set(var.dims) & set(RAW_DIMS):
            out[name] = var
    kept = {k: v for k, v in ds.coords.items() if not set(v.dims) & set(RAW_DIMS)}
    return xr.Dataset(out, coords=kept, attrs=ds.attrs)
