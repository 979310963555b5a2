from __future__ import annotations

import numpy as np
import pytest

from bench.baselines import random_forest, spectral_angle_mapper
from spectraflow.errors import ConfigError

CLASSES = np.array([2, 3, 5, 9], dtype=np.uint8)  # not 0..K−1: predictions keep these values


def _spectra(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Separable classes: one absorption feature each, random brightness, a little noise."""
    rng = np.random.default_rng(seed)
    bands = np.linspace(400.0, 2500.0, 60)
    shapes = np.stack(
        [
            0.4 - 0.25 * np.exp(-(((bands - centre) / 120.0) ** 2))
            for centre in (700, 1200, 1700, 2200)
        ]
    )
    index = rng.integers(0, CLASSES.size, n)
    brightness = rng.uniform(0.5, 1.5, (n, 1))
    pixels = brightness * shapes[index] + rng.normal(0.0, 0.005, (n, bands.size))
    return pixels.astype(np.float32), CLASSES[index]


def test_spectral_angle_mapper_separates_separable_classes() -> None:
    train_x, train_y = _spectra(400, seed=0)
    x, y = _spectra(5000, seed=1)
    predicted = spectral_angle_mapper(train_x, train_y, x)
    assert predicted.shape == y.shape and predicted.dtype == np.uint8
    assert set(np.unique(predicted)) <= set(CLASSES)
    assert (predicted == y).mean() > 0.99
    # Brightness does not change a spectral angle.
    np.testing.assert_array_equal(spectral_angle_mapper(train_x, train_y, 3.0 * x), predicted)


def test_spectral_angle_mapper_uses_class_means() -> None:
    train_x = np.array([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0]])
    train_y = np.array([4, 4, 7])
    # Mean of class 4 is (1, 0.1); (1, 0.5) is at 21° from it and 63° from class 7's (0, 1).
    pixels = np.array([[1.0, 0.5], [0.4, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(spectral_angle_mapper(train_x, train_y, pixels), [4, 7, 4])


def test_random_forest_separates_separable_classes() -> None:
    train_x, train_y = _spectra(400, seed=2)
    x, y = _spectra(3000, seed=3)
    predicted = random_forest(train_x, train_y, x, n_estimators=50, seed=1)
    assert predicted.dtype == np.uint8
    assert (predicted == y).mean() > 0.98
    again = random_forest(train_x, train_y, x, n_estimators=50, seed=1)
    np.testing.assert_array_equal(predicted, again)


def test_baselines_reject_mismatched_bands() -> None:
    train_x, train_y = _spectra(20, seed=4)
    with pytest.raises(ConfigError, match="bands"):
        spectral_angle_mapper(train_x, train_y, train_x[:, :10])
    with pytest.raises(ConfigError, match="labels"):
        random_forest(train_x, train_y[:5], train_x)
