"""``predict_cube``: a model over a whole cube, written as a predictions store.

The predictions are a lazy Dataset on the cube's own grid (:func:`predict_dataset`), written
with the cube writer (:func:`spectraflow.cube.write_cube`): region by region, resumable from
the regions already written, complete only when its marker is there, and a no-op when the same
model already predicted the same cube.

- Learned models: the selected bands are split into tiles whose cores are multiples of the
  cube's chunks; each tile is read with the card's halo on every side (reflected at the image
  edge) and the tiles of a region go through the network a batch at a time
  (:class:`~spectraflow.inference.runtime.Runtime`: the best device, AMP on GPU). Each tile
  contributes its core plus half its halo, Hann-weighted, so neighbouring tiles hand over
  smoothly instead of meeting at a seam (:mod:`~spectraflow.inference.tiled`). Outputs:
  ``probabilities`` (label, y, x), ``class`` (the class value, 0 = no data) and
  ``confidence`` (its probability); tiles without a valid pixel are skipped.
- Models with scene statistics (the matched filter): the first pass over the scene, then its
  tiles (:meth:`~spectraflow.models.matched_filter.MatchedFilter.retrieve`).

EMIT predictions stay in sensor geometry with the GLT, like the cube.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from spectraflow.cube import open_cube, write_cube
from spectraflow.inference.blend import argmax_classes
from spectraflow.inference.grid import TileGrid, Window
from spectraflow.inference.runtime import Runtime, default_batch, runtime_for
from spectraflow.inference.tiled import (
    TilePlan,
    add_overlaps,
    normalise,
    predict_region,
)
from spectraflow.models import get_card, load_model
from spectraflow.models.bands import BandTable
from spectraflow.models.learned import LearnedModel, band_subset
from spectraflow.models.matched_filter import cube_bands

__all__ = ["predict_cube", "predict_dataset"]

# Cube attributes the predictions keep: what mosaics and products need to place, date and
# cite each scene.
_PROVENANCE = (
    "sensor",
    "scene_id",
    "collection",
    "provider",
    "datetime",
    "source_item",
    "geotransform",
    "ortho_crs",
)


def _learned(
    cube: xr.Dataset,
    runtime: Runtime,
    *,
    tile: int | None,
    batch: int | None,
    region: int | None,
) -> xr.Dataset:
    model = runtime.model
    refl = cube["reflectance"]
    table = cube_bands(cube)
    picked = model.bands(table)
    sub = band_subset(table, picked) if model.conditioned else None
    halo = model.card.input.halo
    stored = refl.encoding.get("chunks") or refl.data.chunksize  # the Zarr chunk, not the shard
    wanted = (tile or model.card.input.tile_size) - 2 * halo
    grid = TileGrid.plan(
        (refl.shape[1], refl.shape[2]),
        tile=max(wanted, 1),
        halo=halo,
        align=int(stored[-1]),
        size_multiple=model.size_multiple,
    )
    batch = batch or default_batch(runtime.device.type, len(picked), grid.input_shape)
    plan = TilePlan(grid, margin=halo // 2, batch=batch)
    chunks, edge = _region_chunks(plan, bands=len(picked), region=region)
    data = refl.data[picked].rechunk(((len(picked),), *chunks))
    valid = (
        cube["valid"].data.astype(bool).rechunk(chunks)
        if "valid" in cube
        else da.ones(grid.shape, dtype=bool, chunks=chunks)
    )
    classes = len(model.class_values)
    sums = _blended_sums(data, valid, plan, runtime, sub, classes)
    probs = da.map_blocks(
        lambda s, v: normalise(s, v[0]),
        sums,
        valid[None],
        dtype=np.float32,
        chunks=((classes,), *chunks),
    )
    lookup = model.class_values
    spatial = refl.dims[1:]
    out = xr.Dataset(
        {
            "probabilities": (("label", *spatial), probs),
            "class": (
                spatial,
                probs.map_blocks(argmax_classes, lookup, drop_axis=0, dtype=np.uint8),
            ),
            "confidence": (spatial, probs.max(axis=0)),
        },
        coords={
            **{k: v for k, v in cube.coords.items() if set(v.dims) <= set(spatial)},
            "label": [int(v) for v in lookup],  # class value of each layer
        },
    )
    out["class"].attrs.update(
        long_name="class value (0 = no data)",
        flag_values=[int(v) for v in lookup],
        flag_meanings=" ".join(c.name for c in model.card.output.classes),
        flag_colors=[c.colour for c in model.card.output.classes],  # for colour tables, legends
    )
    out["confidence"].attrs.update(long_name="probability of the chosen class", units="1")
    out["probabilities"].attrs.update(long_name="class probabilities", units="1")
    out.attrs.update(
        tile=grid.input_shape[0], tile_core=grid.core[0], blend_margin=plan.margin, region=edge
    )
    for name in ("glt_x", "glt_y"):
        if name in cube:
            out[name] = cube[name]
    return out


def _region_chunks(
    plan: TilePlan, *, bands: int, region: int | None
) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], int]:
    """Region sizes per axis, and the square edge of the regions (the store's shard edge).

    Regions are whole cores, ``region`` pixels or within the memory budget. A last region
    shorter than the context depth joins the one before: dask's overlap needs every block at
    least as deep as the overlap.
    """
    chunks = []
    edges = plan.region_edge(bands)
    if region is not None:
        edges = (plan.grid.core[0] * max(region // plan.grid.core[0], 1),) * 2
    for size, edge in zip(plan.grid.shape, edges, strict=True):
        axis = [edge] * (size // edge) + ([size % edge] if size % edge else [])
        if len(axis) > 1 and axis[-1] < max(plan.depth, plan.margin):
            axis[-2:] = [axis[-2] + axis[-1]]
        chunks.append(tuple(axis))
    # An axis with one region is cut to the image; the other axis's edge covers it too.
    return (chunks[0], chunks[1]), max(edges)


def _blended_sums(
    data: da.Array,
    valid: da.Array,
    plan: TilePlan,
    runtime: Runtime,
    table: BandTable | None,
    channels: int,
) -> da.Array:
    """Lazy Hann-blended sums ``(channels + 1, rows, cols)`` chunked like ``valid``.

    One task per region predicts its tiles (batched) over the region expanded by the blend
    margin; a second task per region adds its neighbours' overlapping margins.
    """
    depth, m = plan.depth, plan.margin
    starts = [np.cumsum((0, *axis)) for axis in valid.chunks]
    n_rows, n_cols = (len(axis) for axis in valid.chunks)

    def window(i: int, j: int, expand: int = 0) -> Window:
        r, c = starts
        return (r[i] - expand, r[i + 1] + expand, c[j] - expand, c[j + 1] + expand)

    def region_task(block: np.ndarray, mask: np.ndarray, block_info: Any = None) -> np.ndarray:
        _, i, j = block_info[0]["chunk-location"]
        region = window(i, j)
        origin = (max(region[0] - depth, 0), max(region[2] - depth, 0))
        return predict_region(
            block, plan=plan, region=region, origin=origin, run=partial(runtime, table=table),
            channels=channels, valid=mask[0], gate=runtime.gate,  # the gate of this process
        )  # fmt: skip

    # Along an axis of one region there is nothing to overlap (and it may be under the depth).
    deep_r, deep_c = (depth if len(axis) > 1 else 0 for axis in valid.chunks)
    expanded = da.map_blocks(
        region_task,
        da.overlap.overlap(data, depth={0: 0, 1: deep_r, 2: deep_c}, boundary="none"),
        da.overlap.overlap(valid, depth={0: deep_r, 1: deep_c}, boundary="none")[None],
        dtype=np.float32,
        chunks=((channels + 1,), *(tuple(c + 2 * m for c in axis) for axis in valid.chunks)),
    )
    if m == 0:
        return expanded
    parts = expanded.to_delayed()
    rows = []
    for i in range(n_rows):
        row = []
        for j in range(n_cols):
            near = [
                (window(a, b, m), parts[0, a, b])
                for a in range(max(i - 1, 0), min(i + 2, n_rows))
                for b in range(max(j - 1, 0), min(j + 2, n_cols))
            ]
            region = window(i, j)
            summed = dask.delayed(_add_parts)(region, [w for w, _ in near], *(p for _, p in near))
            shape = (channels + 1, region[1] - region[0], region[3] - region[2])
            row.append(da.from_delayed(summed, shape=shape, dtype=np.float32))
        rows.append(row)
    return da.block([rows])


def _add_parts(region: Window, windows: list[Window], *parts: np.ndarray) -> np.ndarray:
    return add_overlaps(region, list(zip(windows, parts, strict=True)))


def _held_when_small(cube: xr.Dataset, model: Any) -> xr.Dataset:
    """The cube with the model's bands in memory when they take under a quarter of the RAM.

    A model with scene statistics reads the scene twice (statistics, then tiles); holding its
    bands decodes the cube once, and only those bands stay in memory.
    """
    held = cube.isel(band=model.bands(cube_bands(cube)))
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if held["reflectance"].nbytes > ram // 4:
        return cube
    return held.assign(reflectance=held["reflectance"].persist())


def predict_dataset(
    cube: xr.Dataset,
    model: Any,
    *,
    tile: int | None = None,
    batch: int | None = None,
    region: int | None = None,
) -> xr.Dataset:
    """Lazy predictions of ``model`` (a loaded model or a :class:`Runtime`) over ``cube``.

    The predictions are on the cube's grid. ``tile`` is the tile edge including its halo
    (default: the card's tile size); ``batch`` the tiles per forward (default:
    :func:`~spectraflow.inference.runtime.default_batch`); ``region`` the edge of the blocks
    predicted and written together (whole tile cores; default: the largest whose input fits
    256 MiB).

    Raises
    ------
    BandMismatchError
        The cube lacks bands the model needs (before any tile is read).
    """
    if isinstance(model, LearnedModel):
        model = Runtime(model)
    if isinstance(model, Runtime):
        out = _learned(cube, model, tile=tile, batch=batch, region=region)
        card = model.model.card
    else:  # models with scene statistics (the matched filter) run their first pass here
        out = model.retrieve(_held_when_small(cube, model))
        card = model.card
    if "spatial_ref" in cube.coords:
        out = out.assign_coords(spatial_ref=cube["spatial_ref"])
    if cube.rio.crs is not None and "y" in out.dims:
        out = out.rio.write_crs(cube.rio.crs)
    out.attrs.update({k: v for k, v in cube.attrs.items() if k in _PROVENANCE})
    out.attrs.update(model=card.name, model_version=card.version)
    return out


def predict_cube(
    cube_url: str | os.PathLike[str],
    model: str | Any,
    *,
    out: str | os.PathLike[str],
    tile: int | None = None,
    batch: int | None = None,
    region: int | None = None,
    device: str | torch.device | None = None,
    compile: bool = False,
) -> str:
    """Run ``model`` (a name, card path or loaded model) over a cube; return the store's URL.

    Parameters
    ----------
    tile
        Tile edge in pixels including the halo (default: the card's); cores are rounded to
        the cube's chunks.
    batch
        Tiles per forward (default: 16 on CUDA, 8 on MPS, 4 on CPU, or fewer on CPU when the
        tiles have many bands: at most 160 MiB of input per forward).
    region
        Edge in pixels of the blocks predicted and written together, rounded to whole tile
        cores (default: the largest whose input fits 256 MiB); an interrupted run resumes
        from the regions already written.
    device
        ``"cuda"``, ``"mps"``, ``"cpu"``; default the best available.
    compile
        ``torch.compile`` the network (pays off on GPUs for large runs).

    Raises
    ------
    BandMismatchError
        The cube lacks the model's bands; nothing is written.
    CubeError
        The cube is incomplete, or another prediction is in the way at ``out``.
    """
    cube = open_cube(cube_url)
    if isinstance(model, str) and get_card(model).network is not None:
        loaded: Any = runtime_for(model, None if device is None else str(device), compile)
    elif isinstance(model, str):
        loaded = load_model(model, device=device)
    elif isinstance(model, LearnedModel):
        loaded = Runtime(model, compile=compile)
    else:
        loaded = model
    ds = predict_dataset(cube, loaded, tile=tile, batch=batch, region=region)
    card = loaded.model.card if isinstance(loaded, Runtime) else loaded.card
    attrs = {"source_cube": str(cube_url), "model": card.name, "model_version": card.version}
    if card.weights is not None:
        attrs["model_sha256"] = card.weights.sha256
    # One shard per region: a region's task writes whole shards, and a resumed run redoes
    # only the regions without a progress record.
    return write_cube(ds, out, attrs=attrs, shards=ds.attrs.get("region"))
