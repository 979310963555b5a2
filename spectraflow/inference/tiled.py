"""Tiled, blended prediction of image regions (pure: numpy; the model is a batch function).

A scene is split into *regions* (dask blocks of whole tile cores, sized to a memory budget);
a region is split into the tiles of one global :class:`~spectraflow.inference.grid.TileGrid`.

1. :func:`predict_region` reads each tile from the region's block (the region plus the
   grid's context depth), reflect-pads tiles at the image edge, runs them through the model
   ``batch`` tiles per call, and accumulates each tile's core expanded by ``margin`` with a
   Hann weight (:mod:`~spectraflow.inference.blend`). It returns the weighted sums and the
   weight sum over the region expanded by the margin.
2. :func:`add_overlaps` adds the expanded sums of a region and of its neighbours over the
   region: the tiles on either side of a region edge blend exactly as tiles inside a region
   do, so the result does not depend on how tiles are grouped into regions.
3. :func:`normalise` divides sums by weights: probabilities, NaN where nothing covered.

Because the grid is global (tile cores at multiples of the core edge from pixel 0), a scene
gives the same tiles whatever its regions; :func:`predict_image` is the one-region case for an
array held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectraflow.errors import ConfigError
from spectraflow.inference.blend import Blender, hann_window
from spectraflow.inference.grid import Tile, TileGrid, Window, crop_core, reflect_pad

__all__ = [
    "BatchFn",
    "TilePlan",
    "add_overlaps",
    "normalise",
    "predict_image",
    "predict_region",
]

BatchFn = Callable[[np.ndarray], np.ndarray]
"""A model as a function: inputs ``(B, C, H, W)`` to outputs ``(B, K, H, W)``."""


@dataclass(frozen=True)
class TilePlan:
    """How a scene is tiled, blended and batched.

    Attributes
    ----------
    grid
        The global tile grid (cores, halo, input shape).
    margin
        Pixels around each core that a tile also contributes, Hann-weighted
        (``0 ≤ margin ≤ grid.halo``); 0 writes cores only.
    batch
        Tiles per model call.
    """

    grid: TileGrid
    margin: int
    batch: int

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= self.grid.halo:
            raise ConfigError(
                f"blend margin {self.margin} must be between 0 and the halo ({self.grid.halo})",
                where="margin",
                fix="use a margin no wider than the tile halo",
            )
        if self.batch < 1:
            raise ConfigError(
                f"batch must be ≥ 1 tile, got {self.batch}", where="batch", fix="pass batch ≥ 1"
            )

    @property
    def depth(self) -> int:
        """Context pixels a region's block needs on each side (the bottom/right tile extent)."""
        grid = self.grid
        return max(i - c - grid.halo for i, c in zip(grid.input_shape, grid.core, strict=True))

    def region_edge(self, bands: int, *, budget_bytes: int = 256 * 2**20) -> tuple[int, int]:
        """Region ``(rows, cols)``: whole cores, the most whose float32 block fits the budget."""
        side = int(np.sqrt(budget_bytes / (4 * max(bands, 1)))) - 2 * self.depth
        return tuple(  # type: ignore[return-value]
            min(max(side // c, 1) * c, -(-s // c) * c)
            for c, s in zip(self.grid.core, self.grid.shape, strict=True)
        )


def _tiles_in(grid: TileGrid, region: Window) -> list[Tile]:
    """The grid's tiles whose core starts inside ``region`` (regions hold whole cores)."""
    r0, r1, c0, c1 = region
    rows = range(r0 // grid.core[0], -(-r1 // grid.core[0]))
    cols = range(c0 // grid.core[1], -(-c1 // grid.core[1]))
    return [grid.tile(r, c) for r in rows for c in cols]


def predict_region(
    block: np.ndarray,
    *,
    plan: TilePlan,
    region: Window,
    origin: tuple[int, int],
    run: BatchFn,
    channels: int,
    valid: np.ndarray | None = None,
    gate: AbstractContextManager[Any] | None = None,
) -> np.ndarray:
    """Weighted tile outputs over one region expanded by the blend margin.

    Parameters
    ----------
    block
        ``(C, rows, cols)`` input covering every tile read window of the region (the region
        plus ``plan.depth`` on each side, clipped to the image).
    region
        The region's window in image coordinates; its edges are core edges.
    origin
        ``(row, col)`` of ``block[:, 0, 0]`` in image coordinates.
    run
        The model: ``(B, C, H, W)`` → ``(B, channels, H, W)``.
    valid
        Boolean mask of ``block``'s rows and cols; tiles whose core has no valid pixel are
        skipped.
    gate
        Held while a batch is stacked and run (the runtime's lock): regions predicted
        concurrently then hold one stacked batch between them, not one each.

    Returns
    -------
    numpy.ndarray
        float32 ``(channels + 1, rows + 2m, cols + 2m)`` at ``region`` expanded by the margin
        ``m``: Σ weight · value per channel, then Σ weight.
    """
    m = plan.margin
    r0, r1, c0, c1 = region
    blender = Blender(channels, (r1 - r0 + 2 * m, c1 - c0 + 2 * m), origin=(r0 - m, c0 - m))
    o_r, o_c = origin

    def local(window: Window) -> tuple[slice, slice]:
        return (slice(window[0] - o_r, window[1] - o_r), slice(window[2] - o_c, window[3] - o_c))

    tiles = _tiles_in(plan.grid, region)
    if valid is not None:
        tiles = [t for t in tiles if valid[local(t.core)].any()]
    for start in range(0, len(tiles), plan.batch):
        group = tiles[start : start + plan.batch]
        outputs = _run_batch([block[(..., *local(t.read))] for t in group], group, run, gate)
        for tile, output in zip(group, outputs, strict=True):
            values = crop_core(output, tile, margin=m)
            weight = hann_window(*values.shape[1:], halo=m)
            blender.add(values, tile.output_window(margin=m), weight=weight)
    return blender.sums()


def _run_batch(
    reads: list[np.ndarray],
    tiles: list[Tile],
    run: BatchFn,
    gate: AbstractContextManager[Any] | None,
) -> np.ndarray:
    with gate or nullcontext():
        batch = np.stack([reflect_pad(read, t) for read, t in zip(reads, tiles, strict=True)])
        return run(batch)  # the batch is freed on return, inside the gate


def add_overlaps(region: Window, parts: Sequence[tuple[Window, np.ndarray]]) -> np.ndarray:
    """Sum over ``region`` of expanded region outputs (each at its own window)."""
    r0, r1, c0, c1 = region
    out: np.ndarray | None = None
    for (p0, p1, q0, q1), part in parts:
        rows = slice(max(r0, p0), min(r1, p1))
        cols = slice(max(c0, q0), min(c1, q1))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        if out is None:
            out = np.zeros((part.shape[0], r1 - r0, c1 - c0), dtype=np.float32)
        out[:, rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] += part[
            :, rows.start - p0 : rows.stop - p0, cols.start - q0 : cols.stop - q0
        ]
    if out is None:
        raise ConfigError(
            f"no part overlaps region {region}",
            where="parts",
            fix="pass the region's own expanded output among the parts",
        )
    return out


def normalise(sums: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Values ``(C, rows, cols)`` from sums ``(C + 1, …)``: NaN where uncovered or invalid."""
    weight = sums[-1]
    covered = weight > 0 if valid is None else (weight > 0) & valid.astype(bool, copy=False)
    out = np.full(sums[:-1].shape, np.nan, dtype=np.float32)
    np.divide(sums[:-1], weight, out=out, where=covered[None])
    return out


def predict_image(image: np.ndarray, *, plan: TilePlan, run: BatchFn, channels: int) -> np.ndarray:
    """Blended outputs ``(channels, rows, cols)`` of a whole image held in memory."""
    rows, cols = image.shape[-2:]
    region = (0, rows, 0, cols)
    sums = predict_region(
        image, plan=plan, region=region, origin=(0, 0), run=run, channels=channels
    )
    return normalise(add_overlaps(region, [(_expanded(region, plan.margin), sums)]))


def _expanded(window: Window, margin: int) -> Window:
    r0, r1, c0, c1 = window
    return (r0 - margin, r1 + margin, c0 - margin, c1 + margin)
