"""Open a complete cube as a lazy, decoded, georeferenced Dataset."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from spectraflow.cube.prepare import COMPLETE_ATTR
from spectraflow.cube.store import CubeStore, inspect_store
from spectraflow.cube.write import quiet_zarr_warnings
from spectraflow.errors import CubeError

__all__ = ["open_cube"]

_RERUN = "re-run the ingest that writes it (same scene and parameters) to finish it"


def open_cube(
    url: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Open a complete cube.

    Parameters
    ----------
    url
        Local path or fsspec URL of a cube written by :func:`spectraflow.cube.write_cube`.
    storage_options
        fsspec options of a remote URL.

    Returns
    -------
    xarray.Dataset
        Lazy (dask arrays, one chunk per stored shard): ``reflectance`` decoded to float32
        (NaN where no data) whatever its storage dtype, masks and quality layers with their
        stored dtypes (``valid`` bool, GLT int32), coordinates in memory (``band`` as str),
        the cube's attributes (provenance, write parameters, GeoZarr), and for map-grid cubes
        the ``spatial_ref`` coordinate, so ``ds.rio.crs`` and ``ds.rio.transform()`` are right.

    Raises
    ------
    CubeError
        Nothing at ``url``, not a Zarr v3 group, not a spectraflow cube, or an incomplete cube
        (a write that was interrupted or is still running).
    """
    store = CubeStore.from_url(url, storage_options)
    state = inspect_store(store)
    if state.kind == "absent":
        raise CubeError(
            "no cube at this path",
            where=store.url,
            fix="check the path, or run `spectraflow ingest` (or write_cube) to create the cube",
        )
    if state.kind == "foreign":
        raise CubeError(
            "not a Zarr v3 group, so not a spectraflow cube",
            where=store.url,
            fix="open a cube written by `spectraflow ingest`, or re-run the ingest",
        )
    if state.fingerprint is None:
        raise CubeError(
            "this Zarr group was not written by spectraflow (no spectraflow_fingerprint)",
            where=store.url,
            fix="open a cube written by `spectraflow ingest`, or re-run the ingest",
        )
    if not state.complete:
        raise CubeError(
            "the cube is incomplete: its write was interrupted or is still running",
            where=store.url,
            fix=_RERUN + "; it writes only the missing shards",
        )
    with quiet_zarr_warnings():
        ds = xr.open_zarr(
            store.url,
            zarr_format=3,
            consolidated=None,  # the template consolidates; tolerate a copy that dropped it
            chunks=None,
            decode_coords="all",
            storage_options=store.zarr_options,
        )
    return _decoded(ds)


def _decoded(ds: xr.Dataset) -> xr.Dataset:
    """Shard-sized dask chunks, float32 reflectance, in-memory coordinates, no marker."""
    data_vars: dict[Hashable, xr.Variable] = {}
    for name, da_ in ds.data_vars.items():
        var = da_.variable
        shards = var.encoding.get("shards") or var.encoding.get("chunks")
        if shards:
            var = var.chunk(dict(zip(var.dims, shards, strict=True)))
        if "scale_factor" in var.encoding and var.dtype != np.float32:
            var = var.astype(np.float32)  # int16 storage decodes to float64 in xarray
        data_vars[name] = var
    coords: dict[Hashable, xr.Variable] = {}
    for name, coord in ds.coords.items():
        cvar = coord.variable.load()
        if cvar.dtype.kind in "OT":  # variable-length strings come back as objects/StringDType
            cvar = cvar.copy(data=np.array(cvar.values.tolist(), dtype=str))
        coords[name] = cvar
    attrs = {k: v for k, v in ds.attrs.items() if k != COMPLETE_ATTR}
    out = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    out.encoding = dict(ds.encoding)
    return out
