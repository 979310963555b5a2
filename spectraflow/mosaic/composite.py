"""Compositing policies on stacks of scenes already reprojected onto one block (pure numpy).

Every function takes the scenes **ordered oldest → newest**, as an array with the scene on the
first axis or as a sequence (or, where noted, an iterable) of per-scene arrays, with the no-data
conventions of the predictions stores: class value 0 and NaN for floats. A
scene's no data never wins over another scene's data; a pixel without data in any scene stays
no data.

Policies (:data:`POLICIES`):

``latest``
    The newest scene with data at the pixel wins (class and confidence, or value and
    uncertainty, taken together from it).
``best-confidence``
    Class maps: the scene with the highest confidence wins; continuous maps: the scene with
    the lowest uncertainty. A scene with data but no confidence (NaN) ranks last; ties go to
    the newer scene.
``mean``
    Continuous maps: the mean of the scenes with data; its uncertainty is
    ``sqrt(Σ σᵢ²) / n`` (independent errors; NaN if a contributing σ is unknown). Class maps:
    the mean of the scenes' class probabilities, then the class of the largest mean
    probability, whose value is the confidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from spectraflow.errors import ConfigError

__all__ = [
    "POLICIES",
    "check_policy",
    "composite_classes",
    "composite_continuous",
    "mean_classes",
    "mean_continuous",
    "pick_best",
    "pick_latest",
    "take",
]

POLICIES: tuple[str, ...] = ("latest", "best-confidence", "mean")
"""Names of the compositing policies."""


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`POLICIES`.

    Raises
    ------
    ConfigError
        Unknown policy; the message lists the known ones.
    """
    if policy not in POLICIES:
        raise ConfigError(
            f"unknown compositing policy {policy!r}",
            where="policy",
            fix=f"use one of {', '.join(POLICIES)}",
        )
    return policy


def pick_latest(valid: Iterable[np.ndarray]) -> np.ndarray:
    """Index of the newest scene with data at each pixel, -1 where none has data.

    Parameters
    ----------
    valid
        Per scene (oldest → newest) a ``(rows, cols)`` bool mask, e.g. a ``(scenes, rows,
        cols)`` array.
    """
    index: np.ndarray | None = None
    for i, mask in enumerate(valid):
        if index is None:
            index = np.full(mask.shape, -1, dtype=np.int16)
        index[mask] = i  # later (newer) scenes overwrite
    if index is None:
        raise ValueError("no scenes to composite")
    return index


def pick_best(
    valid: Iterable[np.ndarray], score: Iterable[np.ndarray], *, higher: bool = True
) -> np.ndarray:
    """Index of the scene with the best ``score`` among those with data, -1 where none has.

    Parameters
    ----------
    valid
        Per scene (oldest → newest) a ``(rows, cols)`` bool mask.
    score
        Per scene a ``(rows, cols)`` float score; NaN ranks last among scenes with data.
    higher
        True: the highest score wins (confidence); False: the lowest (uncertainty).

    Notes
    -----
    Ties go to the newer scene.
    """
    index: np.ndarray | None = None
    best: np.ndarray | None = None
    lowest = np.finfo(np.float64).min  # a NaN score: above no data, below any real score
    for i, (mask, sc) in enumerate(zip(valid, score, strict=True)):
        s = np.asarray(sc, dtype=np.float64)
        s = np.where(np.isnan(s), lowest, s if higher else -s)
        if index is None or best is None:
            index = np.full(mask.shape, -1, dtype=np.int16)
            best = np.full(mask.shape, -np.inf)
        better = mask & (s >= best)
        index[better] = i
        best[better] = s[better]
    if index is None:
        raise ValueError("no scenes to composite")
    return index


def take(
    stack: Sequence[np.ndarray] | np.ndarray, index: np.ndarray, fill: float | int
) -> np.ndarray:
    """``stack[index[r, c]][r, c]`` per pixel, ``fill`` where ``index`` is -1.

    Parameters
    ----------
    stack
        Per scene a ``(rows, cols)`` array (e.g. a ``(scenes, rows, cols)`` array).
    index
        ``(rows, cols)`` int from :func:`pick_latest` or :func:`pick_best`.
    fill
        Value where no scene has data.
    """
    dtype = np.result_type(*(np.asarray(a).dtype for a in stack))
    out = np.full(index.shape, fill, dtype=dtype)
    for i, layer in enumerate(stack):
        np.copyto(out, layer, where=index == i)
    return out


def mean_continuous(
    values: Iterable[np.ndarray], uncertainty: Iterable[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the scenes with data and its uncertainty ``sqrt(Σ σᵢ²) / n``.

    Parameters
    ----------
    values, uncertainty
        Per scene a ``(rows, cols)`` float array, NaN = no data (e.g. ``(scenes, rows, cols)``
        arrays).

    Returns
    -------
    (values, uncertainty)
        ``(rows, cols)`` float32 each, NaN where no scene has data.
    """
    total = var = n = None
    for v, sigma in zip(values, uncertainty, strict=True):
        valid = np.isfinite(v)
        if total is None or var is None or n is None:
            total, var = np.zeros(valid.shape), np.zeros(valid.shape)
            n = np.zeros(valid.shape, dtype=np.int32)
        total += np.where(valid, v, 0.0)
        var += np.where(valid, np.asarray(sigma, dtype=np.float64) ** 2, 0.0)
        n += valid
    if total is None or var is None or n is None:
        raise ValueError("no scenes to composite")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        sigma_mean = np.where(n > 0, np.sqrt(var) / n, np.nan)
    return mean.astype(np.float32), sigma_mean.astype(np.float32)


def mean_classes(
    probabilities: Iterable[np.ndarray], labels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Class of the largest mean probability over the scenes with data, and that probability.

    Parameters
    ----------
    probabilities
        Per scene a ``(labels, rows, cols)`` float array, NaN where the scene has no data
        (e.g. a ``(scenes, labels, rows, cols)`` array, or a generator: one scene in memory
        at a time).
    labels
        Class value of each probability layer.

    Returns
    -------
    (class, confidence)
        ``(rows, cols)`` uint8 (0 = no data) and float32 (NaN = no data).
    """
    total = n = None
    for p in probabilities:
        valid = np.isfinite(p).all(axis=0)
        if total is None or n is None:
            total, n = np.zeros(p.shape), np.zeros(valid.shape, dtype=np.int32)
        total += np.where(valid, p, 0.0)
        n += valid
    if total is None or n is None:
        raise ValueError("no scenes to composite")
    best = np.argmax(total, axis=0)  # the largest sum is the largest mean
    lookup = np.asarray(labels, dtype=np.uint8)
    cls = np.where(n > 0, lookup[best], 0).astype(np.uint8)
    top = np.take_along_axis(total, best[None], axis=0)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(n > 0, top / n, np.nan)
    return cls, conf.astype(np.float32)


def composite_classes(
    classes: Sequence[np.ndarray],
    confidence: Iterable[np.ndarray] | None = None,
    *,
    policy: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite class maps with ``latest`` or ``best-confidence``; which scene won each pixel.

    The confidence layer is ``take(confidence, index, np.nan)``: a mosaic takes it in a
    separate step, so that computing the class layer alone with ``latest`` never reads a
    confidence. ``mean`` composites probabilities: :func:`mean_classes`.

    Parameters
    ----------
    classes
        Per scene (oldest → newest) a ``(rows, cols)`` uint8 class map, 0 = no data (e.g. a
        ``(scenes, rows, cols)`` array).
    confidence
        Per scene a ``(rows, cols)`` float, the probability of its class (NaN: unknown);
        required by ``best-confidence``, not read by ``latest``.
    policy
        ``"latest"`` or ``"best-confidence"``.

    Returns
    -------
    (class, index)
        ``(rows, cols)`` uint8 (0 = no data) and the index of the winning scene (-1: none).
    """
    check_policy(policy)
    valid = [c > 0 for c in classes]
    if policy == "latest":
        index = pick_latest(valid)
    elif policy == "best-confidence" and confidence is not None:
        index = pick_best(valid, confidence)
    else:  # mean composites probabilities (mean_classes)
        needs = "probabilities" if policy == "mean" else "confidences"
        raise ValueError(f"class maps composited with {policy!r} need the scenes' {needs}")
    return take(classes, index, 0).astype(np.uint8, copy=False), index


def composite_continuous(
    values: np.ndarray, uncertainty: np.ndarray, *, policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """Composite continuous maps with ``policy``.

    Parameters
    ----------
    values, uncertainty
        ``(scenes, rows, cols)`` float, NaN = no data; scenes oldest → newest.
    policy
        One of :data:`POLICIES`.

    Returns
    -------
    (values, uncertainty)
        ``(rows, cols)`` float32 each, NaN where no scene has data.
    """
    check_policy(policy)
    if policy == "mean":
        return mean_continuous(values, uncertainty)
    valid = np.isfinite(values)
    if policy == "latest":
        index = pick_latest(valid)
    else:
        index = pick_best(valid, uncertainty, higher=False)
    vals = take(np.asarray(values, dtype=np.float32), index, np.nan)
    sigma = take(np.asarray(uncertainty, dtype=np.float32), index, np.nan)
    return vals, sigma
