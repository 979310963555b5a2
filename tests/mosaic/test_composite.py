"""Compositing policies on hand-computed stacks (scenes oldest → newest)."""

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.mosaic import POLICIES
from spectraflow.mosaic.composite import (
    check_policy,
    composite_classes,
    composite_continuous,
    mean_classes,
    pick_best,
    pick_latest,
    take,
)

NAN = np.nan

# Three scenes of 1 × 4 pixels. Pixel 0: all have data; 1: only the oldest; 2: the newest has
# no data; 3: none has data.
CLASSES = np.array([[[1, 2, 3, 0]], [[4, 0, 5, 0]], [[2, 0, 0, 0]]], dtype=np.uint8)
CONF = np.array([[[0.5, 0.6, 0.9, NAN]], [[0.9, NAN, 0.4, NAN]], [[0.7, NAN, NAN, NAN]]])


def _classes(policy, classes=CLASSES, conf=CONF):
    """Class and confidence layers as a mosaic block takes them: the winner's confidence."""
    cls, index = composite_classes(classes, conf if policy != "latest" else None, policy=policy)
    return cls, take(np.asarray(conf, dtype=np.float32), index, NAN)


def test_latest_takes_the_newest_scene_with_data_and_keeps_gaps():
    cls, conf = _classes("latest")
    assert cls.tolist() == [[2, 2, 5, 0]]
    np.testing.assert_allclose(conf, [[0.7, 0.6, 0.4, NAN]])
    assert cls.dtype == np.uint8 and conf.dtype == np.float32


def test_best_confidence_takes_the_most_confident_scene():
    cls, conf = _classes("best-confidence")
    assert cls.tolist() == [[4, 2, 3, 0]]
    np.testing.assert_allclose(conf, [[0.9, 0.6, 0.9, NAN]])


def test_scenes_may_come_one_at_a_time():
    scenes = [c for c in CLASSES]  # a list of per-scene layers, confidences from a generator
    cls, index = composite_classes(scenes, (c for c in CONF), policy="best-confidence")
    assert cls.tolist() == [[4, 2, 3, 0]] and index.tolist() == [[1, 0, 0, -1]]


def test_no_data_never_wins_even_with_a_high_confidence_value():
    classes = np.array([[[3]], [[0]]], dtype=np.uint8)
    conf = np.array([[[0.2]], [[0.99]]])  # a bogus confidence under the newer scene's no data
    for policy in ("latest", "best-confidence"):
        cls, c = _classes(policy, classes, conf)
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
    cls, conf = mean_classes(iter(probs), labels=[1, 2, 3])  # one scene at a time
    # pixel 0: means (0.4, 0.4, 0.2) → a tie resolved to the first label; pixel 1: scene 0 only.
    assert cls.tolist() == [[1, 3]] and cls.dtype == np.uint8
    np.testing.assert_allclose(conf, [[0.4, 0.7]], rtol=1e-6)
    cls, conf = mean_classes(np.full((2, 3, 1, 1), NAN), labels=[1, 2, 3])
    assert cls.item() == 0 and np.isnan(conf.item())


def test_class_policies_need_what_they_rank_by():
    with pytest.raises(ValueError, match="probabilities"):
        composite_classes(CLASSES, CONF, policy="mean")
    with pytest.raises(ValueError, match="confidences"):
        composite_classes(CLASSES, None, policy="best-confidence")
    with pytest.raises(ConfigError):
        composite_classes(CLASSES, CONF, policy="median")


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
