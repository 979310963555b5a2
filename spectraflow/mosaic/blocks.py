"""The lazy composite of a mosaic: one hand-written dask graph, one task per output block.

For each output block and each store whose footprint overlaps it, :func:`composite_arrays`
plans a :class:`Placement`: the store's pixel window covering the block's footprint (plus a
margin: one pixel for nearest, two for bilinear, none on the block's own grid) and the part of
the block the store covers. A block task is handed the store chunks its windows overlap (a
chunk shared by neighbouring blocks is read once), resamples each window onto the covered
pixels (:mod:`spectraflow.mosaic.resample`: nearest for class maps, confidences and
probabilities; bilinear for continuous values) and composites the scenes, oldest → newest, with
the policy (:mod:`spectraflow.mosaic.composite`). Stores that do not overlap a block are not
read for it, so a task holds one block of output and the windows of the stores over it,
whatever the size of the mosaic.

For ``latest`` and ``best-confidence`` class maps the class task returns, besides the class
layer, which scene won each pixel; a second task per block takes the confidence from the
winner's window. Computing the class layer alone (``latest``) therefore never reads a
confidence chunk.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from affine import Affine
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from spectraflow.mosaic.composite import composite_classes, composite_continuous, mean_classes
from spectraflow.mosaic.grid import PixelWindow, TargetGrid, crs_transformer
from spectraflow.mosaic.resample import (
    NearestMap,
    bilinear,
    expand,
    source_pixel_coords,
    source_pixel_index,
)
from spectraflow.mosaic.sources import PredictionSource

__all__ = ["Placement", "composite_arrays", "placements"]


@dataclass(frozen=True)
class Placement:
    """Where one store's window lands on one output block (all a block task needs to know).

    ``window`` is the store's pixel window ``(r0, r1, c0, c1)``, ``cover`` the block's pixel
    window the store may cover, ``src_shape`` and ``src_transform`` the whole store's grid;
    ``same_crs`` when the store and the block share their CRS (the mapping is then affine).
    """

    src_wkt: str
    dst_wkt: str
    same_crs: bool
    src_transform: Affine
    src_shape: tuple[int, int]
    window: PixelWindow
    cover: PixelWindow

    @property
    def window_transform(self) -> Affine:
        """Transform of the window's pixels."""
        return self.src_transform @ Affine.translation(self.window[2], self.window[0])

    def covered(self, block: TargetGrid) -> TargetGrid:
        """The part of ``block`` the store may cover."""
        r0, r1, c0, c1 = self.cover
        return block.window((r0, r1), (c0, c1))

    def coords(self, block: TargetGrid) -> tuple[np.ndarray, np.ndarray]:
        """Window pixel coordinates (col, row) of the centres of the covered pixels."""
        to_src = None if self.same_crs else _transformer(self.dst_wkt, self.src_wkt)
        return source_pixel_coords(self.covered(block), self.window_transform, to_src=to_src)

    def inside(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Which window coordinates fall inside the whole store (its footprint)."""
        r0, _, c0, _ = self.window
        with np.errstate(invalid="ignore"):
            return (
                (rows >= -r0)
                & (rows < self.src_shape[0] - r0)
                & (cols >= -c0)
                & (cols < self.src_shape[1] - c0)
            )

    def offset(self, block: TargetGrid) -> tuple[int, int] | None:
        """Window (row, col) of the first covered pixel when pixels map one to one, else None."""
        if not self.same_crs:
            return None
        m = ~self.window_transform @ self.covered(block).transform
        if abs(m.a - 1) > 1e-9 or abs(m.e - 1) > 1e-9 or m.b or m.d:
            return None
        if abs(m.c - round(m.c)) > 1e-6 or abs(m.f - round(m.f)) > 1e-6:
            return None
        return round(m.f), round(m.c)

    def pick(self, block: TargetGrid) -> NearestMap:
        """How the window's pixels map onto the covered pixels (nearest neighbour)."""
        r0, r1, c0, c1 = self.window
        h, w = r1 - r0, c1 - c0
        n_rows, n_cols = self.cover[1] - self.cover[0], self.cover[3] - self.cover[2]
        offset = self.offset(block)
        if offset is not None:
            return NearestMap((n_rows, n_cols), None, offset)
        to_src = None if self.same_crs else _transformer(self.dst_wkt, self.src_wkt)
        sub = self.covered(block)
        flat = source_pixel_index(sub, self.window_transform, (h, w), to_src=to_src)
        return NearestMap((n_rows, n_cols), flat, None)

    def bilinear(self, block: TargetGrid, window: np.ndarray) -> np.ndarray:
        """``window`` resampled bilinearly onto the block (NaN where no data)."""
        cols, rows = self.coords(block)
        values = bilinear(window, cols, rows, self.inside(cols, rows))
        return expand(values, self.cover, block.shape, np.nan)


def _transformer(src_wkt: str, dst_wkt: str) -> Callable[..., Any]:
    return crs_transformer(src_wkt, dst_wkt).transform


# --- block tasks ---------------------------------------------------------------------------------


def _class_block(
    classes: list[np.ndarray],
    confidence: list[np.ndarray] | None,
    placements: list[Placement],
    block: TargetGrid,
    policy: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class composite of a block: (class, index of the winning scene, flat index in its window).

    The flat index is filled only for scenes resampled through an index map; scenes on the
    block's own grid are found again by their shift.
    """
    picks = [p.pick(block) for p in placements]
    picked = [
        expand(k.take(c, 0), p.cover, block.shape, 0)
        for c, k, p in zip(classes, picks, placements, strict=True)
    ]
    conf = None
    if confidence is not None:
        conf = (
            expand(k.take(c, np.nan), p.cover, block.shape, np.nan)
            for c, k, p in zip(confidence, picks, placements, strict=True)
        )
    cls, index = composite_classes(picked, conf, policy=policy)
    winner = np.full(block.shape, -1, dtype=np.int32)
    for i, (k, p) in enumerate(zip(picks, placements, strict=True)):
        if k.flat is not None:
            r0, r1, c0, c1 = p.cover
            won = index[r0:r1, c0:c1] == i
            winner[r0:r1, c0:c1][won] = k.flat[won]
    return cls, index, winner


def _winner_values(
    won: tuple[np.ndarray, np.ndarray, np.ndarray],
    windows: list[np.ndarray],
    placements: list[Placement],
    block: TargetGrid,
) -> np.ndarray:
    """Each pixel's value (e.g. confidence) from the window of the scene that won it."""
    _, index, flat = won
    out = np.full(index.shape, np.nan, dtype=np.float32)
    for i, (window, p) in enumerate(zip(windows, placements, strict=True)):
        r0, r1, c0, c1 = p.cover
        hit = index[r0:r1, c0:c1] == i
        if not hit.any():
            continue
        shift = p.offset(block)
        if shift is None:
            out[r0:r1, c0:c1][hit] = window.ravel()[flat[r0:r1, c0:c1][hit]]
        else:
            values = NearestMap((r1 - r0, c1 - c0), None, shift).take(window, np.nan)
            out[r0:r1, c0:c1][hit] = values[hit]
    return out


def _mean_block(
    probabilities: list[np.ndarray],
    placements: list[Placement],
    block: TargetGrid,
    labels: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-probability class composite of a block, one scene in memory at a time."""
    scenes = (
        expand(p.pick(block).take(prob, np.nan), p.cover, block.shape, np.nan)
        for prob, p in zip(probabilities, placements, strict=True)
    )
    return mean_classes(scenes, labels)


def _continuous_block(
    values: list[np.ndarray],
    sigmas: list[np.ndarray],
    placements: list[Placement],
    block: TargetGrid,
    policy: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Continuous composite of a block (values and uncertainties resampled bilinearly)."""
    vals = np.stack([p.bilinear(block, v) for p, v in zip(placements, values, strict=True)])
    sig = np.stack([p.bilinear(block, s) for p, s in zip(placements, sigmas, strict=True)])
    return composite_continuous(vals, sig, policy=policy)


# --- the graph ---------------------------------------------------------------------------------


def _variables(src: PredictionSource, policy: str) -> list[da.Array]:
    """The store's (y, x) or (label, y, x) dask arrays a policy reads, in the tasks' order."""
    ds = src.data
    main = ds[src.main].data
    if src.kind == "class":
        if policy == "mean":
            probs = ds["probabilities"].transpose("label", "y", "x").data.astype(np.float32)
            return [probs.rechunk({0: -1})]  # all labels in each chunk
        # float32 given explicitly: full_like would take the class layer's uint8 (NaN → 0)
        conf = (
            ds["confidence"].data
            if "confidence" in ds
            else da.full_like(main, np.nan, dtype=np.float32)
        )
        return [main, conf.astype(np.float32)]
    sigma = (
        ds["uncertainty"].data
        if "uncertainty" in ds
        else da.full_like(main, np.nan, dtype=np.float32)
    )
    return [main.astype(np.float32), sigma.astype(np.float32)]


def _aligned(src: TargetGrid, dst: TargetGrid) -> bool:
    """Same CRS and pixel size, whole-pixel offset: pixels map one to one."""
    if src.crs != dst.crs or src.resolution != dst.resolution:
        return False
    col, row = ~src.transform @ (dst.transform.c, dst.transform.f)
    return abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6


def placements(
    sources: Sequence[PredictionSource], grid: TargetGrid, sub: TargetGrid
) -> list[tuple[int, Placement]]:
    """(source number, placement) of each store overlapping the block ``sub``."""
    dst_wkt = grid.crs.to_wkt()
    out = []
    for i, src in enumerate(sources):
        cover = sub.window_covering(src.grid, margin=1)
        if cover is None:
            continue
        covered = sub.window((cover[0], cover[1]), (cover[2], cover[3]))
        margin = 0 if _aligned(src.grid, grid) else (1 if src.kind == "class" else 2)
        window = src.grid.window_covering(covered, margin=margin)
        if window is None:
            continue  # this store is not read for this block
        same = src.grid.crs == grid.crs
        src_wkt = src.grid.crs.to_wkt()
        placement = Placement(
            src_wkt, dst_wkt, same, src.grid.transform, src.grid.shape, window, cover
        )
        out.append((i, placement))
    return out


@dataclass(frozen=True)
class _Parts:
    """How to assemble one window of one array from the chunks it overlaps."""

    shape: tuple[int, ...]
    dtype: Any
    slices: tuple[tuple[tuple[slice, ...], tuple[slice, ...]], ...]  # (in chunk, in window)


def _parts(arr: da.Array, window: PixelWindow) -> tuple[list[Any], _Parts]:
    """The chunk keys of ``arr`` overlapping ``window`` and how to assemble the window."""
    r0, r1, c0, c1 = window
    y_edges = np.cumsum((0, *arr.chunks[-2]))
    x_edges = np.cumsum((0, *arr.chunks[-1]))
    lead = tuple(0 for _ in arr.shape[:-2])  # leading dimensions are in one chunk
    keys, slices = [], []
    for i in range(int(np.searchsorted(y_edges, r0, "right")) - 1, len(y_edges) - 1):
        if y_edges[i] >= r1:
            break
        for j in range(int(np.searchsorted(x_edges, c0, "right")) - 1, len(x_edges) - 1):
            if x_edges[j] >= c1:
                break
            ya, yb = max(r0, y_edges[i]), min(r1, y_edges[i + 1])
            xa, xb = max(c0, x_edges[j]), min(c1, x_edges[j + 1])
            keys.append((arr.name, *lead, i, j))
            in_chunk = (
                slice(ya - y_edges[i], yb - y_edges[i]),
                slice(xa - x_edges[j], xb - x_edges[j]),
            )
            in_window = (slice(ya - r0, yb - r0), slice(xa - c0, xb - c0))
            slices.append((in_chunk, in_window))
    shape = (*arr.shape[:-2], r1 - r0, c1 - c0)
    return keys, _Parts(shape, arr.dtype, tuple(slices))


def _assemble(chunks: list[np.ndarray], parts: _Parts) -> np.ndarray:
    """One window from the chunks it overlaps (a view when it lies in one chunk)."""
    if len(chunks) == 1:
        only: tuple[Any, ...] = (Ellipsis, *parts.slices[0][0])
        return chunks[0][only]
    out = np.empty(parts.shape, dtype=parts.dtype)
    for chunk, (in_chunk, in_window) in zip(chunks, parts.slices, strict=True):
        src: tuple[Any, ...] = (Ellipsis, *in_chunk)
        dst: tuple[Any, ...] = (Ellipsis, *in_window)
        out[dst] = chunk[src]
    return out


@dataclass(frozen=True)
class _Block:
    """Everything a block task knows besides the chunks it is handed."""

    grid: TargetGrid
    placements: tuple[Placement, ...]
    parts: tuple[tuple[_Parts, ...], ...]  # per placement, per variable
    policy: str
    labels: tuple[int, ...]

    def windows(self, chunks: list[list[list[np.ndarray]]], var: int) -> list[np.ndarray]:
        return [_assemble(c[var], p[var]) for c, p in zip(chunks, self.parts, strict=True)]


def _run_class(block: _Block, chunks: list[list[list[np.ndarray]]]) -> Any:
    conf = block.windows(chunks, 1) if block.policy == "best-confidence" else None
    return _class_block(
        block.windows(chunks, 0), conf, list(block.placements), block.grid, block.policy
    )


def _run_winner(block: _Block, won: Any, chunks: list[list[list[np.ndarray]]]) -> np.ndarray:
    return _winner_values(won, block.windows(chunks, 1), list(block.placements), block.grid)


def _run_mean(block: _Block, chunks: list[list[list[np.ndarray]]]) -> Any:
    return _mean_block(
        block.windows(chunks, 0), list(block.placements), block.grid, list(block.labels)
    )


def _run_continuous(block: _Block, chunks: list[list[list[np.ndarray]]]) -> Any:
    return _continuous_block(
        block.windows(chunks, 0),
        block.windows(chunks, 1),
        list(block.placements),
        block.grid,
        block.policy,
    )


def composite_arrays(
    sources: Sequence[PredictionSource], grid: TargetGrid, *, policy: str, block: int
) -> tuple[da.Array, da.Array]:
    """The lazy main and second layers (e.g. class and confidence), chunked (block, block).

    The graph is written by hand: one task per block that takes the source chunks its windows
    overlap (so a chunk shared by blocks is read once). Class maps composited with ``latest``
    or ``best-confidence`` get a second task per block that takes the confidence from the
    winning scene's window; with ``latest`` the first task reads no confidence, so computing
    the class layer alone never reads a confidence chunk.
    """
    kind = sources[0].kind
    labels = tuple(sources[0].labels)
    main_dtype = np.dtype(np.uint8 if kind == "class" else np.float32)
    main_fill = 0 if kind == "class" else np.nan
    arrays = [_variables(s, policy) for s in sources]
    token = tokenize(
        [a.name for v in arrays for a in v],
        grid.transform,
        grid.shape,
        grid.crs.to_wkt(),
        policy,
        block,
    )
    name_main, name_second, name_task = (f"mosaic-{n}-{token}" for n in ("main", "second", "task"))
    tasks: dict[Any, Any] = {}
    main_layer: dict[Any, Any] = {}
    second_layer: dict[Any, Any] = {}
    two_stage = kind == "class" and policy != "mean"
    for (r0, r1), (c0, c1) in grid.blocks(block):
        bi, bj = r0 // block, c0 // block
        sub = grid.window((r0, r1), (c0, c1))
        placed = placements(sources, grid, sub)
        if not placed:
            main_layer[(name_main, bi, bj)] = (np.full, sub.shape, main_fill, main_dtype)
            second_layer[(name_second, bi, bj)] = (np.full, sub.shape, np.nan, np.float32)
            continue
        keys, parts = [], []
        for i, p in placed:
            per_var = [_parts(a, p.window) for a in arrays[i]]
            keys.append([k for k, _ in per_var])
            parts.append(tuple(pp for _, pp in per_var))
        spec = _Block(sub, tuple(p for _, p in placed), tuple(parts), policy, labels)
        main_keys = [[k[0]] for k in keys]
        task = (name_task, bi, bj)
        second_key = (name_second, bi, bj)
        if two_stage:
            first = keys if policy == "best-confidence" else [[k[0], []] for k in keys]
            tasks[task] = (_run_class, spec, first)
            second_layer[second_key] = (_run_winner, spec, task, [[[], k[1]] for k in keys])
        else:
            run = _run_mean if kind == "class" else _run_continuous
            tasks[task] = (run, spec, main_keys if kind == "class" else keys)
            second_layer[second_key] = (operator.getitem, task, 1)
        main_layer[(name_main, bi, bj)] = (operator.getitem, task, 0)
    # The arrays the block tasks read: latest class maps read only the class layers.
    reads_second = not two_stage or policy == "best-confidence"
    inputs: list[Any] = [a for v in arrays for a in (v if reads_second else v[:1])]
    if not tasks:  # the grid overlaps no input: nothing to read
        inputs = []
    sources_graph = HighLevelGraph.from_collections(name_task, tasks, dependencies=inputs)
    chunks = (
        tuple(min(block, grid.height - r) for r in range(0, grid.height, block)),
        tuple(min(block, grid.width - c) for c in range(0, grid.width, block)),
    )
    # The confidence tasks of two-stage class maps read the second variable's chunks directly.
    second_inputs: list[Any] = [a for v in arrays for a in v[1:]] if two_stage and tasks else []
    layers = dict(sources_graph.layers)
    dependencies = dict(sources_graph.dependencies)
    for a in second_inputs:
        g = a.__dask_graph__()
        layers.update(g.layers)
        dependencies.update(g.dependencies)
    second_deps = {n for a in second_inputs for n in a.__dask_layers__()}
    on_tasks = {name_task} if tasks else set()
    out = []
    for name, layer, deps, dtype in (
        (name_main, main_layer, on_tasks, main_dtype),
        (name_second, second_layer, on_tasks | second_deps, np.dtype(np.float32)),
    ):
        graph = HighLevelGraph(
            {**layers, name: MaterializedLayer(layer)}, {**dependencies, name: deps}
        )
        out.append(da.Array(graph, name, chunks, dtype=dtype))
    return out[0], out[1]
