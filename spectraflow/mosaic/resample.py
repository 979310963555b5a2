"""Resampling one raster onto another grid, block by block (pure: numpy and a point transform).

Coordinates: :func:`source_pixel_coords` and :func:`source_pixel_index` transform exactly
(PROJ, through the ``to_src`` point transform) on a lattice of pixel centres every ``step``
pixels and interpolate bilinearly in between. The interpolation error is measured halfway
between lattice nodes along each axis: conformal maps (UTM, Mercator) are harmonic, so their
error vanishes at cell centres and peaks on cell edges, and for a smooth map the error anywhere
in a cell is at most the sum of the two. Pixels closer to a source pixel edge than twice that
bound (plus float32 round-off) are transformed exactly, so nearest-neighbour picks are those of
the exact transform everywhere; a lattice too coarse for the map (error above 0.05 px) falls
back to exact transforms for every pixel. Exact picks are what
make the composite independent of how it is cut into blocks, and equal to ``gdalwarp -et 0``'s.
``rasterio.warp.reproject`` instead approximates the transform within a fixed 0.125 px (only a
``WarpedVRT`` takes another ``tolerance``), as ``gdalwarp`` does by default, over the chunks it
warps, so its picks depend on those chunks: on two UTM zones 0.3 % of pixels differ from the
exact transform's.

Sampling: :class:`NearestMap` takes a window's values for every covered pixel (a plain shifted
slice when the grids share their pixels), :func:`bilinear` interpolates with no-data
renormalisation like GDAL's bilinear kernel but keeps no data where the nearest source pixel
has none, and :func:`expand` places a covered part in its block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from affine import Affine

from spectraflow.mosaic.grid import PixelWindow, TargetGrid

__all__ = [
    "COORD_STEP",
    "NearestMap",
    "PointTransform",
    "bilinear",
    "expand",
    "source_pixel_coords",
    "source_pixel_index",
]

PointTransform: TypeAlias = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
"""``(x, y) -> (x', y')`` between two CRSs, vectorised (e.g. ``pyproj.Transformer.transform``)."""

COORD_STEP = 32
"""Lattice step (pixels) of the exact transforms that are interpolated."""

_MAX_INTERP_ERROR = 0.05  # pixels: beyond this the lattice is too coarse, transform every pixel
_MIN_TIE = 1e-7  # pixels: the smallest tolerance around pixel edges (PROJ round-off)


def _lattice(n: int, step: int) -> np.ndarray:
    """Pixel indices every ``step`` pixels, the last pixel included."""
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _exact(
    grid: TargetGrid, inv: Affine, to_src: PointTransform, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel (col, row) of ``grid``'s pixel centres (``rows`` × ``cols``, broadcast)."""
    t = grid.transform
    x, y = np.broadcast_arrays(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    sx, sy = to_src(x.ravel(), y.ravel())
    sx = np.asarray(sx, dtype=np.float64).reshape(x.shape)
    sy = np.asarray(sy, dtype=np.float64).reshape(x.shape)
    c, r = inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f
    bad = ~(np.isfinite(c) & np.isfinite(r))  # outside the CRS's domain
    return np.where(bad, np.nan, c), np.where(bad, np.nan, r)


def _halfway(g: np.ndarray, axis: int) -> np.ndarray:
    return (g[:-1] + g[1:]) / 2 if axis == 0 else (g[:, :-1] + g[:, 1:]) / 2


@dataclass(frozen=True)
class _Lattice:
    """Exact source coordinates (``c``, ``r``) at lattice nodes and the interpolation error."""

    rows: np.ndarray
    cols: np.ndarray
    c: np.ndarray
    r: np.ndarray
    error: float

    @classmethod
    def plan(
        cls, grid: TargetGrid, inv: Affine, to_src: PointTransform, step: int
    ) -> _Lattice | None:
        """The lattice, or None where interpolating would not pay off or not be accurate."""
        li, lj = _lattice(grid.height, step), _lattice(grid.width, step)
        if len(li) < 2 or len(lj) < 2 or len(li) * len(lj) * 3 >= grid.height * grid.width:
            return None
        lif, ljf = li.astype(np.float64), lj.astype(np.float64)
        gc, gr = _exact(grid, inv, to_src, lif[:, None], ljf[None, :])
        error = 0.0
        for axis, at in (
            (0, (_halfway(lif, 0)[:, None], ljf[None, :])),
            (1, (lif[:, None], _halfway(ljf, 0)[None, :])),
        ):
            ec, er = _exact(grid, inv, to_src, *at)
            with np.errstate(invalid="ignore"):
                error += max(
                    float(np.max(np.abs(ec - _halfway(gc, axis)))),
                    float(np.max(np.abs(er - _halfway(gr, axis)))),
                )
        if not math.isfinite(error) or error > _MAX_INTERP_ERROR:
            return None
        return cls(li, lj, gc, gr, error)

    def weights(self, n: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower lattice node and weight of the upper one for each of ``n`` pixels."""
        nodes = self.rows if axis == 0 else self.cols
        k = np.clip(np.searchsorted(nodes, np.arange(n), side="right") - 1, 0, len(nodes) - 2)
        return k, (np.arange(n) - nodes[k]) / (nodes[k + 1] - nodes[k])

    def along_columns(self, values: np.ndarray, width: int, dtype: Any) -> np.ndarray:
        """``values`` (lattice rows × lattice columns) interpolated to every column."""
        k, f = self.weights(width, 1)
        return (values[:, k] * (1 - f) + values[:, k + 1] * f).astype(dtype)


def source_pixel_coords(
    grid: TargetGrid,
    src_transform: Affine,
    *,
    to_src: PointTransform | None = None,
    step: int = COORD_STEP,
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional source pixel coordinates ``(col, row)`` of every pixel centre of ``grid``.

    Interpolated between exact transforms (see the section comment above), exact near pixel
    edges. For bilinear resampling; nearest neighbour uses :func:`source_pixel_index`.

    Parameters
    ----------
    grid
        The destination grid (e.g. one block of a mosaic).
    src_transform
        Affine transform of the source pixels (pixel corners).
    to_src
        Vectorised transform from ``grid``'s CRS to the source's (``always_xy``); None when
        they are the same CRS (the mapping is then affine, computed directly).
    step
        Lattice step in pixels.

    Returns
    -------
    (cols, rows)
        float64 arrays of ``grid.shape``; NaN where the transform fails.
    """
    inv = ~src_transform
    ri = np.arange(grid.height, dtype=np.float64)[:, None]
    ci = np.arange(grid.width, dtype=np.float64)[None, :]
    if to_src is None:
        m = inv @ grid.transform
        cols = m.a * (ci + 0.5) + m.b * (ri + 0.5) + m.c
        rows = m.d * (ci + 0.5) + m.e * (ri + 0.5) + m.f
        return np.broadcast_to(cols, grid.shape).copy(), np.broadcast_to(rows, grid.shape).copy()
    lat = _Lattice.plan(grid, inv, to_src, step)
    if lat is None:
        return _exact(grid, inv, to_src, ri, ci)
    k, f = lat.weights(grid.height, 0)
    out = []
    for values in (lat.c, lat.r):
        across = lat.along_columns(values, grid.width, np.float64)
        full = across[k] * (1 - f)[:, None]
        full += across[k + 1] * f[:, None]
        out.append(full)
    cols, rows = out
    tie = max(2.0 * lat.error, _MIN_TIE)
    near = _near_edge(cols, tie) | _near_edge(rows, tie)
    if near.any():
        r, c = np.nonzero(near)
        cols[r, c], rows[r, c] = _exact(grid, inv, to_src, r.astype(float), c.astype(float))
    return cols, rows


def _near_edge(v: np.ndarray, tie: float) -> np.ndarray:
    """Where ``v`` is within ``tie`` of a whole number (a pixel edge)."""
    with np.errstate(invalid="ignore"):
        frac = v - np.floor(v)
        return (frac < tie) | (frac > 1.0 - tie)


def _bands(nodes: np.ndarray, n: int) -> list[tuple[int, int, slice, np.ndarray]]:
    """Row bands of a few lattice cells of one height each.

    Each band is (first row, end row, its cells, the weight of each cell's upper node for
    the rows of a cell, shaped (1, rows per cell, 1)).
    """
    step = int(nodes[1] - nodes[0])
    last = len(nodes) - 2  # the last cell ends at the last row, inclusive
    uniform = [c for c in range(last) if nodes[c + 1] - nodes[c] == step]
    out = []
    per_band = max(1, 64 // max(step, 1))  # ~64 rows per band
    for g in range(0, len(uniform), per_band):
        cells = slice(uniform[g], uniform[min(g + per_band, len(uniform)) - 1] + 1)
        t = (np.arange(step, dtype=np.float32) / np.float32(step))[None, :, None]
        a = int(nodes[cells.start])
        out.append((a, a + step * (cells.stop - cells.start), cells, t))
    a, span = int(nodes[last]), float(nodes[last + 1] - nodes[last])
    t = (np.arange(n - a, dtype=np.float32) / np.float32(span))[None, :, None]
    out.append((a, n, slice(last, last + 1), t))
    return out


def source_pixel_index(
    grid: TargetGrid,
    src_transform: Affine,
    src_shape: tuple[int, int],
    *,
    to_src: PointTransform | None = None,
    step: int = COORD_STEP,
) -> np.ndarray:
    """Flat index of the source pixel containing each pixel centre of ``grid`` (nearest).

    The pick of the exact transform (see the section comment above): float32 interpolation
    row band by row band (cache-sized), exact transforms for the pixels near a source pixel
    edge.

    Parameters
    ----------
    grid
        The destination grid.
    src_transform, src_shape
        The source raster's transform (pixel corners) and ``(rows, cols)``: a window's,
        since coordinates are interpolated in float32 (its round-off grows with the size).
    to_src
        Vectorised transform from ``grid``'s CRS to the source's; None for the same CRS.
    step
        Lattice step in pixels.

    Returns
    -------
    numpy.ndarray
        int32 ``row * cols + col`` of ``grid.shape``, -1 where the centre is outside the source
        (sources up to 2**31 pixels).
    """
    h, w = src_shape
    inv = ~src_transform
    lat = None if to_src is None else _Lattice.plan(grid, inv, to_src, step)
    m = inv @ grid.transform
    if to_src is None and m.b == 0 and m.d == 0:  # north-up, one CRS: rows and columns apart
        cols = np.floor(m.a * (np.arange(grid.width) + 0.5) + m.c)
        rows = np.floor(m.e * (np.arange(grid.height) + 0.5) + m.f)
        ci = np.where((cols >= 0) & (cols < w), cols, -1).astype(np.int32)
        ri = np.where((rows >= 0) & (rows < h), rows, -1).astype(np.int32)
        flat = ri[:, None] * np.int32(w) + ci[None, :]
        flat[(ri < 0)[:, None] | (ci < 0)[None, :]] = -1
        return flat
    if to_src is None or lat is None:
        cols, rows = source_pixel_coords(grid, src_transform, to_src=to_src, step=step)
        return _flat(cols, rows, h, w)
    # float32 round-off of coordinates up to the window's size, a few operations deep
    tie = 2.0 * lat.error + 8.0 * float(np.spacing(np.float32(max(h, w, 1))))
    width = grid.width
    base = [lat.along_columns(v, width, np.float32) for v in (lat.r, lat.c)]
    steps = [np.diff(v, axis=0) for v in base]
    out = np.empty(grid.shape, dtype=np.int32)
    bands = _bands(lat.rows, grid.height)
    # Buffers reused band after band: fresh arrays of this size would each be mapped and
    # page-faulted by the allocator, which costs more than the arithmetic.
    most = max(b - a for a, b, _, _ in bands)
    frac, whole = np.empty((most, width), np.float32), np.empty((most, width), np.float32)
    index = [np.empty((most, width), np.int32) for _ in range(2)]
    flag, flag2, near = (np.empty((most, width), bool) for _ in range(3))
    near_rows, near_cols = [np.empty(0, np.intp)], [np.empty(0, np.intp)]
    for a, b, cells, t in bands:
        n = b - a
        near[:n] = False
        for b0, db, dest in zip(base, steps, index, strict=True):
            v = frac[:n]
            np.multiply(t, db[cells][:, None, :], out=v.reshape(-1, t.shape[1], width))
            v.reshape(-1, t.shape[1], width)[...] += b0[cells][:, None, :]
            np.floor(v, out=whole[:n])
            v -= whole[:n]  # the fraction
            v -= 0.5
            np.abs(v, out=v)
            np.greater(v, 0.5 - tie, out=flag[:n])
            near[:n] |= flag[:n]
            dest[:n] = whole[:n]
        rows_i, cols_i = index[0][:n], index[1][:n]
        np.greater_equal(rows_i.view(np.uint32), h, out=flag[:n])  # negatives wrap around
        np.greater_equal(cols_i.view(np.uint32), w, out=flag2[:n])
        flag[:n] |= flag2[:n]
        o = out[a:b]
        np.multiply(rows_i, w, out=o)
        o += cols_i
        o[flag[:n]] = -1
        if near[:n].any():
            r, c = np.nonzero(near[:n])
            near_rows.append(r + a)
            near_cols.append(c)
    r_near, c_near = np.concatenate(near_rows), np.concatenate(near_cols)
    if len(r_near):
        ec, er = _exact(grid, inv, to_src, r_near.astype(float), c_near.astype(float))
        out[r_near, c_near] = _flat(ec, er, h, w)
    return out


def _flat(cols: np.ndarray, rows: np.ndarray, h: int, w: int) -> np.ndarray:
    """int32 flat index of the pixels containing coordinates ``cols, rows``; -1 outside."""
    with np.errstate(invalid="ignore"):
        ci, rj = np.floor(cols), np.floor(rows)
        ok = (rj >= 0) & (rj < h) & (ci >= 0) & (ci < w)
    return np.where(ok, rj * w + ci, -1).astype(np.int32)


@dataclass(frozen=True)
class NearestMap:
    """A window's nearest-neighbour mapping onto the ``shape`` pixels it covers.

    Either ``shift`` (pixels map one to one: covered pixel ``(i, j)`` takes window pixel
    ``(i + dr, j + dc)``) or ``flat``, the flat window index per covered pixel (-1 where none,
    from :func:`source_pixel_index`).
    """

    shape: tuple[int, int]
    flat: np.ndarray | None
    shift: tuple[int, int] | None

    def take(self, window: np.ndarray, fill: Any) -> np.ndarray:
        """The window's values on the covered pixels, ``fill`` where it has none."""
        if self.flat is not None:
            lead = window.shape[:-2]
            # One more pixel holding ``fill``: index -1 wraps around to it.
            padded = np.empty((*lead, window.shape[-2] * window.shape[-1] + 1), window.dtype)
            padded[..., :-1] = window.reshape(*lead, -1)
            padded[..., -1] = fill
            return np.take(padded, self.flat, axis=-1, mode="wrap")
        if self.shift is None:
            raise ValueError("a NearestMap needs a flat index map or a shift")
        spans = [
            (max(0, -d), min(n, size - d), d)
            for n, size, d in zip(self.shape, window.shape[-2:], self.shift, strict=True)
        ]
        (a0, a1, dr), (b0, b1, dc) = spans
        part = window[..., a0 + dr : a1 + dr, b0 + dc : b1 + dc]
        if (a0, a1, b0, b1) == (0, self.shape[0], 0, self.shape[1]):
            return part
        out = np.full((*window.shape[:-2], *self.shape), fill, dtype=window.dtype)
        out[..., a0:a1, b0:b1] = part
        return out


def expand(part: np.ndarray, cover: PixelWindow, shape: tuple[int, int], fill: Any) -> np.ndarray:
    """``part`` (the covered window) placed in a block of ``shape`` filled with ``fill``."""
    if part.shape[-2:] == shape:
        return part
    out = np.full((*part.shape[:-2], *shape), fill, dtype=part.dtype)
    out[..., cover[0] : cover[1], cover[2] : cover[3]] = part
    return out


def bilinear(
    window: np.ndarray, cols: np.ndarray, rows: np.ndarray, inside: np.ndarray
) -> np.ndarray:
    """``window`` (rows, cols) interpolated at fractional window coordinates ``cols, rows``.

    Weights are between pixel centres. Neighbours without data (NaN, or outside the window)
    are left out and the weights of the others renormalised, as GDAL's bilinear kernel does.
    The result is NaN where the pixel containing the point (the nearest-neighbour pick) has
    no data or ``inside`` (the point lies in the source) is false: no data follows the
    source's valid pixels exactly as with nearest neighbour, instead of values spreading up
    to a pixel into it (GDAL's kernel).
    """
    h, w = window.shape
    with np.errstate(invalid="ignore"):
        ni, nj = np.floor(rows), np.floor(cols)
        ok = inside & (ni >= 0) & (ni < h) & (nj >= 0) & (nj < w)
    nearest = window[np.where(ok, ni, 0).astype(np.intp), np.where(ok, nj, 0).astype(np.intp)]
    valid = ok & np.isfinite(nearest)
    u, v = cols - 0.5, rows - 0.5
    with np.errstate(invalid="ignore"):
        j0, i0 = np.floor(u), np.floor(v)
        fx, fy = u - j0, v - i0
    total = np.zeros(u.shape)
    weight = np.zeros(u.shape)
    for di, dj in ((0, 0), (0, 1), (1, 0), (1, 1)):
        ii, jj = i0 + di, j0 + dj
        with np.errstate(invalid="ignore"):
            ok = valid & (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        vals = window[np.where(ok, ii, 0).astype(np.intp), np.where(ok, jj, 0).astype(np.intp)]
        ok &= np.isfinite(vals)
        wt = np.where(ok, (fy if di else 1 - fy) * (fx if dj else 1 - fx), 0.0)
        total += np.where(ok, vals, 0.0) * wt
        weight += wt
    # The nearest pixel is one of the four neighbours, with a weight of at least 1/4.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, total / weight, np.nan).astype(np.float32)
