"""Accuracy metrics for class maps, detection masks and retrievals (pure numpy, no I/O).

Three families, each a function that returns a frozen result with ``as_dict()`` (flat, JSON- and
TOML-friendly, rounded) for model cards and benchmark results:

- **Classification** (land cover): :func:`confusion_matrix` counts pixels by (truth, predicted)
  class; :func:`classification_scores` turns the counts into overall accuracy, Cohen's kappa,
  per-class F1 and IoU, and their means.
- **Detection** (plume masks): :func:`detection_scores` gives precision, recall and F1 of a
  binary mask.
- **Retrieval** (e.g. CH4 enhancement in ppm·m): :func:`retrieval_scores` gives bias, RMSE and
  Pearson's r of an estimate against the truth, over the pixels where both are finite.

Class values follow the class-map convention of spectraflow's label rasters and products:
0 is no data and the classes are 1..K. :func:`confusion_matrix` reads such rasters as they are
(row and column ``i`` of the matrix is class value ``i + 1``); for network outputs indexed
0..K−1 pass ``first=0, ignore=None``.

A value that a formula leaves undefined (0/0: the precision of an empty prediction, the F1 of a
class that appears neither in the truth nor in the prediction, Pearson's r of a constant) is
NaN in the result and ``None`` in ``as_dict()``; means skip NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spectraflow.errors import ConfigError

__all__ = [
    "ClassificationScores",
    "DetectionScores",
    "RetrievalScores",
    "classification_scores",
    "confusion_matrix",
    "detection_scores",
    "retrieval_scores",
]

Metric = float | int | None
"""A value of an ``as_dict()`` result."""


def confusion_matrix(
    truth: np.ndarray,
    predicted: np.ndarray,
    n_classes: int,
    *,
    ignore: int | None = 0,
    first: int = 1,
) -> np.ndarray:
    """Pixel counts by truth class (rows) and predicted class (columns).

    Parameters
    ----------
    truth, predicted
        Integer class values of the same shape (any number of dimensions), e.g. a label raster
        and a predicted class map.
    n_classes
        Number of classes K; the class values are ``first .. first + K − 1``.
    ignore
        Value that marks pixels without an answer (no data). A pixel is skipped when its truth
        *or* its prediction equals it: unlabelled pixels cannot be scored, and a predicted
        no-data pixel is one the model was given no valid input for (masked or fill pixels).
        ``None``: no value is skipped.
    first
        Class value of row and column 0. The default (1, with ``ignore=0``) reads label rasters
        and class maps as stored; use ``first=0, ignore=None`` for argmax indices of logits.

    Returns
    -------
    numpy.ndarray
        int64 array of shape (K, K): ``m[i, j]`` counts pixels of true class ``first + i``
        predicted as class ``first + j``.

    Raises
    ------
    ConfigError
        The shapes differ, ``n_classes`` < 1, or a value that is not ignored lies outside the
        class range.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ConfigError(
            f"truth {truth.shape} and predicted {predicted.shape} have different shapes",
            where="predicted",
            fix="pass a prediction on the truth's grid",
        )
    if n_classes < 1:
        raise ConfigError(
            f"n_classes must be at least 1, not {n_classes}",
            where="n_classes",
            fix="pass the number of classes",
        )
    t = truth.ravel().astype(np.int64)
    p = predicted.ravel().astype(np.int64)
    if ignore is not None:
        keep = (t != ignore) & (p != ignore)
        t, p = t[keep], p[keep]
    t -= first
    p -= first
    for name, values in (("truth", t), ("predicted", p)):
        bad = (values < 0) | (values >= n_classes)
        if bad.any():
            value = int(values[bad][0]) + first
            raise ConfigError(
                f"class value {value} is outside {first}..{first + n_classes - 1}",
                where=name,
                fix="check n_classes, first and ignore against the label convention "
                "(label rasters: 0 = no data, classes 1..K)",
            )
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _round(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def _round_significant(value: float, digits: int) -> float | None:
    # Bias and RMSE come in the retrieval's own units (ppm·m, reflectance, ...), so a fixed
    # number of decimals would be too coarse for some and noise for others.
    return None if math.isnan(value) else float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class ClassificationScores:
    """Scores of a class map against the truth (see :func:`classification_scores`).

    Attributes
    ----------
    overall_accuracy
        Fraction of pixels classified correctly.
    kappa
        Cohen's kappa: agreement beyond what the two class distributions give by chance.
    mean_f1, mean_iou
        Means of the per-class values over the classes present in the truth or the
        prediction (macro averages).
    per_class_f1, per_class_iou
        Class name → F1 ``2TP / (2TP + FP + FN)`` and IoU ``TP / (TP + FP + FN)``; NaN for a
        class absent from both the truth and the prediction.
    support
        Class name → number of truth pixels of that class.
    n
        Number of pixels scored.
    """

    overall_accuracy: float
    kappa: float
    mean_f1: float
    mean_iou: float
    per_class_f1: dict[str, float]
    per_class_iou: dict[str, float]
    support: dict[str, int]
    n: int

    def as_dict(self, *, prefix: str = "", digits: int = 4) -> dict[str, Metric]:
        """Flat, JSON-friendly dictionary of the scores.

        Keys ``oa``, ``kappa``, ``mean_f1``, ``miou``, ``n`` and, per class, ``f1_<name>``,
        ``iou_<name>``, ``support_<name>``, each starting with ``prefix``; fractions are rounded
        to ``digits`` decimals, undefined values are ``None``.
        """
        out: dict[str, Metric] = {
            "oa": _round(self.overall_accuracy, digits),
            "kappa": _round(self.kappa, digits),
            "mean_f1": _round(self.mean_f1, digits),
            "miou": _round(self.mean_iou, digits),
            "n": self.n,
        }
        for name, f1 in self.per_class_f1.items():
            out[f"f1_{name}"] = _round(f1, digits)
        for name, iou in self.per_class_iou.items():
            out[f"iou_{name}"] = _round(iou, digits)
        for name, count in self.support.items():
            out[f"support_{name}"] = count
        return {prefix + key: value for key, value in out.items()}


def classification_scores(
    confusion: np.ndarray, class_names: Sequence[str]
) -> ClassificationScores:
    """Overall accuracy, Cohen's kappa, per-class F1 and IoU from a confusion matrix.

    Parameters
    ----------
    confusion
        (K, K) counts, rows = truth, columns = prediction (:func:`confusion_matrix`).
    class_names
        K names, in the order of the rows.

    Returns
    -------
    ClassificationScores
        Classes that appear neither in the truth nor in the prediction have NaN F1 and IoU and
        do not count in ``mean_f1`` and ``mean_iou`` (a scene without water says nothing about
        water). A class only predicted (false alarms, no truth pixels) has F1 = IoU = 0 and
        does count. Kappa is NaN when chance agreement is 1 (truth and prediction both a
        single, identical class), where it is 0/0.

    Raises
    ------
    ConfigError
        The matrix is not square, does not match ``class_names``, has negative entries, or
        counts no pixels.
    """
    m = np.asarray(confusion, dtype=np.float64)
    names = [str(name) for name in class_names]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names):
        raise ConfigError(
            f"confusion matrix of shape {m.shape} does not match {len(names)} class names",
            where="confusion",
            fix="pass a (K, K) matrix from confusion_matrix and K class names",
        )
    if (m < 0).any():
        raise ConfigError(
            "confusion matrix has negative counts", where="confusion", fix="pass pixel counts"
        )
    n = float(m.sum())
    if n == 0:
        raise ConfigError(
            "confusion matrix counts no pixels",
            where="confusion",
            fix="check that truth and prediction overlap on labelled pixels",
        )
    tp = np.diag(m)
    truth_total = m.sum(axis=1)
    predicted_total = m.sum(axis=0)
    fp = predicted_total - tp
    fn = truth_total - tp
    observed = float(tp.sum()) / n
    chance = float((truth_total * predicted_total).sum()) / (n * n)
    # Both sides a single identical class: chance = observed = 1, kappa = 0/0.
    kappa = (observed - chance) / (1.0 - chance) if chance < 1.0 else math.nan
    f1 = [_ratio(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn, strict=True)]
    iou = [_ratio(a, a + b + c) for a, b, c in zip(tp, fp, fn, strict=True)]
    return ClassificationScores(
        overall_accuracy=observed,
        kappa=kappa,
        mean_f1=_nanmean(f1),
        mean_iou=_nanmean(iou),
        per_class_f1=dict(zip(names, f1, strict=True)),
        per_class_iou=dict(zip(names, iou, strict=True)),
        support={name: int(s) for name, s in zip(names, truth_total, strict=True)},
        n=int(n),
    )


@dataclass(frozen=True)
class DetectionScores:
    """Scores of a binary detection mask (see :func:`detection_scores`).

    Attributes
    ----------
    precision
        TP / (TP + FP): fraction of detected pixels that are true; NaN with no detections.
    recall
        TP / (TP + FN): fraction of true pixels detected; NaN when the truth has none.
    f1
        2TP / (2TP + FP + FN); NaN when both truth and prediction are empty.
    tp, fp, fn
        Pixel counts: true positives, false positives (false alarms), false negatives (misses).
    """

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def as_dict(self, *, prefix: str = "", digits: int = 4) -> dict[str, Metric]:
        """Flat, JSON-friendly dictionary of the scores.

        Keys ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, each starting with
        ``prefix``; fractions rounded to ``digits`` decimals, undefined ones ``None``.
        """
        out: dict[str, Metric] = {
            "precision": _round(self.precision, digits),
            "recall": _round(self.recall, digits),
            "f1": _round(self.f1, digits),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }
        return {prefix + key: value for key, value in out.items()}


def _check_same_shape(truth: np.ndarray, other: np.ndarray, name: str) -> None:
    if truth.shape != other.shape:
        raise ConfigError(
            f"{name} {other.shape} and truth {truth.shape} have different shapes",
            where=name,
            fix="pass arrays on the same grid",
        )


def detection_scores(
    truth_mask: np.ndarray, predicted_mask: np.ndarray, *, valid: np.ndarray | None = None
) -> DetectionScores:
    """Precision, recall and F1 of a binary mask (e.g. a plume mask) against the truth.

    Parameters
    ----------
    truth_mask, predicted_mask
        Boolean masks of the same shape (non-zero values count as positive).
    valid
        Optional boolean mask of the pixels to score (e.g. clear, in-swath); default all.

    Raises
    ------
    ConfigError
        The shapes differ.
    """
    truth = np.asarray(truth_mask).astype(bool)
    predicted = np.asarray(predicted_mask).astype(bool)
    _check_same_shape(truth, predicted, "predicted_mask")
    if valid is not None:
        keep = np.asarray(valid).astype(bool)
        _check_same_shape(truth, keep, "valid")
        truth, predicted = truth[keep], predicted[keep]
    tp = int(np.count_nonzero(truth & predicted))
    fp = int(np.count_nonzero(~truth & predicted))
    fn = int(np.count_nonzero(truth & ~predicted))
    return DetectionScores(
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        tp=tp,
        fp=fp,
        fn=fn,
    )


@dataclass(frozen=True)
class RetrievalScores:
    """Errors of a continuous estimate against the truth (see :func:`retrieval_scores`).

    Attributes
    ----------
    bias
        Mean of estimate − truth, in the data's units.
    rmse
        Root mean square of estimate − truth, in the data's units.
    pearson_r
        Pearson correlation coefficient; NaN with fewer than 2 pixels or a constant side.
    n
        Number of pixels scored (finite on both sides and valid).
    """

    bias: float
    rmse: float
    pearson_r: float
    n: int

    def as_dict(
        self, *, prefix: str = "", digits: int = 4, significant: int = 4
    ) -> dict[str, Metric]:
        """Flat, JSON-friendly dictionary of the scores.

        Keys ``bias``, ``rmse``, ``pearson_r``, ``n``, each starting with ``prefix``; bias and
        RMSE rounded to ``significant`` significant digits (they carry the data's units), r to
        ``digits`` decimals; undefined values ``None``.
        """
        out: dict[str, Metric] = {
            "bias": _round_significant(self.bias, significant),
            "rmse": _round_significant(self.rmse, significant),
            "pearson_r": _round(self.pearson_r, digits),
            "n": self.n,
        }
        return {prefix + key: value for key, value in out.items()}


def retrieval_scores(
    truth: np.ndarray, estimate: np.ndarray, *, valid: np.ndarray | None = None
) -> RetrievalScores:
    """Bias, RMSE and Pearson's r of ``estimate`` against ``truth``.

    Pixels where either value is NaN or infinite, or ``valid`` is False, are left out.
    Sums are computed in float64. With no pixel left, every score is NaN and ``n`` is 0.

    Raises
    ------
    ConfigError
        The shapes differ.
    """
    t = np.asarray(truth, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    _check_same_shape(t, e, "estimate")
    keep = np.isfinite(t) & np.isfinite(e)
    if valid is not None:
        v = np.asarray(valid).astype(bool)
        _check_same_shape(t, v, "valid")
        keep &= v
    t, e = t[keep], e[keep]
    n = int(t.size)
    if n == 0:
        return RetrievalScores(bias=math.nan, rmse=math.nan, pearson_r=math.nan, n=0)
    error = e - t
    bias = float(error.mean())
    rmse = float(np.sqrt(np.mean(error * error)))
    dt, de = t - t.mean(), e - e.mean()
    denominator = float(np.sqrt((dt * dt).sum() * (de * de).sum()))
    r = float((dt * de).sum()) / denominator if denominator > 0 else math.nan
    # Rounding can push |r| a hair past 1.
    r = max(-1.0, min(1.0, r)) if not math.isnan(r) else r
    return RetrievalScores(bias=bias, rmse=rmse, pearson_r=r, n=n)
