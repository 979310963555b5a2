"""``predict_cube``: a model over a whole cube, written as a predictions store.

The predictions are a lazy Dataset on the cube's own grid (:func:`predict_dataset`), written
with the cube writer (:func:`spectraflow.cube.write_cube`): region by region, resumable from
the regions already written, complete only when its marker is there, and a no-op when the same
model already predicted the same cube.

- Learned models: the selected bands are split into tiles whose cores are multiples of the
  cube's chunks; each tile is read with the card's halo on every side (reflected at the image
  edge), run through the network and cropped back to its core, so every pixel's answer comes
  from one tile with at least a halo of context. Outputs: ``probabilities`` (label, y, x),
  ``class`` (the class value, 0 = no data) and ``confidence`` (its probability).
- Models with scene statistics (the matched filter): the first pass over the scene, then its
  tiles (:meth:`~spectraflow.models.matched_filter.MatchedFilter.retrieve`).

EMIT predictions stay in sensor geometry with the GLT, like the cube.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
import torch
import xarray as xr

from spectraflow.cube import open_cube, write_cube
from spectraflow.inference.grid import TileGrid
from spectraflow.models import load_model
from spectraflow.models.learned import LearnedModel, band_subset
from spectraflow.models.matched_filter import cube_bands

__all__ = ["predict_cube", "predict_dataset"]


def _learned(cube: xr.Dataset, model: LearnedModel, tile: int | None) -> xr.Dataset:
    refl = cube["reflectance"]
    table = cube_bands(cube)
    picked = model.bands(table)
    sub = band_subset(table, picked)
    halo = model.card.input.halo
    data = refl.data[picked]
    stored = refl.encoding.get("chunks") or data.chunksize  # the Zarr chunk, not the shard
    wanted = (tile or model.card.input.tile_size) - 2 * halo
    grid = TileGrid.plan(data.shape[1:], tile=max(wanted, 1), halo=halo, align=int(stored[-1]))
    data = data.rechunk((len(picked), *grid.core))
    classes = len(model.class_values)

    def run(block: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None]
        return model.forward(x, sub if model.conditioned else None)[0].cpu().numpy()

    depth, boundary = {0: 0, 1: halo, 2: halo}, {0: "none", 1: "reflect", 2: "reflect"}
    padded = da.overlap.overlap(data, depth=depth, boundary=boundary)
    grown = tuple(tuple(c + 2 * halo for c in axis) for axis in data.chunks[1:])
    probs = da.overlap.trim_internal(
        padded.map_blocks(run, dtype=np.float32, chunks=((classes,), *grown)),
        depth,
        boundary=boundary,
    )
    if "valid" in cube:
        probs = da.where(cube["valid"].data.rechunk(data.chunks[1:])[None], probs, np.nan)
    finite = da.isfinite(probs).all(axis=0)
    lookup = model.class_values
    values = probs.argmax(axis=0).map_blocks(lambda i: lookup[i], dtype=np.uint8)
    spatial = refl.dims[1:]
    out = xr.Dataset(
        {
            "probabilities": (("label", *spatial), probs),
            "class": (spatial, da.where(finite, values, np.uint8(0)).astype(np.uint8)),
            "confidence": (spatial, da.where(finite, probs.max(axis=0), np.nan)),
        },
        coords={
            **{k: v for k, v in cube.coords.items() if set(v.dims) <= set(spatial)},
            "label": [int(v) for v in model.class_values],  # class value of each layer
        },
    )
    out["class"].attrs.update(
        long_name="class value (0 = no data)",
        flag_values=[int(v) for v in model.class_values],
        flag_meanings=" ".join(c.name for c in model.card.output.classes),
    )
    out["confidence"].attrs.update(long_name="probability of the chosen class", units="1")
    out["probabilities"].attrs.update(long_name="class probabilities", units="1")
    for name in ("glt_x", "glt_y"):
        if name in cube:
            out[name] = cube[name]
    return out


def predict_dataset(cube: xr.Dataset, model: Any, *, tile: int | None = None) -> xr.Dataset:
    """Lazy predictions of ``model`` (a loaded model) over ``cube`` on the cube's grid.

    ``tile`` is the tile edge including its halo (default: the card's tile size).

    Raises
    ------
    BandMismatchError
        The cube lacks bands the model needs (before any tile is read).
    """
    # Models with scene statistics (the matched filter) run their first pass in retrieve().
    out = _learned(cube, model, tile) if isinstance(model, LearnedModel) else model.retrieve(cube)
    if "spatial_ref" in cube.coords:
        out = out.assign_coords(spatial_ref=cube["spatial_ref"])
    if cube.rio.crs is not None and "y" in out.dims:
        out = out.rio.write_crs(cube.rio.crs)
    out.attrs.update(
        {k: v for k, v in cube.attrs.items() if k in ("sensor", "scene_id", "geotransform")}
    )
    out.attrs.update(model=model.card.name, model_version=model.card.version)
    return out


def predict_cube(
    cube_url: str | os.PathLike[str],
    model: str | Any,
    *,
    out: str | os.PathLike[str],
    tile: int | None = None,
    device: str | torch.device | None = None,
) -> str:
    """Run ``model`` (a name, card path or loaded model) over a cube; return the store's URL.

    Raises
    ------
    BandMismatchError
        The cube lacks the model's bands; nothing is written.
    CubeError
        The cube is incomplete, or another prediction is in the way at ``out``.
    """
    cube = open_cube(cube_url)
    loaded = load_model(model, device=device) if isinstance(model, str) else model
    ds = predict_dataset(cube, loaded, tile=tile)
    attrs = {
        "source_cube": str(cube_url),
        "model": loaded.card.name,
        "model_version": loaded.card.version,
        "tile": tile or loaded.card.input.tile_size,
    }
    if loaded.card.weights is not None:
        attrs["model_sha256"] = loaded.card.weights.sha256
    return write_cube(ds, out, attrs=attrs)
