"""Write a reader Dataset as a Zarr v3 cube: template, shard-owning region writes, marker last.

The write is safe by construction:

1. **Plan** (:func:`spectraflow.cube.prepare.plan_cube`): layout, encodings, shard regions and the
   fingerprint, without reading a pixel.
2. **Decide** from what is at the URL (:func:`spectraflow.cube.store.inspect_store`): a complete
   cube with the same fingerprint makes the write a no-op; a different complete cube is an
   error unless ``overwrite=True``; an interrupted write with the same fingerprint is resumed;
   anything that is not a Zarr v3 group is never touched.
3. **Template**: ``to_zarr(compute=False)`` writes the group and array metadata (consolidated
   into the group's ``zarr.json``) and the small in-memory variables and coordinates, then a
   ``template`` progress record.
4. **Regions**: one dask task per shard region writes every variable of its grid in that
   window with ``to_zarr(region=...)`` — the region is whole shards, so no two tasks touch the
   same object and no lock is needed — and then records the region as done. A task holds one
   shard region in memory, so memory is bounded by (threads × shard size) whatever the scene
   size; reads of the source and writes overlap across tasks.
5. **Marker**: the progress records are deleted and ``_spectraflow_complete`` is added to the
   group's attributes, the last write. Before it exists, :func:`spectraflow.cube.open_cube`
   refuses the group.

A resumed write lists the progress records and writes the regions that have none (a region
interrupted half-way is written again, whole), so its result is the same as a clean write.
Replacing a complete local cube (``overwrite=True``) writes a sibling ``.<name>.<fp>.writing``
directory and swaps it in with two renames; readers never see a partial cube (for an instant
they may see none). Remote cubes are replaced in place, guarded by the marker alone.

Two writers must not write the same URL at the same time.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr

from spectraflow.cube.prepare import COMPLETE_ATTR, CubePlan, Region, plan_cube
from spectraflow.cube.store import (
    PROGRESS_DIR,
    TEMPLATE_KEY,
    CubeStore,
    inspect_store,
)
from spectraflow.errors import CubeError

__all__ = ["write_cube"]

log = logging.getLogger(__name__)

# Metadata of the progress folder: an empty Zarr group (see spectraflow.cube.store).
_PROGRESS_GROUP = json.dumps(
    {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"description": "spectraflow write progress; deleted when complete"},
    }
).encode()


@contextlib.contextmanager
def quiet_zarr_warnings() -> Iterator[None]:
    """Silence zarr's notice that consolidated metadata is not in the Zarr v3 spec (yet).

    The filter is process-wide and stays: ``warnings.catch_warnings`` is not thread-safe, and
    concurrent writes (two scenes of a flow) would restore each other's filters mid-write.
    """
    _ignore_consolidation_notice()
    yield


@functools.cache
def _ignore_consolidation_notice() -> None:
    warnings.filterwarnings(
        "ignore", message="Consolidated metadata is currently not part", category=UserWarning
    )


def write_cube(
    ds: xr.Dataset,
    url: str | os.PathLike[str],
    *,
    attrs: Mapping[str, Any] | None = None,
    encoding_dtype: str = "float32",
    overwrite: bool = False,
    chunks: int | None = None,
    shards: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Write a reader Dataset as a Zarr v3 cube, idempotently and resumably.

    Parameters
    ----------
    ds
        Lazy reader Dataset (``spectraflow.sensors``): ``reflectance`` (band, y, x) or EMIT's
        (band, line, sample), ``valid``, quality layers, coordinates and rioxarray CRS.
    url
        Local path or fsspec URL of the cube (a Zarr v3 group).
    attrs
        Provenance attributes (source item href, input checksums, ingest parameters); the
        spectraflow version and the write parameters are added.
    encoding_dtype
        Storage dtype of reflectance, ``"float32"`` or ``"int16"`` (CF ``scale_factor`` 1e-4,
        ``_FillValue`` -32768); :func:`~spectraflow.cube.open_cube` decodes both to float32.
    overwrite
        Replace an existing cube written from other inputs or with other parameters (or an
        interrupted write of one) instead of raising.
    chunks, shards
        Spatial chunk and shard edges in pixels instead of :mod:`spectraflow.cube.layout`'s.
    storage_options
        fsspec options of a remote URL (credentials, endpoint).

    Returns
    -------
    str
        The cube URL (an absolute path for local cubes).

    Raises
    ------
    CubeError
        A different cube (or a foreign object) is at ``url`` and ``overwrite`` is false, or the
        dataset cannot be stored (no raster variable, no CRS).
    ConfigError
        Bad ``encoding_dtype``, ``chunks`` or ``shards``.
    """
    options: dict[str, Any] = {"encoding_dtype": encoding_dtype, "chunks": chunks, "shards": shards}
    plan = plan_cube(ds, attrs=attrs, **options)
    store = CubeStore.from_url(url, storage_options)
    _write_into(store, _as_recorded(store, plan, ds, attrs, options), overwrite=overwrite)
    return store.url


_WHERE_FOUND = ("source_item", "provider")
"""Attributes that say where the scene's item was found, not what was read."""


def _as_recorded(
    store: CubeStore,
    plan: CubePlan,
    ds: xr.Dataset,
    attrs: Mapping[str, Any] | None,
    options: dict[str, Any],
) -> CubePlan:
    """``plan``, or its twin with the item address recorded in the complete cube at ``store``.

    The same scene found through a catalog at another address (a local STAC API on a new
    port, a mirror) is the same cube: the twin's fingerprint then matches, and the write is a
    no-op. Fingerprints themselves stay as they were, so existing cubes stay valid.
    """
    state = inspect_store(store)
    if not state.complete or state.fingerprint in (None, plan.fingerprint):
        return plan
    recorded = {k: state.attrs[k] for k in _WHERE_FOUND if k in state.attrs}
    caller = dict(attrs or {})
    twin = plan_cube(
        ds.assign_attrs({k: v for k, v in recorded.items() if k in ds.attrs}),
        attrs={**caller, **{k: v for k, v in recorded.items() if k in caller}},
        **options,
    )
    return twin if twin.fingerprint == state.fingerprint else plan


def _write_into(store: CubeStore, plan: CubePlan, *, overwrite: bool) -> None:
    """Bring ``store`` to the complete cube of ``plan`` from whatever state it is in."""
    state = inspect_store(store)
    if state.kind == "foreign":
        raise CubeError(
            "something that is not a Zarr v3 group is in the way",
            where=store.url,
            fix="choose another output path, or move away what is there",
        )
    if state.kind == "group":
        same = state.fingerprint == plan.fingerprint
        if state.complete:
            if same:
                log.info(
                    "cube %s is already complete with the same inputs: nothing to do", store.url
                )
                return
            if not overwrite:
                raise CubeError(
                    "a cube written from other inputs or with other parameters exists "
                    f"(fingerprint {str(state.fingerprint)[:12]}, "
                    f"this write {plan.fingerprint[:12]})",
                    where=store.url,
                    fix="pass overwrite=True to replace it, or write elsewhere",
                )
            if store.is_local:
                _replace_local(store, plan)
                return
            store.remove()
        elif same and state.template_done:
            _resume(store, plan)
            return
        elif same or overwrite:
            store.remove()  # an interrupted template (or a write being replaced): start over
        elif state.fingerprint is None:
            raise CubeError(
                "a Zarr group that is not a spectraflow cube is in the way",
                where=store.url,
                fix="pass overwrite=True to replace it, or write elsewhere",
            )
        else:
            raise CubeError(
                "an interrupted write with other inputs or parameters is in the way",
                where=store.url,
                fix="re-run it with its own parameters to finish it, or pass overwrite=True",
            )
    _write_template(store, plan)
    _write_regions(store, plan, done=set())
    _finish(store)


def _write_template(store: CubeStore, plan: CubePlan) -> None:
    log.info("writing the template of %s (%d shard regions)", store.url, len(plan.regions))
    with quiet_zarr_warnings():
        plan.dataset.to_zarr(  # metadata and in-memory variables only: dask data is deferred
            store.url,
            mode="w-",
            compute=False,
            encoding=plan.encoding,
            zarr_format=3,
            consolidated=True,
            storage_options=store.zarr_options,
        )
    store.touch(TEMPLATE_KEY, _PROGRESS_GROUP)


def _resume(store: CubeStore, plan: CubePlan) -> None:
    store.remove_partial_files()
    done = store.keys_under(PROGRESS_DIR)
    left = sum(r.key not in done for r in plan.regions)
    log.info("resuming %s: %d of %d shard regions left", store.url, left, len(plan.regions))
    _write_regions(store, plan, done=done)
    _finish(store)


def _block_index(
    dims: Sequence[Any], region: Region, grid_dims: tuple[str, str]
) -> tuple[int, ...]:
    """Dask block index of a region's shard in a variable chunked into whole shards."""
    where = {grid_dims[0]: region.index[0], grid_dims[1]: region.index[1]}
    return tuple(where.get(str(d), 0) for d in dims)


def _write_regions(store: CubeStore, plan: CubePlan, *, done: set[str]) -> None:
    todo = [r for r in plan.regions if r.key not in done]
    if not todo:
        return
    names = sorted({n for r in todo for n in r.variables})
    blocks = {n: plan.dataset[n].data.to_delayed() for n in names}
    tasks = []
    for region in todo:
        grid_dims = plan.grids[region.grid].dims
        dims = [tuple(map(str, plan.dataset[n].dims)) for n in region.variables]
        parts = [
            blocks[n][_block_index(d, region, grid_dims)]
            for n, d in zip(region.variables, dims, strict=True)
        ]
        tasks.append(
            dask.delayed(_write_region, pure=False)(
                store.url,
                store.storage_options,
                region.window,
                f"{PROGRESS_DIR}/{region.key}",
                region.variables,
                dims,
                *parts,
            )
        )
    dask.compute(*tasks)


def _write_region(
    url: str,
    storage_options: dict[str, Any],
    window: dict[str, tuple[int, int]],
    progress_key: str,
    names: Sequence[str],
    dims: Sequence[tuple[str, ...]],
    *blocks: np.ndarray[Any, Any],
) -> str:
    """Dask task: write the whole shards of one region for every variable, then record it."""
    sub = xr.Dataset(
        {name: (d, np.asarray(b)) for name, d, b in zip(names, dims, blocks, strict=True)}
    )
    sub.to_zarr(
        url,
        region={dim: slice(start, stop) for dim, (start, stop) in window.items()},
        mode="r+",
        zarr_format=3,
        consolidated=False,  # the template's consolidated metadata stays valid: no array changes
        storage_options=storage_options or None,
    )
    CubeStore.from_url(url, storage_options).touch(progress_key)
    return progress_key


def _finish(store: CubeStore) -> None:
    """Drop the progress records, then write the completion marker: the very last write."""
    store.remove(PROGRESS_DIR)
    with quiet_zarr_warnings():
        group = zarr.open_group(
            store.url, mode="r+", zarr_format=3, storage_options=store.zarr_options
        )
        group.attrs.update({COMPLETE_ATTR: True})
    log.info("cube %s is complete", store.url)


def _replace_local(store: CubeStore, plan: CubePlan) -> None:
    """Write the new cube beside the old one, then swap them with two renames."""
    path = Path(store.root)
    staging = CubeStore.from_url(path.with_name(f".{path.name}.{plan.fingerprint[:16]}.writing"))
    _write_into(staging, plan, overwrite=True)  # resumes an interrupted replacement
    retired = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.replaced")
    os.rename(path, retired)
    os.rename(staging.root, path)
    shutil.rmtree(retired, ignore_errors=True)
    log.info("replaced cube %s", store.url)
