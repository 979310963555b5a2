"""Deterministic, resolution-independent value noise on a metric plane (pure code).

Every field of the simulated world (land cover, elevation, clouds) is a sum of value-noise
octaves defined in metres on the region's plane. Lattice values come from an integer hash of
(seed, lattice index), so a field has the same value at a point whichever sensor, grid, block
or scene size samples it: that is what makes scenes of different sensors overlap exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_P1 = np.uint64(0xC2B2AE3D27D4EB4F)


def hash_uniform(seed: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Uniform values in [0, 1) from integer coordinates (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = (
            np.asarray(i).astype(np.int64).astype(np.uint64) * _M1
            ^ np.asarray(j).astype(np.int64).astype(np.uint64) * _P1
            ^ np.uint64(seed & 0xFFFFFFFFFFFF) * _M2
        )
        h ^= h >> np.uint64(30)
        h *= _M2
        h ^= h >> np.uint64(27)
        h *= _M3
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _axis_weights(coord: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(coord, dtype=np.float64) / spacing
    i0 = np.floor(u)
    return i0.astype(np.int64), _smoothstep(u - i0)


def is_grid(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``x`` (1, W) and ``y`` (H, 1) describe an axis-aligned grid."""
    return x.ndim == 2 and y.ndim == 2 and x.shape[0] == 1 and y.shape[1] == 1


@dataclass(frozen=True)
class ValueNoise:
    """One octave of smooth value noise with values in [-1, 1].

    ``spacing`` is the lattice spacing in metres (the feature size). Coordinates are metres.
    """

    seed: int
    spacing: float

    def lattice(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Lattice values at integer indices ``i`` (x) and ``j`` (y)."""
        return 2.0 * hash_uniform(self.seed, i, j) - 1.0

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Noise at points ``(x, y)``; grids given as (1, W) and (H, 1) use a separable path."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if is_grid(x, y):
            return self._sample_grid(x[0], y[:, 0])
        ix, wx = _axis_weights(x, self.spacing)
        iy, wy = _axis_weights(y, self.spacing)
        v00 = self.lattice(ix, iy)
        v10 = self.lattice(ix + 1, iy)
        v01 = self.lattice(ix, iy + 1)
        v11 = self.lattice(ix + 1, iy + 1)
        top = v00 + wx * (v10 - v00)
        bottom = v01 + wx * (v11 - v01)
        return top + wy * (bottom - top)

    def _sample_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        ix, wx = _axis_weights(xs, self.spacing)
        iy, wy = _axis_weights(ys, self.spacing)
        i_lo, j_lo = int(ix.min()), int(iy.min())
        ii = np.arange(i_lo, int(ix.max()) + 2)
        jj = np.arange(j_lo, int(iy.max()) + 2)
        block = self.lattice(ii[None, :], jj[:, None])  # (h, w)
        rows = block[iy - j_lo] * (1.0 - wy)[:, None] + block[iy - j_lo + 1] * wy[:, None]
        return rows[:, ix - i_lo] * (1.0 - wx)[None, :] + rows[:, ix - i_lo + 1] * wx[None, :]


@dataclass(frozen=True)
class Fractal:
    """A sum of value-noise octaves: ``sum(amplitude * noise(spacing))``, roughly in [-1, 1]."""

    seed: int
    spacings: Sequence[float]
    amplitudes: Sequence[float]

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Field value at points ``(x, y)`` (metres)."""
        total = sum(self.amplitudes)
        out: np.ndarray | None = None
        for k, (spacing, amp) in enumerate(zip(self.spacings, self.amplitudes, strict=True)):
            octave = ValueNoise(self.seed * 7919 + k, spacing).sample(x, y) * (amp / total)
            out = octave if out is None else out + octave
        assert out is not None
        return out
