from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.models.metrics import (
    classification_scores,
    confusion_matrix,
    detection_scores,
    retrieval_scores,
)


def _pairs(counts: dict[tuple[int, int], int]) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction arrays holding each (truth, predicted) pair ``count`` times."""
    truth = np.concatenate([np.full(n, t) for (t, _), n in counts.items()]).astype(np.uint8)
    predicted = np.concatenate([np.full(n, p) for (_, p), n in counts.items()]).astype(np.uint8)
    return truth, predicted


def test_confusion_matrix_reads_label_rasters_and_skips_no_data() -> None:
    truth = np.array([[0, 1, 2], [3, 1, 2]], dtype=np.uint8)
    predicted = np.array([[1, 1, 3], [3, 0, 2]], dtype=np.uint8)
    m = confusion_matrix(truth, predicted, 3)
    # (0, 1) skipped: unlabelled; (1, 0) skipped: predicted no data.
    expected = [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64


def test_confusion_matrix_for_argmax_indices() -> None:
    truth = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 2])
    m = confusion_matrix(truth, predicted, 3, first=0, ignore=None)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert m.sum() == truth.size


def test_confusion_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"class value 4 is outside 1\.\.3"):
        confusion_matrix(np.array([1, 4]), np.array([1, 1]), 3)
    with pytest.raises(ConfigError, match="different shapes"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    # With ignore=None a 0 is a value like any other, outside 1..K.
    with pytest.raises(ConfigError, match="class value 0"):
        confusion_matrix(np.array([0, 1]), np.array([1, 1]), 3, ignore=None)


def test_kappa_of_the_textbook_example() -> None:
    # Cohen's kappa example (Wikipedia, "Cohen's kappa"): 50 proposals, two readers;
    # both yes 20, A yes / B no 5, A no / B yes 10, both no 15: p_o = 0.7, p_e = 0.5, κ = 0.4.
    truth, predicted = _pairs({(1, 1): 20, (1, 2): 5, (2, 1): 10, (2, 2): 15})
    m = confusion_matrix(truth, predicted, 2)
    np.testing.assert_array_equal(m, [[20, 5], [10, 15]])
    s = classification_scores(m, ["yes", "no"])
    assert s.overall_accuracy == pytest.approx(0.7)
    assert s.kappa == pytest.approx(0.4)
    # F1 = 2TP / (2TP + FP + FN); IoU = TP / (TP + FP + FN).
    assert s.per_class_f1["yes"] == pytest.approx(40 / 55)
    assert s.per_class_f1["no"] == pytest.approx(30 / 45)
    assert s.per_class_iou["yes"] == pytest.approx(20 / 35)
    assert s.per_class_iou["no"] == pytest.approx(15 / 30)
    assert s.mean_f1 == pytest.approx((40 / 55 + 30 / 45) / 2)
    assert s.mean_iou == pytest.approx((20 / 35 + 15 / 30) / 2)
    assert s.support == {"yes": 25, "no": 25}
    assert s.n == 50


def test_perfect_and_all_wrong_predictions() -> None:
    truth = np.array([1, 1, 2, 2, 3, 3])
    perfect = classification_scores(confusion_matrix(truth, truth, 3), ["a", "b", "c"])
    assert perfect.overall_accuracy == 1.0
    assert perfect.kappa == pytest.approx(1.0)
    assert perfect.mean_f1 == 1.0
    assert perfect.mean_iou == 1.0

    swapped = np.array([2, 2, 1, 1, 1, 1])
    wrong = classification_scores(
        confusion_matrix(np.array([1, 1, 2, 2, 2, 2]), swapped, 2), ["a", "b"]
    )
    assert wrong.overall_accuracy == 0.0
    assert wrong.per_class_f1 == {"a": 0.0, "b": 0.0}
    assert wrong.mean_iou == 0.0
    # p_o = 0, p_e = (2·4 + 4·2) / 36 = 4/9: κ = −(4/9) / (5/9) = −0.8.
    assert wrong.kappa == pytest.approx(-0.8)


def test_absent_classes_are_left_out_of_the_means() -> None:
    truth = np.array([1, 1, 2, 2])
    predicted = np.array([1, 1, 2, 4])
    s = classification_scores(confusion_matrix(truth, predicted, 4), ["a", "b", "c", "d"])
    # c: in neither → NaN, not in the means; d: only predicted (a false alarm) → 0, counted.
    assert math.isnan(s.per_class_f1["c"])
    assert math.isnan(s.per_class_iou["c"])
    assert s.per_class_f1["d"] == 0.0
    assert s.per_class_f1["b"] == pytest.approx(2 / 3)
    assert s.mean_f1 == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert s.mean_iou == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    flat = s.as_dict(prefix="lola_")
    assert flat["lola_f1_c"] is None
    assert flat["lola_support_d"] == 0
    assert flat["lola_oa"] == 0.75
    json.dumps(flat, allow_nan=False)  # JSON-friendly: no NaN


def test_as_dict_is_flat_and_rounded() -> None:
    truth, predicted = _pairs({(1, 1): 2, (1, 2): 1, (2, 2): 3})
    flat = classification_scores(confusion_matrix(truth, predicted, 2), ["x", "y"]).as_dict()
    assert flat["oa"] == round(5 / 6, 4)
    assert flat["n"] == 6
    assert {"kappa", "mean_f1", "miou", "f1_x", "iou_y", "support_x"} <= flat.keys()
    assert all(isinstance(v, int | float) for v in flat.values())


def test_kappa_is_undefined_for_a_single_identical_class() -> None:
    s = classification_scores(np.array([[5, 0], [0, 0]]), ["a", "b"])
    assert s.overall_accuracy == 1.0
    assert math.isnan(s.kappa)
    assert s.as_dict()["kappa"] is None


def test_classification_scores_rejects_bad_matrices() -> None:
    with pytest.raises(ConfigError, match="does not match 3 class names"):
        classification_scores(np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(ConfigError, match="counts no pixels"):
        classification_scores(np.zeros((2, 2)), ["a", "b"])


def test_scores_agree_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 2000)
    predicted = np.where(rng.random(2000) < 0.6, truth, rng.integers(1, 6, 2000))
    s = classification_scores(confusion_matrix(truth, predicted, 5), list("abcde"))
    assert s.kappa == pytest.approx(metrics.cohen_kappa_score(truth, predicted))
    assert s.mean_f1 == pytest.approx(metrics.f1_score(truth, predicted, average="macro"))
    assert s.mean_iou == pytest.approx(metrics.jaccard_score(truth, predicted, average="macro"))
    assert s.overall_accuracy == pytest.approx(metrics.accuracy_score(truth, predicted))


def test_detection_scores_by_hand() -> None:
    truth = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    predicted = np.array([[1, 0, 1, 0], [1, 0, 1, 1]], dtype=bool)
    s = detection_scores(truth, predicted)
    assert (s.tp, s.fp, s.fn) == (2, 3, 1)
    assert s.precision == pytest.approx(2 / 5)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(4 / 8)
    # Only the first row counts: tp 1, fp 1, fn 1.
    valid = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    v = detection_scores(truth, predicted, valid=valid)
    assert (v.tp, v.fp, v.fn) == (1, 1, 1)
    assert v.as_dict(prefix="plume_")["plume_f1"] == 0.5


def test_detection_scores_of_empty_masks() -> None:
    empty = np.zeros((3, 3), dtype=bool)
    s = detection_scores(empty, empty)
    assert math.isnan(s.precision) and math.isnan(s.recall) and math.isnan(s.f1)
    assert s.as_dict() == {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0}
    misses = detection_scores(~empty, empty)
    assert misses.recall == 0.0 and misses.f1 == 0.0 and math.isnan(misses.precision)


def test_retrieval_scores_by_hand_and_with_non_finite_values() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 7.0, 8.0])
    estimate = np.array([2.0, 3.0, 4.0, 5.0, 1.0, np.inf, 9.0])
    s = retrieval_scores(truth, estimate)
    # NaN truth and infinite estimate dropped: errors all +1, perfectly correlated.
    assert s.n == 5
    assert s.bias == pytest.approx(1.0)
    assert s.rmse == pytest.approx(1.0)
    assert s.pearson_r == pytest.approx(1.0)
    valid = np.array([True, True, True, False, True, True, False])
    v = retrieval_scores(truth, estimate, valid=valid)
    assert v.n == 3
    mixed = retrieval_scores(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0]))
    # errors 1, 0, −3: bias −2/3, rmse √(10/3); r of (0,1,2) vs (1,1,−1) = −√3/2.
    assert mixed.bias == pytest.approx(-2 / 3)
    assert mixed.rmse == pytest.approx(math.sqrt(10 / 3))
    assert mixed.pearson_r == pytest.approx(-math.sqrt(3) / 2)


def test_retrieval_scores_agree_with_numpy_and_round_significantly() -> None:
    rng = np.random.default_rng(1)
    truth = rng.gamma(2.0, 300.0, 5000)
    estimate = truth + rng.normal(25.0, 80.0, 5000)
    s = retrieval_scores(truth.astype(np.float32), estimate.astype(np.float32))
    assert s.pearson_r == pytest.approx(np.corrcoef(truth, estimate)[0, 1], abs=1e-6)
    assert s.bias == pytest.approx(np.mean(estimate - truth), rel=1e-4)
    flat = s.as_dict(prefix="ch4_")
    assert flat["ch4_rmse"] == float(f"{s.rmse:.4g}")
    assert flat["ch4_n"] == 5000


def test_retrieval_scores_without_pixels_or_variance() -> None:
    s = retrieval_scores(np.full(4, np.nan), np.ones(4))
    assert s.n == 0
    assert s.as_dict() == {"bias": None, "rmse": None, "pearson_r": None, "n": 0}
    constant = retrieval_scores(np.array([1.0, 2.0, 3.0]), np.full(3, 2.0))
    assert constant.bias == 0.0
    assert math.isnan(constant.pearson_r)
    with pytest.raises(ConfigError, match="different shapes"):
        retrieval_scores(np.ones(3), np.ones(4))
