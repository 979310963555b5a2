"""Training chips from a label raster: sampling, few-label subsets and augmentation (pure numpy).

Label rasters follow the class-map convention: uint8, 0 = no data (unlabelled), classes 1..K.
Images are (band, row, col) arrays, already normalised; masked pixels hold 0 in every band.

- :func:`sample_chips` picks chip windows (top-left corners) so that every class is about
  equally likely at the chip centre (class-balanced sampling) and each chip holds enough
  labelled, valid pixels.
- :func:`sparse_labels` keeps a stratified fraction of the labels (the few-label setting,
  e.g. 1 % of the labelled pixels).
- :func:`augment` applies the same random flip and 90° rotation to a chip and its labels, and a
  spectral jitter to the chip.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed reproduces a run.
"""

from __future__ import annotations

import numpy as np

from spectraflow.errors import ConfigError

__all__ = ["augment", "sample_chips", "sparse_labels"]

_OFFSET_TERMS = 3
"""Cosine terms (constant, half and full period across the bands) of the smooth band offset."""


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(
            f"labels must be a 2-D integer raster, not {labels.ndim}-D {labels.dtype}",
            where="labels",
            fix="pass a (rows, cols) uint8 raster with 0 = no data and classes 1..K",
        )
    return labels


def _window_fraction(usable: np.ndarray, chip: int) -> np.ndarray:
    """Fraction of usable pixels in every chip × chip window, indexed by its top-left corner."""
    integral = np.zeros((usable.shape[0] + 1, usable.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = usable.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    sums = (
        integral[chip:, chip:]
        - integral[:-chip, chip:]
        - integral[chip:, :-chip]
        + integral[:-chip, :-chip]
    )
    return sums / float(chip * chip)


def sample_chips(
    labels: np.ndarray,
    *,
    chip: int,
    count: int,
    rng: np.random.Generator,
    valid: np.ndarray | None = None,
    balance: bool = True,
    min_labelled: float = 0.25,
) -> np.ndarray:
    """Top-left corners of ``count`` chips of ``chip`` × ``chip`` pixels inside the image.

    Each chip is centred on a labelled, valid pixel (shifted inwards where the pixel is closer
    than half a chip to the edge, so the chip stays inside the image). With ``balance`` the
    centre pixel's class is drawn uniformly among the classes that can be sampled, then the
    pixel uniformly within the class, so rare classes are seen as often as common ones;
    without it the centre is drawn uniformly over all labelled pixels (chips follow the class
    frequencies). Only centres whose chip holds at least ``min_labelled`` labelled and valid
    pixels are drawn; a class none of whose pixels allows such a chip is not sampled. Draws are
    independent (with replacement), so chips may repeat or overlap.

    Parameters
    ----------
    labels
        (H, W) integer raster, 0 = no data.
    chip
        Chip side in pixels.
    count
        Number of chips.
    rng
        Random generator.
    valid
        Optional (H, W) boolean mask of pixels with valid input (e.g. cube ``valid``).
    balance
        Class-balanced sampling of chip centres.
    min_labelled
        Minimum fraction (0..1) of labelled and valid pixels in a chip.

    Returns
    -------
    numpy.ndarray
        int64 array of shape (count, 2): (row, col) of each chip's top-left pixel, with
        ``0 <= row <= H − chip`` and ``0 <= col <= W − chip``.

    Raises
    ------
    ConfigError
        (a ValueError) The image is smaller than a chip, no pixel is labelled and valid, no
        chip reaches ``min_labelled``, or an argument is out of range.
    """
    labels = _check_labels(labels)
    height, width = labels.shape
    if chip < 1 or count < 0:
        raise ConfigError(
            f"chip must be ≥ 1 and count ≥ 0, not chip={chip}, count={count}",
            where="chip" if chip < 1 else "count",
            fix="pass a positive chip size and a non-negative count",
        )
    if not 0.0 <= min_labelled <= 1.0:
        raise ConfigError(
            f"min_labelled must lie in [0, 1], not {min_labelled}",
            where="min_labelled",
            fix="pass a fraction such as 0.25",
        )
    if height < chip or width < chip:
        raise ConfigError(
            f"image of {height} × {width} pixels is smaller than a chip of {chip} × {chip}",
            where="chip",
            fix="use a smaller chip size or a larger image",
        )
    usable = labels != 0
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != labels.shape:
            raise ConfigError(
                f"valid {valid.shape} and labels {labels.shape} have different shapes",
                where="valid",
                fix="pass a mask on the label raster's grid",
            )
        usable &= valid
    if not usable.any():
        raise ConfigError(
            "no pixel is both labelled and valid",
            where="labels",
            fix="check the label raster (0 = no data) and the valid mask",
        )
    # Top-left corner of the chip centred on every pixel, clamped into the image.
    half = chip // 2
    top = np.clip(np.arange(height) - half, 0, height - chip)
    left = np.clip(np.arange(width) - half, 0, width - chip)
    # Tolerance: the fraction is k / chip², compare without rounding surprises.
    enough = _window_fraction(usable, chip) >= min_labelled - 1e-12
    candidates = usable & enough[top[:, None], left[None, :]]
    flat = np.flatnonzero(candidates)
    if flat.size == 0:
        raise ConfigError(
            f"no {chip} × {chip} chip holds {min_labelled:.0%} labelled and valid pixels",
            where="min_labelled",
            fix="lower min_labelled or the chip size",
        )
    if balance:
        classes = labels.ravel()[flat]
        order = np.argsort(classes, kind="stable")
        flat, classes = flat[order], classes[order]
        values, starts, sizes = np.unique(classes, return_index=True, return_counts=True)
        drawn = rng.integers(0, values.size, size=count)
        picks = starts[drawn] + rng.integers(0, sizes[drawn])
        centres = flat[picks]
    else:
        centres = flat[rng.integers(0, flat.size, size=count)]
    rows, cols = np.divmod(centres, width)
    return np.stack([top[rows], left[cols]], axis=1).astype(np.int64)


def sparse_labels(
    labels: np.ndarray, *, fraction: float, rng: np.random.Generator, per_class_min: int = 5
) -> np.ndarray:
    """Keep a random, class-stratified ``fraction`` of the labelled pixels; the rest become 0.

    Each class keeps ``round(fraction × n)`` of its n pixels, but at least ``per_class_min``
    (or all n, when it has fewer), so rare classes survive even at 1 % of the labels.

    Parameters
    ----------
    labels
        (H, W) integer raster, 0 = no data.
    fraction
        Fraction of each class's pixels to keep, in (0, 1].
    rng
        Random generator.
    per_class_min
        Minimum number of pixels kept per class.

    Returns
    -------
    numpy.ndarray
        A new raster of the same shape and dtype with only the kept labels.

    Raises
    ------
    ConfigError
        ``fraction`` is outside (0, 1] or ``per_class_min`` is negative.
    """
    labels = _check_labels(labels)
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"fraction must lie in (0, 1], not {fraction}",
            where="fraction",
            fix="pass e.g. 0.01 for 1 % of the labels",
        )
    if per_class_min < 0:
        raise ConfigError(
            f"per_class_min must be ≥ 0, not {per_class_min}",
            where="per_class_min",
            fix="pass a non-negative count",
        )
    flat = labels.ravel()
    out = np.zeros_like(flat)
    for value in np.unique(flat[flat != 0]):
        pixels = np.flatnonzero(flat == value)
        keep = min(pixels.size, max(per_class_min, round(fraction * pixels.size)))
        chosen = rng.choice(pixels, size=keep, replace=False)
        out[chosen] = value
    return out.reshape(labels.shape)


def augment(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    spectral_jitter: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly flip, rotate and spectrally jitter a chip; its labels follow the geometry.

    Geometry: a flip of rows and one of columns (each with probability ½), then a rotation by
    a random multiple of 90°, the same for image and labels (all eight symmetries of the
    square). Spectrum, with ``s = spectral_jitter``: every pixel's spectrum is multiplied by its
    own gain drawn from U(1 − s, 1 + s) (illumination, slope), and one smooth offset curve
    across the bands (a random sum of a constant, a half and a full cosine period over the band
    index, of typical size ``s`` × the chip's mean absolute value) is added to every pixel, as
    calibration or atmospheric residuals would. Masked pixels (0 in every band) stay 0.

    Parameters
    ----------
    image
        (C, h, w) chip.
    labels
        (h, w) labels; values are not changed.
    rng
        Random generator.
    spectral_jitter
        Relative size ``s`` of the gain and offset; 0 switches the spectral part off.

    Returns
    -------
    tuple of numpy.ndarray
        New arrays: the image as float32 (C, h', w') and the labels as uint8 (h', w'), where
        (h', w') is (h, w) or, after an odd rotation of a non-square chip, (w, h).

    Raises
    ------
    ConfigError
        The shapes do not match or ``spectral_jitter`` is negative.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 3 or labels.shape != image.shape[1:]:
        raise ConfigError(
            f"image {image.shape} and labels {labels.shape} do not match",
            where="labels",
            fix="pass a (C, h, w) image and (h, w) labels",
        )
    if spectral_jitter < 0:
        raise ConfigError(
            f"spectral_jitter must be ≥ 0, not {spectral_jitter}",
            where="spectral_jitter",
            fix="pass a small non-negative fraction such as 0.02",
        )
    flip_rows, flip_cols = rng.random(2) < 0.5
    turns = int(rng.integers(0, 4))
    if flip_rows:
        image, labels = image[:, ::-1, :], labels[::-1, :]
    if flip_cols:
        image, labels = image[:, :, ::-1], labels[:, ::-1]
    image = np.rot90(image, turns, axes=(1, 2))
    labels = np.rot90(labels, turns, axes=(0, 1))
    out = np.array(image, dtype=np.float32, order="C")
    if spectral_jitter > 0:
        bands = out.shape[0]
        masked = ~np.any(out != 0, axis=0)
        gain = rng.uniform(1 - spectral_jitter, 1 + spectral_jitter, size=out.shape[1:])
        position = np.arange(bands) / max(bands - 1, 1)
        basis = np.cos(np.pi * np.arange(_OFFSET_TERMS)[:, None] * position[None, :])
        weights = rng.standard_normal(_OFFSET_TERMS) / np.sqrt(_OFFSET_TERMS)
        live = out[:, ~masked]
        scale = float(np.abs(live).mean()) if live.size else 0.0
        offset = spectral_jitter * scale * (weights @ basis)
        out *= gain.astype(np.float32)[None]
        out += offset.astype(np.float32)[:, None, None]
        out[:, masked] = 0.0
    return out, np.array(labels, dtype=np.uint8, order="C")
