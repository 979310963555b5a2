"""Blending of tile outputs into seamless maps (pure: numpy only, no I/O).

Tile outputs are merged by a weighted mean: a :class:`Blender` accumulates ``Σ w·v`` and ``Σ w``
over the image (or one block of it), and :meth:`Blender.finalise` divides. Two ways to use it:

Core-only writing
    Each tile contributes its core (``crop_core(output, tile)`` at ``tile.core``) with weight 1.
    Cores partition the image, so the result is each tile's own prediction, with no blending.
    For a model that sees at most ``halo`` pixels away, this equals whole-image inference.
Overlapping writing
    Each tile contributes its core expanded by a margin ``m ≤ halo``
    (``crop_core(output, tile, margin=m)`` at ``tile.output_window(margin=m)``), weighted by
    ``hann_window(rows, cols, halo=m)``: weight 1 on the core, a cosine taper down to ``floor``
    over the m-wide border. Across a core edge the neighbour's share rises smoothly from ≈0 to ½
    and on to ≈1 over 2m pixels, so seams from the models' edge effects fade out instead of
    showing as steps. Where one tile covers a pixel, the normalised mean returns its value
    exactly. Predictions in the margin are exact (tiling-invariant) for a model of receptive
    field ``r`` when ``m ≤ halo − r``; plan the grid's halo as ``r + m``.

Values are class probabilities or continuous values (plus confidence); the class map is
:func:`argmax_classes` of the blended probabilities, with 0 for nodata.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spectraflow.errors import ConfigError
from spectraflow.inference.grid import Shape2d, Window

__all__ = ["DEFAULT_FLOOR", "Blender", "argmax_classes", "hann_window"]

DEFAULT_FLOOR = 1e-3
"""Smallest weight of :func:`hann_window`, reached at the outermost border pixel."""


def _taper(length: int, halo: int, floor: float) -> np.ndarray:
    """1-D weights: 1 on ``[halo, length − halo)``, the cosine taper on both borders."""
    index = np.arange(length)
    # Distance (pixels) outside the core: 1 for the first border pixel, halo for the outermost.
    distance = np.maximum(np.maximum(halo - index, index - (length - 1 - halo)), 0)
    weight = floor + (1.0 - floor) * np.cos(0.5 * np.pi * distance / max(halo, 1)) ** 2
    return weight.astype(np.float32)


def hann_window(height: int, width: int, *, halo: int, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Blending weights for a tile output of ``height × width`` with ``halo``-wide borders.

    Separable: ``w(i, j) = t(i) · t(j)`` with, for a pixel ``d`` pixels outside the core
    (``d = 0`` in the core, ``1 … halo`` across the border),

    ``t(d) = floor + (1 − floor) · cos²(π/2 · d / halo)``

    i.e. 1 on the core and a half Hann window falling to ``floor`` at the outermost pixel.

    Where two tiles overlap (each core ± halo), a pixel at distance ``d`` into one tile's border
    lies in the other tile's core (weight 1), so the blend gives the bordering tile the share
    ``t(d) / (1 + t(d))``: ≈ ½ next to the core edge, ≈ 0 at the far end, symmetric about the
    edge, hence a smooth hand-over. Where only one tile covers, the normalised sum returns its
    values exactly. The ``floor`` keeps every weight strictly positive, so a pixel covered only
    by tile borders (a neighbour skipped, or windows used without a core partition) still gets a
    finite mean instead of 0 / 0; it is small enough that border predictions, the least reliable
    (their context is cut or reflected), barely count next to a core.

    Parameters
    ----------
    height, width
        Size of the tile output (core + 2 · halo per axis).
    halo
        Border width in pixels; 0 gives all ones.
    floor
        Weight at the outermost border pixel, ``0 < floor ≤ 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``(height, width)``, values in ``[floor, 1]``.
    """
    if isinstance(halo, bool) or not isinstance(halo, int | np.integer) or halo < 0:
        raise ConfigError(
            f"halo must be an integer ≥ 0, got {halo!r}", where="halo", fix="pass halo ≥ 0"
        )
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 2 * halo:
            raise ConfigError(
                f"{name} {size!r} leaves no core inside two borders of {halo} pixels",
                where=name,
                fix="pass the tile output size (core + 2 · halo) with a core of at least 1 pixel",
            )
    if not 0.0 < floor <= 1.0:
        raise ConfigError(
            f"floor must be in (0, 1], got {floor!r}",
            where="floor",
            fix="use a small positive floor such as 1e-3",
        )
    return np.outer(_taper(int(height), int(halo), floor), _taper(int(width), int(halo), floor))


class Blender:
    """Weighted accumulator of tile outputs over an image or one block of it.

    Parameters
    ----------
    channels
        Number of output channels C (classes, or values + confidence).
    shape
        ``(rows, cols)`` of the region accumulated.
    origin
        ``(row, col)`` of the region's first pixel in image coordinates; windows passed to
        :meth:`add` are in image coordinates and clipped to the region. Block-wise use
        (one blender per aligned output block) bounds memory to the block.

    Notes
    -----
    Sums are float32: a pixel receives at most four tiles' contributions (corners), so rounding
    stays at float32 precision.
    """

    def __init__(self, channels: int, shape: Shape2d, *, origin: tuple[int, int] = (0, 0)) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 1:
            raise ConfigError(
                f"channels must be an integer ≥ 1, got {channels!r}",
                where="channels",
                fix="pass the number of output channels",
            )
        if len(shape) != 2 or min(shape) < 1:
            raise ConfigError(
                f"shape must be (rows, cols) ≥ 1, got {shape!r}",
                where="shape",
                fix="pass the region's two spatial sizes",
            )
        self.channels = int(channels)
        self.shape: Shape2d = (int(shape[0]), int(shape[1]))
        self.origin = (int(origin[0]), int(origin[1]))
        self._sum = np.zeros((self.channels, *self.shape), dtype=np.float32)
        self._weight = np.zeros(self.shape, dtype=np.float32)

    @property
    def weight(self) -> np.ndarray:
        """``(rows, cols)`` sum of weights so far (read-only view)."""
        view = self._weight.view()
        view.flags.writeable = False
        return view

    def sums(self) -> np.ndarray:
        """``(C + 1, rows, cols)`` float32: Σ weight · value per channel, then Σ weight.

        Sums of blenders over adjoining or overlapping regions add up to the sums of one
        blender over their union (see :mod:`spectraflow.inference.tiled`).
        """
        return np.concatenate([self._sum, self._weight[None]])

    def _clip(self, window: Window) -> tuple[slice, slice, slice, slice] | None:
        """Destination (region) and source (values) slices of ``window`` inside the region."""
        r0, r1, c0, c1 = window
        o_r, o_c = self.origin
        dr0, dr1 = max(r0 - o_r, 0), min(r1 - o_r, self.shape[0])
        dc0, dc1 = max(c0 - o_c, 0), min(c1 - o_c, self.shape[1])
        if dr0 >= dr1 or dc0 >= dc1:
            return None
        s_r, s_c = o_r + dr0 - r0, o_c + dc0 - c0
        return (
            slice(dr0, dr1),
            slice(dc0, dc1),
            slice(s_r, s_r + dr1 - dr0),
            slice(s_c, s_c + dc1 - dc0),
        )

    def add(self, values: np.ndarray, window: Window, *, weight: np.ndarray | None = None) -> None:
        """Accumulate one tile output.

        Parameters
        ----------
        values
            ``(C, h, w)`` tile output (e.g. from :func:`~spectraflow.inference.grid.crop_core`).
        window
            ``(row0, row1, col0, col1)`` in image coordinates where ``values`` belongs, of size
            ``h × w``; parts outside the region (or the image) are dropped.
        weight
            ``(h, w)`` weights (e.g. :func:`hann_window`); None means 1 everywhere.
            Pixels where any channel is not finite contribute nothing.
        """
        rows, cols = window[1] - window[0], window[3] - window[2]
        if values.ndim != 3 or values.shape != (self.channels, rows, cols):
            raise ConfigError(
                f"values of shape {values.shape} do not fit {self.channels} channels on a "
                f"{rows} × {cols} window",
                where="values",
                fix="pass (C, h, w) values whose h × w equals the window's size",
            )
        if weight is not None and weight.shape != (rows, cols):
            raise ConfigError(
                f"weight of shape {weight.shape} does not match the {rows} × {cols} window",
                where="weight",
                fix="pass (h, w) weights of the values' spatial shape",
            )
        slices = self._clip(window)
        if slices is None:
            return
        dr, dc, sr, sc = slices
        part = values[:, sr, sc].astype(np.float32, copy=False)
        w = (
            np.ones(part.shape[1:], dtype=np.float32)
            if weight is None
            else weight[sr, sc].astype(np.float32, copy=False)
        )
        finite = np.isfinite(part).all(axis=0)
        if not finite.all():
            w = np.where(finite, w, np.float32(0))
            part = np.where(finite, part, np.float32(0))
        self._sum[:, dr, dc] += part * w
        self._weight[dr, dc] += w

    def finalise(self, *, valid: np.ndarray | None = None) -> np.ndarray:
        """The blended ``(C, rows, cols)`` float32 values: sum / weight.

        Parameters
        ----------
        valid
            Boolean ``(rows, cols)`` mask of the region (True = data); None treats all as valid.

        Returns
        -------
        numpy.ndarray
            NaN where no tile contributed (weight 0) or ``valid`` is False.
        """
        covered = self._weight > 0
        if valid is not None:
            mask = np.asarray(valid)
            if mask.shape != self.shape:
                raise ConfigError(
                    f"valid mask has shape {mask.shape}, the region has {self.shape}",
                    where="valid",
                    fix="pass the valid mask of the blender's region",
                )
            covered &= mask.astype(bool, copy=False)
        out = np.full_like(self._sum, np.nan)
        np.divide(self._sum, self._weight, out=out, where=covered)
        return out


def argmax_classes(
    probabilities: np.ndarray,
    class_values: Sequence[int],
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Class map from blended ``(C, rows, cols)`` probabilities (or scores).

    Parameters
    ----------
    probabilities
        ``(C, rows, cols)``; pixels where any channel is NaN are nodata.
    class_values
        The class value of each channel, in ``1 … 255`` (0 is reserved for nodata).
    valid
        Boolean ``(rows, cols)`` mask (True = data); None treats all as valid.

    Returns
    -------
    numpy.ndarray
        uint8 ``(rows, cols)``: the value of the most probable class (ties: the first channel),
        0 where there is no data.
    """
    if probabilities.ndim != 3:
        raise ConfigError(
            f"probabilities must be (C, rows, cols), got shape {probabilities.shape}",
            where="probabilities",
            fix="pass the blended per-class array",
        )
    lookup = np.asarray(list(class_values), dtype=np.int64)
    if lookup.shape != (probabilities.shape[0],) or (lookup < 1).any() or (lookup > 255).any():
        raise ConfigError(
            f"class_values {list(class_values)} must give one value in 1…255 per channel "
            f"({probabilities.shape[0]} channels)",
            where="class_values",
            fix="map each channel to a class value 1…255; 0 is nodata",
        )
    data = np.isfinite(probabilities).all(axis=0)
    if valid is not None:
        mask = np.asarray(valid)
        if mask.shape != probabilities.shape[1:]:
            raise ConfigError(
                f"valid mask has shape {mask.shape}, probabilities have {probabilities.shape[1:]}",
                where="valid",
                fix="pass the valid mask of the same (rows, cols)",
            )
        data &= mask.astype(bool, copy=False)
    best = np.argmax(np.where(data, probabilities, 0), axis=0)
    return np.where(data, lookup.astype(np.uint8)[best], np.uint8(0)).astype(np.uint8)
