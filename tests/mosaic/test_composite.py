"""Compositing policies on hand-computed stacks (scenes oldest → newest)."""

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.mosaic import POLICIES
from spectraflow.mosaic.composite import (
    check_policy,
    composite_classes,
    composite_continuous,
    pick_best,
    pick_latest,
    take,
)

NAN = np.nan

# Three scenes of 1 × 4 pixels. Pixel 0: all have data; 1: only the oldest; 2: the newest has
# no data; 3: none has data.
CLASSES = np.array([[[1, 2, 3, 0]], [[4, 0, 5, 0]], [[2, 0, 0, 0]]], dtype=np.uint8)
CONF = np.array([[[0.5, 0.6, 0.9, NAN]], [[0.9, NAN, 0.4, NAN]], [[0.7, NAN, NAN, NAN]]])


def test_latest_takes_the_newest_scene_with_data_and_keeps_gaps():
    cls, conf = composite_classes(CLASSES, CONF, policy="latest")
    assert cls.tolist() == [[2, 2, 5, 0]]
    np.testing.assert_allclose(conf, [[0.7, 0.6, 0.4, NAN]])
    assert cls.dtype == np.uint8 and conf.dtype == np.float32


def test_best_confidence_takes_the_most_confident_scene():
    cls, conf = composite_classes(CLASSES, CONF, policy="best-confidence")
    assert cls.tolist() == [[4, 2, 3, 0]]
    np.testing.assert_allclose(conf, [[0.9, 0.6, 0.9, NAN]])


def test_no_data_never_wins_even_with_a_high_confidence_value():
    classes = np.array([[[3]], [[0]]], dtype=np.uint8)
    conf = np.array([[[0.2]], [[0.99]]])  # a bogus confidence under the newer scene's no data
    for policy in ("latest", "best-confidence"):
        cls, c = composite_classes(classes, conf, policy=policy)
        assert cls.item() == 3 and c.item() == pytest.approx(0.2)


def test_a_scene_with_data_but_no_confidence_still_beats_no_data():
    index = pick_best(np.array([[[True]], [[False]]]), np.array([[[NAN]], [[0.9]]]))
    assert index.item() == 0


def test_ties_go_to_the_newer_scene():
    valid = np.ones((3, 1, 1), dtype=bool)
    assert pick_best(valid, np.full((3, 1, 1), 0.5)).item() == 2
    assert pick_latest(valid).item() == 2


def test_mean_of_class_probabilities_then_argmax():
    # Two scenes, labels (1, 2, 3), 1 × 2 pixels; the second scene has no data at pixel 1.
    probs = np.array(
        [
            [[[0.6, 0.1]], [[0.3, 0.2]], [[0.1, 0.7]]],
            [[[0.2, NAN]], [[0.5, NAN]], [[0.3, NAN]]],
        ]
    )
    classes = np.array([[[1, 3]], [[2, 0]]], dtype=np.uint8)
    cls, conf = composite_classes(
        classes, np.zeros((2, 1, 2)), policy="mean", probabilities=probs, labels=[1, 2, 3]
    )
    # pixel 0: means (0.4, 0.4, 0.2) → a tie resolved to the first label; pixel 1: scene 0 only.
    assert cls.tolist() == [[1, 3]]
    np.testing.assert_allclose(conf, [[0.4, 0.7]], rtol=1e-6)


def test_mean_of_classes_needs_probabilities():
    with pytest.raises(ConfigError, match="probabilities"):
        composite_classes(CLASSES, CONF, policy="mean")


VALUES = np.array([[[100.0, 50.0, NAN]], [[300.0, NAN, NAN]], [[NAN, 80.0, NAN]]])
SIGMA = np.array([[[30.0, 40.0, NAN]], [[40.0, NAN, NAN]], [[NAN, 10.0, NAN]]])


def test_continuous_latest_and_lowest_uncertainty():
    v, s = composite_continuous(VALUES, SIGMA, policy="latest")
    np.testing.assert_allclose(v, [[300.0, 80.0, NAN]])
    np.testing.assert_allclose(s, [[40.0, 10.0, NAN]])
    v, s = composite_continuous(VALUES, SIGMA, policy="best-confidence")
    np.testing.assert_allclose(v, [[100.0, 80.0, NAN]])
    np.testing.assert_allclose(s, [[30.0, 10.0, NAN]])


def test_continuous_mean_combines_uncertainties():
    v, s = composite_continuous(VALUES, SIGMA, policy="mean")
    np.testing.assert_allclose(v, [[200.0, 65.0, NAN]])
    # sqrt(30² + 40²) / 2 = 25; sqrt(40² + 10²) / 2
    np.testing.assert_allclose(s, [[25.0, np.sqrt(1700.0) / 2, NAN]], rtol=1e-6)
    assert v.dtype == np.float32


def test_take_fills_where_no_scene_has_data():
    stack = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    assert take(stack, np.array([[1, 0, -1]]), NAN).tolist()[0][:2] == [3.0, 1.0]
    assert np.isnan(take(stack, np.array([[1, 0, -1]]), NAN)[0, 2])


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        check_policy("median")
    assert err.value.where == "policy"
    assert all(p in err.value.fix for p in POLICIES)
    with pytest.raises(ConfigError):
        composite_continuous(VALUES, SIGMA, policy="max")
