"""Plume masks from an enhancement map: threshold and connectivity (pure numpy/scipy).

The simplest plume product. Defaults, chosen for EMIT-like noise (background deviation of
150–500 ppm·m): a pixel seeds a plume where the enhancement exceeds ``seed_sigma`` (4) robust
background standard deviations, the plume grows over 8-connected neighbours above
``grow_sigma`` (2) deviations (hysteresis), and plumes smaller than ``min_pixels`` (5) are
dropped. The background deviation is 1.4826 × the median absolute deviation of the finite
values, robust to the plumes themselves, or a given deviation (a per-pixel ``uncertainty`` map).
Fixed thresholds in ppm·m may be given instead.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["background_sigma", "plume_mask"]

_EIGHT = np.ones((3, 3), dtype=bool)


def background_sigma(enhancement: np.ndarray) -> float:
    """Robust standard deviation (1.4826 × MAD) of the finite values, ppm·m."""
    values = enhancement[np.isfinite(enhancement)]
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def plume_mask(
    enhancement: np.ndarray,
    *,
    seed_sigma: float = 4.0,
    grow_sigma: float = 2.0,
    min_pixels: int = 5,
    sigma: float | np.ndarray | None = None,
    seed_ppm_m: float | None = None,
    grow_ppm_m: float | None = None,
) -> np.ndarray:
    """Labelled plumes (int32, 0 = background, 1..n = plumes) of a 2-D enhancement map.

    Parameters
    ----------
    enhancement
        (rows, cols) ppm·m; NaN is background.
    seed_sigma, grow_sigma
        Seed and grow thresholds in robust background deviations.
    min_pixels
        Smallest plume kept (pixels).
    sigma
        Background deviation in ppm·m, a number or a per-pixel map such as the retrieval's
        ``uncertainty``; default: the robust deviation of ``enhancement`` (which suits maps
        with negative values kept; a sparse, non-negative map is better served by its
        ``uncertainty``).
    seed_ppm_m, grow_ppm_m
        Fixed thresholds in ppm·m instead of the deviation-based ones.
    """
    values = np.nan_to_num(np.asarray(enhancement, dtype=np.float64), nan=-np.inf)
    deviation = background_sigma(enhancement) if sigma is None else sigma
    if seed_ppm_m is not None or grow_ppm_m is not None:
        seed = seed_ppm_m if seed_ppm_m is not None else seed_sigma * deviation
        grow = grow_ppm_m if grow_ppm_m is not None else grow_sigma * deviation
        score = values
    else:  # thresholds in deviations: compare z-scores (sigma may vary per pixel)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.nan_to_num(values / deviation, nan=-np.inf)
        seed, grow = seed_sigma, grow_sigma
    labels, n = ndimage.label(score > grow, structure=_EIGHT)
    if n == 0:
        return labels.astype(np.int32)
    index = np.arange(1, n + 1)
    seeded = np.asarray(ndimage.maximum(score, labels, index)) > seed
    big = np.asarray(ndimage.sum(np.ones_like(score), labels, index)) >= min_pixels
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = seeded & big
    kept = np.where(keep[labels], labels, 0)
    relabelled, _ = ndimage.label(kept > 0, structure=_EIGHT)
    return relabelled.astype(np.int32)
