"""Chunk, shard and codec layout of cube variables (pure).

A cube variable is a raster on one *grid* — a pair of spatial dimensions such as ``("y", "x")``,
EMIT's sensor grid ``("line", "sample")`` or its ortho grid ``("ortho_y", "ortho_x")`` — with
optional leading non-spatial dimensions (``band``). The layout is chosen per grid, once, from the
grid's shape and the heaviest variable on it (bytes per pixel over all non-spatial dimensions):

Chunks (the unit a reader decodes)
    All bands in one chunk: every model reads whole spectra, and a tile read then decodes only
    the chunks its window covers. The spatial edge is the largest of 256, 128, 64 pixels whose
    uncompressed chunk stays within ``max_chunk_bytes`` (32 MiB): 128 × 128 for EMIT (285 bands,
    18.7 MB as float32) and EnMAP (224 bands, 14.7 MB), 256 × 256 for Sentinel-2 (12 bands,
    3.1 MB). Light variables (``valid``, quality layers) whose whole shard fits within the chunk
    budget are stored as one chunk per shard: a 256 × 256 bool mask is 64 KiB, splitting it
    would only add index entries and codec calls.

Shards (the unit a writer owns and a store holds as one object)
    Square blocks of k × k chunks, k a power of two, the largest with an uncompressed shard
    within ``max_shard_bytes`` (96 MiB) and an edge of at most 1024 pixels: 256 × 256 for EMIT
    (75 MB float32) and EnMAP (59 MB), 1024 × 1024 for Sentinel-2 (51 MB). A shard is what one
    write task holds in memory (about three copies: source block, encoded block, compressed
    bytes), so this bounds a writer's memory whatever the scene size, keeps the object count of
    a scene in the tens to hundreds, and equals or is a multiple of the readers' default dask
    chunks (256 pixels), so the write needs no rechunking. A 256 × 256 × all-bands tile aligned
    to the shard grid is one shard object and four chunk decodes for EMIT/EnMAP.

Edges are cut to the array: a grid smaller than a chunk gets one chunk of its size, and the
shard edge never exceeds the array edge rounded up to whole chunks.

Codec
    Blosc with zstd (level 3) and byte shuffle for multi-byte types: on a simulated EMIT block
    (285 × 128 × 128) it compresses float32 reflectance 1.51× (int16: 1.91×) and decodes at
    ~850 MB/s, against 1.30× (1.47×) and ~400 MB/s for plain zstd level 3. One-byte types
    (bool, uint8) are not shuffled.

Measured on full-size scenes by ``bench/bench_ingest.py`` (docs/benchmarks.md): 256 × 256 ×
all-bands tile reads at random positions take 0.15–0.18 s with 128-px and 64-px chunks, and
0.32–0.39 s with 256-px chunks; 512-px shards read like 256-px ones but double a writer's memory.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from zarr.codecs import BloscCodec, BloscShuffle

from spectraflow.errors import ConfigError

__all__ = [
    "CHUNK_EDGES",
    "MAX_CHUNK_BYTES",
    "MAX_SHARD_BYTES",
    "MAX_SHARD_EDGE",
    "SPATIAL_DIMS",
    "GridLayout",
    "Shape2d",
    "codec_name",
    "compressors_for",
    "plan_grid",
    "spatial_dims_of",
    "variable_layout",
]

Shape2d: TypeAlias = tuple[int, int]
"""``(rows, columns)``: sizes along a grid's two spatial dimensions, in pixels."""

SPATIAL_DIMS: tuple[tuple[str, str], ...] = (
    ("y", "x"),
    ("line", "sample"),
    ("ortho_y", "ortho_x"),
)
"""Known grids as (row dimension, column dimension): map grid, EMIT sensor grid, EMIT ortho grid."""

CHUNK_EDGES: tuple[int, ...] = (256, 128, 64)
"""Spatial chunk edges tried, largest first (pixels)."""

MAX_CHUNK_BYTES = 32 * 2**20
"""Upper bound of one uncompressed chunk (bytes)."""

MAX_SHARD_BYTES = 96 * 2**20
"""Upper bound of one uncompressed shard, i.e. of what a write task holds (bytes)."""

MAX_SHARD_EDGE = 1024
"""Upper bound of a shard's spatial edge (pixels), so that a scene still splits into many tasks."""

_ZSTD_LEVEL = 3


@dataclass(frozen=True)
class GridLayout:
    """Spatial chunk and shard shape of one grid.

    Parameters
    ----------
    dims
        The grid's (row, column) dimension names, e.g. ``("y", "x")``.
    shape
        The grid's size in pixels, (rows, columns).
    chunk
        Spatial chunk shape (rows, columns) of heavy variables.
    shard
        Spatial shard shape (rows, columns); a multiple of ``chunk`` along each axis.
    """

    dims: tuple[str, str]
    shape: Shape2d
    chunk: Shape2d
    shard: Shape2d

    @property
    def n_shards(self) -> Shape2d:
        """Number of shards along (rows, columns)."""
        return (-(-self.shape[0] // self.shard[0]), -(-self.shape[1] // self.shard[1]))

    def shard_window(self, row: int, col: int) -> tuple[slice, slice]:
        """Pixel window (rows, columns) of shard ``(row, col)``, cut to the grid."""
        r0, c0 = row * self.shard[0], col * self.shard[1]
        return (
            slice(r0, min(r0 + self.shard[0], self.shape[0])),
            slice(c0, min(c0 + self.shard[1], self.shape[1])),
        )

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-friendly form, recorded in the cube's write parameters."""
        return {"shape": list(self.shape), "chunk": list(self.chunk), "shard": list(self.shard)}


def spatial_dims_of(dims: Sequence[Hashable]) -> tuple[str, str] | None:
    """The known grid whose two dimensions a variable has, or None.

    Parameters
    ----------
    dims
        A variable's dimension names.
    """
    present = set(dims)
    for pair in SPATIAL_DIMS:
        if pair[0] in present and pair[1] in present:
            return pair
    return None


def _axis(extent: int, chunk: int, k: int) -> tuple[int, int]:
    """Chunk and shard edge along one axis of ``extent`` pixels."""
    c = max(1, min(chunk, extent))
    whole = -(-extent // c) * c  # extent rounded up to whole chunks
    return c, min(k * c, whole)


def plan_grid(
    dims: tuple[str, str],
    shape: Shape2d,
    bytes_per_pixel: int,
    *,
    chunk: int | None = None,
    shard: int | None = None,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    max_shard_edge: int = MAX_SHARD_EDGE,
) -> GridLayout:
    """Choose the spatial chunk and shard shape of a grid (rules in the module docstring).

    Parameters
    ----------
    dims
        The grid's (row, column) dimension names.
    shape
        The grid's size (rows, columns) in pixels.
    bytes_per_pixel
        Stored bytes of the heaviest variable at one pixel, over all its non-spatial
        dimensions (e.g. 285 bands × 4 bytes for EMIT float32 reflectance).
    chunk, shard
        Spatial edges (pixels) to use instead of the rules; ``shard`` must be a multiple of the
        chunk edge.
    max_chunk_bytes, max_shard_bytes, max_shard_edge
        Bounds of the rules.

    Returns
    -------
    GridLayout

    Raises
    ------
    ConfigError
        If an edge is not positive or ``shard`` is not a multiple of ``chunk``.
    """
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise ConfigError(f"grid {dims} is empty: shape {shape}", where="shape")
    bpp = max(1, int(bytes_per_pixel))
    if chunk is None:
        # With a given shard edge, only chunk edges that divide it are candidates.
        fits = [c for c in CHUNK_EDGES if shard is None or (shard > 0 and shard % c == 0)]
        chunk = next((c for c in fits if c * c * bpp <= max_chunk_bytes), None)
        if chunk is None:
            chunk = fits[-1] if fits else (shard if shard and shard > 0 else CHUNK_EDGES[-1])
    elif chunk < 1:
        raise ConfigError(f"chunk edge must be positive, got {chunk}", where="chunks")
    if shard is None:
        k = 1
        while (2 * k * chunk) ** 2 * bpp <= max_shard_bytes and 2 * k * chunk <= max_shard_edge:
            k *= 2
    elif shard < 1 or shard % chunk:
        raise ConfigError(
            f"shard edge {shard} is not a positive multiple of the chunk edge {chunk}",
            where="shards",
            fix=f"pass a shard edge such as {2 * chunk} or {4 * chunk}",
        )
    else:
        k = shard // chunk
    c_rows, s_rows = _axis(rows, chunk, k)
    c_cols, s_cols = _axis(cols, chunk, k)
    return GridLayout(dims=dims, shape=(rows, cols), chunk=(c_rows, c_cols), shard=(s_rows, s_cols))


def variable_layout(
    dims: Sequence[Hashable],
    shape: Sequence[int],
    itemsize: int,
    grid: GridLayout,
    *,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Chunk and shard shape of one variable on ``grid``.

    Non-spatial dimensions are whole in every chunk. A light variable whose whole shard fits
    within ``max_chunk_bytes`` is one chunk per shard.

    Parameters
    ----------
    dims, shape
        The variable's dimension names and sizes, in storage order.
    itemsize
        Bytes per stored element.
    grid
        The layout of the grid the variable is on.
    max_chunk_bytes
        Chunk budget that decides whether a light variable's shard is one chunk.

    Returns
    -------
    chunks, shards
        Tuples in the variable's dimension order.
    """
    row_dim, col_dim = grid.dims
    other = int(np.prod([n for d, n in zip(dims, shape, strict=True) if d not in grid.dims]))
    light = grid.shard[0] * grid.shard[1] * other * itemsize <= max_chunk_bytes
    spatial_chunk = grid.shard if light else grid.chunk
    edges: Mapping[Hashable, tuple[int, int]] = {
        row_dim: (spatial_chunk[0], grid.shard[0]),
        col_dim: (spatial_chunk[1], grid.shard[1]),
    }
    chunks = tuple(edges[d][0] if d in edges else n for d, n in zip(dims, shape, strict=True))
    shards = tuple(edges[d][1] if d in edges else n for d, n in zip(dims, shape, strict=True))
    return chunks, shards


def compressors_for(dtype: np.dtype[Any]) -> list[Any]:
    """The compressor chain of a variable stored as ``dtype``: Blosc-zstd, shuffled if wide."""
    wide = np.dtype(dtype).itemsize > 1
    shuffle = BloscShuffle.shuffle if wide else BloscShuffle.noshuffle
    return [BloscCodec(cname="zstd", clevel=_ZSTD_LEVEL, shuffle=shuffle)]


def codec_name(dtype: np.dtype[Any]) -> str:
    """Short description of :func:`compressors_for`, recorded in the cube's write parameters."""
    shuffle = "shuffle" if np.dtype(dtype).itemsize > 1 else "noshuffle"
    return f"blosc-zstd-{_ZSTD_LEVEL}-{shuffle}"
