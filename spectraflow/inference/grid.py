"""Tile grid for tiled inference (pure: numpy only, no I/O).

A scene is predicted tile by tile. Every tile has three parts, all in image pixel coordinates
(rows, columns; windows are ``(row0, row1, col0, col1)`` with exclusive ends):

core
    The pixels the tile is responsible for. Cores partition the image: every pixel lies in
    exactly one core. Core edges lie on multiples of ``align`` (the cube's chunk or shard edge,
    e.g. 128), so that reading a tile decodes few chunks.
read window
    The core expanded by ``halo`` pixels on every side (the model's context), extended at the
    bottom and right so that the tile input has the grid's input shape, then clipped to the
    image. This is what a reader fetches from the cube.
padding
    ``(top, bottom, left, right)``: the rows and columns of the expanded window that fall outside
    the image, filled by reflection (numpy ``reflect`` mode, the edge pixel not repeated) of the
    read array by :func:`reflect_pad`. Edge tiles are padded, never shifted back over the image,
    so every core sits at offset ``(halo, halo)`` of its tile input and sees the same context as
    in a whole-image run on the reflect-padded image: for a model whose output pixel sees at most
    ``halo`` pixels away, core predictions do not depend on the tiling.

Rules
-----
Core edge, per axis
    ``tile`` rounded down to a multiple of ``align``, but at least ``align`` (a tile smaller than
    one chunk would decode the whole chunk anyway), and at most the image extent (an image
    smaller than one tile is one core). Rounding down keeps a requested tile size, which is a
    memory budget, from being exceeded. The grid starts at pixel 0, so inner core edges are
    multiples of the core edge, hence of ``align``; the last core of a row or column is cut at
    the image edge and may be shorter.
Tile input shape
    ``round_up(core + 2 · halo, size_multiple)`` per axis, the same for every tile (static shapes
    batch and compile well). The extra pixels (the rounding, and the missing core rows of a short
    last core) go at the bottom and right; they are read from the image where it extends that
    far (real context beats reflection) and reflected where it does not. They only add context
    beyond the halo and are cropped away by :func:`crop_core`.
Skipping
    With a ``valid`` mask, tiles whose core holds no valid pixel are left out.

Halo and blending
-----------------
A model whose output pixel sees ``r`` pixels away (its card's receptive field) needs
``halo ≥ r`` for exact core predictions. To blend overlapping outputs
(:mod:`spectraflow.inference.blend`), a tile writes its core expanded by a margin ``m``
(:func:`crop_core` with ``margin=m``); those outer predictions are exact only where their own
context lies inside the tile input, i.e. for ``m ≤ halo − r``. Plan ``halo = r + m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from spectraflow.errors import ConfigError

__all__ = [
    "Padding",
    "Shape2d",
    "Tile",
    "TileGrid",
    "Window",
    "crop_core",
    "reflect_pad",
    "tile_grid",
]

Shape2d: TypeAlias = tuple[int, int]
"""``(rows, columns)``: a size in pixels along the two spatial axes."""

Window: TypeAlias = tuple[int, int, int, int]
"""``(row0, row1, col0, col1)`` in image pixel coordinates, ends exclusive."""

Padding: TypeAlias = tuple[int, int, int, int]
"""``(top, bottom, left, right)``: pixels added by reflection outside the image."""


@dataclass(frozen=True)
class Tile:
    """One tile of a :class:`TileGrid`.

    Attributes
    ----------
    index
        ``(row, col)`` of the tile in the grid.
    core
        Window of the pixels this tile is responsible for (inside the image).
    read
        Window to read from the image: the core plus halo and extra, clipped to the image.
    pad
        ``(top, bottom, left, right)`` reflection padding that turns the read array into the
        tile input.
    """

    index: tuple[int, int]
    core: Window
    read: Window
    pad: Padding

    @property
    def core_shape(self) -> Shape2d:
        """``(rows, cols)`` of the core."""
        r0, r1, c0, c1 = self.core
        return (r1 - r0, c1 - c0)

    @property
    def read_shape(self) -> Shape2d:
        """``(rows, cols)`` of the read window."""
        r0, r1, c0, c1 = self.read
        return (r1 - r0, c1 - c0)

    @property
    def input_shape(self) -> Shape2d:
        """``(rows, cols)`` of the padded tile input (and of the model output)."""
        top, bottom, left, right = self.pad
        rows, cols = self.read_shape
        return (rows + top + bottom, cols + left + right)

    @property
    def input_window(self) -> Window:
        """Window covered by the padded tile input; it may extend beyond the image."""
        r0, r1, c0, c1 = self.read
        top, bottom, left, right = self.pad
        return (r0 - top, r1 + bottom, c0 - left, c1 + right)

    @property
    def core_offset(self) -> tuple[int, int]:
        """``(row, col)`` of the core's first pixel within the tile input (the halo)."""
        r0, _, c0, _ = self.input_window
        return (self.core[0] - r0, self.core[2] - c0)

    @property
    def read_slices(self) -> tuple[slice, slice]:
        """The read window as slices, for ``array[..., rows, cols]``."""
        r0, r1, c0, c1 = self.read
        return (slice(r0, r1), slice(c0, c1))

    def output_window(self, *, margin: int = 0) -> Window:
        """Window of the core expanded by ``margin`` pixels; it may extend beyond the image.

        This is where the array returned by ``crop_core(output, tile, margin=margin)`` belongs.
        """
        r0, r1, c0, c1 = self.core
        return (r0 - margin, r1 + margin, c0 - margin, c1 + margin)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _positive(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"{name} must be an integer ≥ {minimum}, got {value!r}",
            where=name,
            fix=f"pass an integer {name} ≥ {minimum}",
        )
    return int(value)


def _pair(value: int | tuple[int, int], name: str) -> Shape2d:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ConfigError(
                f"{name} must be an integer or a (rows, cols) pair, got {value!r}",
                where=name,
                fix=f"pass {name} as an int or a tuple of two ints",
            )
        return (_positive(value[0], name), _positive(value[1], name))
    edge = _positive(value, name)
    return (edge, edge)


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of tiles over an image; see the module docstring for the rules.

    Build one with :meth:`TileGrid.plan` (from a requested tile size and alignment) or directly
    from a core edge.

    Attributes
    ----------
    shape
        ``(rows, cols)`` of the image.
    core
        ``(rows, cols)`` edge of a core; last cores are cut at the image edge.
    halo
        Context pixels added on every side of a core (≥ the model's receptive field).
    size_multiple
        Tile inputs' rows and columns are multiples of this (the network's requirement).
    """

    shape: Shape2d
    core: Shape2d
    halo: int
    size_multiple: int = 1

    def __post_init__(self) -> None:
        if len(self.shape) != 2:
            raise ConfigError(
                f"image shape must be (rows, cols), got {self.shape!r}",
                where="shape",
                fix="pass the two spatial sizes of the image",
            )
        for size in self.shape:
            _positive(size, "shape")
        for edge in self.core:
            _positive(edge, "tile")
        _positive(self.halo, "halo", minimum=0)
        _positive(self.size_multiple, "size_multiple")

    @classmethod
    def plan(
        cls,
        shape: Shape2d,
        *,
        tile: int,
        halo: int,
        align: int | tuple[int, int] = 1,
        size_multiple: int = 1,
    ) -> TileGrid:
        """Plan a grid whose core edges are multiples of ``align``.

        Parameters
        ----------
        shape
            ``(rows, cols)`` of the image.
        tile
            Requested core edge in pixels; rounded down to a multiple of ``align`` (at least
            ``align``, at most the image extent).
        halo
            Context pixels on every side of a core (≥ the model's receptive field).
        align
            Chunk (or shard) edge of the stored image, one int or ``(rows, cols)``.
        size_multiple
            Tile inputs' sizes are multiples of this.

        Returns
        -------
        TileGrid
        """
        if not isinstance(shape, tuple | list) or len(shape) != 2:
            raise ConfigError(
                f"image shape must be (rows, cols), got {shape!r}",
                where="shape",
                fix="pass the two spatial sizes of the image",
            )
        rows, cols = _positive(shape[0], "shape"), _positive(shape[1], "shape")
        edge = _positive(tile, "tile")
        align_rows, align_cols = _pair(align, "align")
        core = (
            min(max(align_rows, edge // align_rows * align_rows), rows),
            min(max(align_cols, edge // align_cols * align_cols), cols),
        )
        return cls((rows, cols), core, halo, size_multiple)

    @property
    def grid_shape(self) -> Shape2d:
        """``(rows, cols)`` of tiles."""
        return (-(-self.shape[0] // self.core[0]), -(-self.shape[1] // self.core[1]))

    @property
    def input_shape(self) -> Shape2d:
        """``(rows, cols)`` of every tile input: core + 2 · halo, rounded up to size_multiple."""
        return (
            _round_up(self.core[0] + 2 * self.halo, self.size_multiple),
            _round_up(self.core[1] + 2 * self.halo, self.size_multiple),
        )

    def _axis(self, index: int, axis: int) -> tuple[int, int, int, int, int, int]:
        """Core, read window and padding along one axis for tile ``index``."""
        size, edge, length = self.shape[axis], self.core[axis], self.input_shape[axis]
        core0 = index * edge
        core1 = min(core0 + edge, size)
        start = core0 - self.halo
        stop = start + length
        read0, read1 = max(start, 0), min(stop, size)
        return core0, core1, read0, read1, read0 - start, stop - read1

    def tile(self, row: int, col: int) -> Tile:
        """The tile at grid position ``(row, col)``."""
        n_rows, n_cols = self.grid_shape
        if not (0 <= row < n_rows and 0 <= col < n_cols):
            raise ConfigError(
                f"tile index ({row}, {col}) is outside the {n_rows} × {n_cols} grid",
                where="tile index",
                fix="use row < grid_shape[0] and col < grid_shape[1]",
            )
        r0, r1, rr0, rr1, top, bottom = self._axis(row, 0)
        c0, c1, rc0, rc1, left, right = self._axis(col, 1)
        return Tile(
            index=(row, col),
            core=(r0, r1, c0, c1),
            read=(rr0, rr1, rc0, rc1),
            pad=(top, bottom, left, right),
        )

    def tiles(self, *, valid: np.ndarray | None = None) -> list[Tile]:
        """All tiles in row-major order, without those whose core has no valid pixel.

        Parameters
        ----------
        valid
            Boolean mask of the image's shape (True = data); None keeps every tile.
        """
        n_rows, n_cols = self.grid_shape
        keep = np.ones((n_rows, n_cols), dtype=bool)
        if valid is not None:
            mask = np.asarray(valid)
            if mask.shape != self.shape:
                raise ConfigError(
                    f"valid mask has shape {mask.shape}, the image has {self.shape}",
                    where="valid",
                    fix="pass a boolean mask with the image's (rows, cols)",
                )
            # One pass over the mask: any() per core block via reduceat on the core starts.
            starts_r = np.arange(n_rows) * self.core[0]
            starts_c = np.arange(n_cols) * self.core[1]
            per_row = np.logical_or.reduceat(mask.astype(bool, copy=False), starts_r, axis=0)
            keep = np.logical_or.reduceat(per_row, starts_c, axis=1)
        return [self.tile(int(r), int(c)) for r, c in zip(*np.nonzero(keep), strict=True)]


def tile_grid(
    shape: Shape2d,
    *,
    tile: int,
    halo: int,
    align: int | tuple[int, int] = 1,
    valid: np.ndarray | None = None,
    size_multiple: int = 1,
) -> list[Tile]:
    """Tiles covering an image, in row-major order; see :meth:`TileGrid.plan` for parameters.

    Tiles whose core holds no pixel of ``valid`` (a boolean mask of the image's shape) are
    skipped.
    """
    grid = TileGrid.plan(shape, tile=tile, halo=halo, align=align, size_multiple=size_multiple)
    return grid.tiles(valid=valid)


def reflect_pad(array: np.ndarray, tile: Tile) -> np.ndarray:
    """Pad an array read from ``tile.read`` into the tile input, by reflection.

    Parameters
    ----------
    array
        ``(..., rows, cols)`` read from the tile's read window; leading axes (bands) untouched.
    tile
        The tile it was read for.

    Returns
    -------
    numpy.ndarray
        ``(..., *tile.input_shape)``; the array itself (no copy) when the tile needs no padding.
        Reflection does not repeat the edge pixel (numpy ``reflect``), and bounces back and
        forth where the padding is wider than the array (a tiny image).
    """
    if array.ndim < 2 or array.shape[-2:] != tile.read_shape:
        raise ConfigError(
            f"array of shape {array.shape} does not end with the read shape {tile.read_shape}",
            where="array",
            fix="read the tile's read window (tile.read) and pass it unchanged",
        )
    top, bottom, left, right = tile.pad
    if not any(tile.pad):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(array, widths, mode="reflect")


def crop_core(output: np.ndarray, tile: Tile, *, margin: int = 0) -> np.ndarray:
    """The core (expanded by ``margin``) of a model output computed on the padded tile input.

    Parameters
    ----------
    output
        ``(..., rows, cols)`` with the tile's input shape.
    tile
        The tile the output was computed for.
    margin
        Pixels kept around the core, ``0 ≤ margin ≤ halo``, for overlapping (blended) writes;
        the result belongs at ``tile.output_window(margin=margin)``.

    Returns
    -------
    numpy.ndarray
        A view ``(..., core rows + 2 · margin, core cols + 2 · margin)``.
    """
    if output.ndim < 2 or output.shape[-2:] != tile.input_shape:
        raise ConfigError(
            f"output of shape {output.shape} does not end with the input shape {tile.input_shape}",
            where="output",
            fix="pass the model output for the padded tile input (same rows and cols)",
        )
    row, col = tile.core_offset
    rows, cols = tile.core_shape
    if isinstance(margin, bool) or margin < 0 or margin > min(row, col):
        raise ConfigError(
            f"margin {margin} must be between 0 and the halo ({min(row, col)})",
            where="margin",
            fix="use a margin no wider than the grid's halo",
        )
    return output[..., row - margin : row + rows + margin, col - margin : col + cols + margin]
