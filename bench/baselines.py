"""Classical per-pixel land-cover baselines for the models benchmark.

Both classify pixels from their spectra alone (no spatial context), trained on the same
labelled pixels as the learned models:

- :func:`spectral_angle_mapper`: the class whose mean training spectrum makes the smallest
  spectral angle with the pixel (Kruse et al. 1993); insensitive to brightness (illumination),
  the classical baseline of imaging spectroscopy.
- :func:`random_forest`: scikit-learn's random forest on the pixel spectra (Breiman 2001), the
  usual strong baseline of land-cover mapping.

Pixels are (N, C) arrays of finite values; labels are class values (any integers). Both
return the training labels' values, so the predictions compare directly with the truth.
"""

from __future__ import annotations

import numpy as np

from spectraflow.errors import ConfigError

__all__ = ["random_forest", "spectral_angle_mapper"]

_ROWS_PER_BLOCK = 65_536
"""Pixels classified per block by the angle mapper (bounds the float64 temporaries)."""


def _check(train_pixels: np.ndarray, train_labels: np.ndarray, pixels: np.ndarray) -> None:
    if train_pixels.ndim != 2 or pixels.ndim != 2 or train_labels.ndim != 1:
        raise ConfigError(
            "pixels must be (N, C) arrays and labels an (N,) array, not "
            f"{train_pixels.shape}, {train_labels.shape}, {pixels.shape}",
            where="train_pixels",
            fix="reshape cubes (C, H, W) to pixels with cube.reshape(C, -1).T",
        )
    if train_pixels.shape[0] != train_labels.shape[0] or train_pixels.shape[0] == 0:
        raise ConfigError(
            f"{train_pixels.shape[0]} training pixels and {train_labels.shape[0]} labels",
            where="train_labels",
            fix="pass one label per training pixel, at least one",
        )
    if train_pixels.shape[1] != pixels.shape[1]:
        raise ConfigError(
            f"training pixels have {train_pixels.shape[1]} bands, pixels {pixels.shape[1]}",
            where="pixels",
            fix="classify pixels with the bands the classifier was trained on",
        )


def spectral_angle_mapper(
    train_pixels: np.ndarray, train_labels: np.ndarray, pixels: np.ndarray
) -> np.ndarray:
    """Classify pixels by the smallest spectral angle to the class-mean training spectra.

    Parameters
    ----------
    train_pixels
        (N, C) training spectra.
    train_labels
        (N,) their class values.
    pixels
        (M, C) spectra to classify.

    Returns
    -------
    numpy.ndarray
        (M,) class values (dtype of ``train_labels``). An all-zero pixel has no angle; it gets
        the class of the first column of the angle table (the smallest class value).
    """
    train_pixels = np.asarray(train_pixels)
    train_labels = np.asarray(train_labels)
    pixels = np.asarray(pixels)
    _check(train_pixels, train_labels, pixels)
    classes, index = np.unique(train_labels, return_inverse=True)
    sums = np.zeros((classes.size, train_pixels.shape[1]))
    np.add.at(sums, index, train_pixels.astype(np.float64))
    means = sums / np.bincount(index, minlength=classes.size)[:, None]
    # Angles order like cosines (arccos is decreasing), so compare cosines.
    unit_means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-30)
    out = np.empty(pixels.shape[0], dtype=train_labels.dtype)
    for start in range(0, pixels.shape[0], _ROWS_PER_BLOCK):
        block = pixels[start : start + _ROWS_PER_BLOCK].astype(np.float64)
        norms = np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-30)
        cosines = (block / norms) @ unit_means.T
        out[start : start + block.shape[0]] = classes[np.argmax(cosines, axis=1)]
    return out


def random_forest(
    train_pixels: np.ndarray,
    train_labels: np.ndarray,
    pixels: np.ndarray,
    *,
    seed: int = 0,
    n_estimators: int = 200,
    n_jobs: int = 2,
) -> np.ndarray:
    """Classify pixels with a random forest trained on the labelled spectra.

    scikit-learn's ``RandomForestClassifier`` with its defaults (√C features per split, trees
    grown fully) apart from ``n_estimators``, ``n_jobs`` and ``random_state=seed``.

    Returns
    -------
    numpy.ndarray
        (M,) class values (dtype of ``train_labels``).
    """
    # Imported here: scikit-learn is a bench/dev extra, not a dependency of spectraflow.
    from sklearn.ensemble import RandomForestClassifier

    train_pixels = np.asarray(train_pixels)
    train_labels = np.asarray(train_labels)
    pixels = np.asarray(pixels)
    _check(train_pixels, train_labels, pixels)
    forest = RandomForestClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)
    forest.fit(train_pixels, train_labels)
    return np.asarray(forest.predict(pixels)).astype(train_labels.dtype, copy=False)
