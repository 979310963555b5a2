from __future__ import annotations

import numpy as np
import pytest

from spectraflow.errors import ConfigError
from spectraflow.models.chips import augment, sample_chips, sparse_labels


def _imbalanced(size: int = 120) -> np.ndarray:
    """Class 1 on ~95 % of the image, class 2 in small squares away from the edges (~5 %)."""
    labels = np.ones((size, size), dtype=np.uint8)
    for row in range(20, size - 20, 25):
        for col in range(20, size - 20, 25):
            labels[row : row + 6, col : col + 6] = 2  # 16 squares of 36 px = 4 %
    return labels


def _window_fraction(usable: np.ndarray, corners: np.ndarray, chip: int) -> np.ndarray:
    return np.array([usable[r : r + chip, c : c + chip].mean() for r, c in corners])


def test_balanced_sampling_evens_out_a_rare_class() -> None:
    labels = _imbalanced()
    assert 0.03 < (labels == 2).mean() < 0.06
    chip, half = 16, 8
    corners = sample_chips(labels, chip=chip, count=4000, rng=np.random.default_rng(0))
    centres = labels[corners[:, 0] + half, corners[:, 1] + half]
    assert 0.45 < (centres == 2).mean() < 0.55
    plain = sample_chips(labels, chip=chip, count=4000, rng=np.random.default_rng(0), balance=False)
    plain_centres = labels[plain[:, 0] + half, plain[:, 1] + half]
    assert (plain_centres == 2).mean() < 0.1


def test_chips_lie_inside_the_image_and_are_reproducible() -> None:
    labels = _imbalanced()[:70, :97]  # non-square, sizes not multiples of the chip
    labels[0, :] = 3  # labels on the edges: their chips are shifted inwards
    labels[:, -1] = 4
    chip = 24
    corners = sample_chips(labels, chip=chip, count=3000, rng=np.random.default_rng(5))
    assert corners.shape == (3000, 2)
    assert corners.dtype == np.int64
    assert corners.min() >= 0
    assert corners[:, 0].max() <= 70 - chip
    assert corners[:, 1].max() <= 97 - chip
    # Edge classes are reached, and the chip contains its (edge) centre pixel.
    assert corners[:, 0].min() == 0
    assert corners[:, 1].max() == 97 - chip
    again = sample_chips(labels, chip=chip, count=3000, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(corners, again)


def test_min_labelled_and_valid_are_respected() -> None:
    rng = np.random.default_rng(2)
    labels = np.zeros((96, 96), dtype=np.uint8)
    labels[10:40, 10:40] = rng.integers(1, 4, (30, 30))  # one dense labelled block
    labels[rng.integers(0, 96, 60), rng.integers(0, 96, 60)] = 4  # isolated labels
    valid = np.ones((96, 96), dtype=bool)
    valid[10:40, 25:40] = False  # half the block has no valid input
    chip = 16
    corners = sample_chips(labels, chip=chip, count=2000, rng=rng, valid=valid, min_labelled=0.5)
    usable = (labels != 0) & valid
    assert _window_fraction(usable, corners, chip).min() >= 0.5
    # Isolated labels cannot be centres of such chips, but the block is sampled.
    centres = corners + chip // 2
    assert (usable[centres[:, 0], centres[:, 1]]).mean() > 0.9
    loose = sample_chips(labels, chip=chip, count=2000, rng=rng, valid=valid, min_labelled=0.0)
    assert _window_fraction(usable, loose, chip).min() < 0.5


def test_sample_chips_explains_impossible_requests() -> None:
    rng = np.random.default_rng(0)
    labels = np.ones((10, 12), dtype=np.uint8)
    with pytest.raises(ValueError, match="smaller than a chip"):
        sample_chips(labels, chip=11, count=1, rng=rng)
    with pytest.raises(ConfigError, match="no pixel is both labelled and valid"):
        sample_chips(np.zeros((10, 10), dtype=np.uint8), chip=4, count=1, rng=rng)
    with pytest.raises(ConfigError, match="no pixel is both labelled and valid"):
        sample_chips(labels, chip=4, count=1, rng=rng, valid=np.zeros((10, 12), dtype=bool))
    sparse = np.zeros((40, 40), dtype=np.uint8)
    sparse[::10, ::10] = 1
    with pytest.raises(ConfigError, match="lower min_labelled"):
        sample_chips(sparse, chip=8, count=1, rng=rng, min_labelled=0.25)


def test_sparse_labels_keep_a_stratified_fraction() -> None:
    rng = np.random.default_rng(4)
    labels = np.ones((200, 200), dtype=np.uint8)
    labels[:, :20] = 0  # unlabelled strip
    labels[50:70, 50:90] = 2  # 800 px
    labels[5, 100:103] = 3  # 3 px: fewer than per_class_min
    kept = sparse_labels(labels, fraction=0.01, rng=rng, per_class_min=5)
    assert kept.dtype == labels.dtype and kept.shape == labels.shape
    n1 = int((labels == 1).sum())
    assert (kept == 1).sum() == round(0.01 * n1)
    assert (kept == 2).sum() == 8
    assert (kept == 3).sum() == 3  # all of them
    # Kept pixels keep their class; nothing appears where there was no label.
    nonzero = kept != 0
    np.testing.assert_array_equal(kept[nonzero], labels[nonzero])
    # 1 % of 800 is 8; with a larger minimum the minimum wins.
    assert (sparse_labels(labels, fraction=0.01, rng=rng, per_class_min=50) == 2).sum() == 50
    with pytest.raises(ConfigError, match="fraction"):
        sparse_labels(labels, fraction=0.0, rng=rng)


def test_augment_keeps_image_and_labels_aligned() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(1, 10, (12, 17)).astype(np.uint8)
    image = rng.random((5, 12, 17)).astype(np.float32)
    image[2] = labels  # band 2 carries the labels
    seen = set()
    for seed in range(40):
        out, lab = augment(image, labels, np.random.default_rng(seed), spectral_jitter=0.0)
        assert out.dtype == np.float32 and lab.dtype == np.uint8
        assert out.shape[1:] == lab.shape and out.shape[0] == 5
        np.testing.assert_array_equal(out[2], lab)
        seen.add(lab.tobytes() + bytes(lab.shape))
    assert len(seen) == 8  # every symmetry of the rectangle's square group shows up
    shapes = {augment(image, labels, np.random.default_rng(s))[1].shape for s in range(20)}
    assert shapes == {(12, 17), (17, 12)}


def test_augment_marker_pixel_moves_with_its_spectrum() -> None:
    rng = np.random.default_rng(8)
    image = rng.uniform(0.1, 0.3, (30, 16, 16)).astype(np.float32)
    labels = np.ones((16, 16), dtype=np.uint8)
    image[:, 3, 11] = np.linspace(0.9, 1.0, 30)  # a bright marker spectrum
    labels[3, 11] = 7
    image[:, 9, 2] = 0.0  # a masked pixel
    labels[9, 2] = 0
    before = image.copy()
    moved = set()
    for seed in range(16):
        out, lab = augment(image, labels, np.random.default_rng(seed), spectral_jitter=0.05)
        brightest = np.unravel_index(np.argmax(out.mean(axis=0)), lab.shape)
        assert tuple(np.argwhere(lab == 7)[0]) == brightest
        row, col = np.argwhere(lab == 0)[0]
        assert not out[:, row, col].any()  # masked pixels stay 0
        moved.add(brightest)
        np.testing.assert_array_equal(np.unique(lab), [0, 1, 7])
    assert len(moved) > 4
    np.testing.assert_array_equal(image, before)  # inputs untouched


def test_augment_jitter_is_small_and_smooth() -> None:
    rng = np.random.default_rng(9)
    bands = np.linspace(0, 1, 50)
    spectrum = 0.3 + 0.2 * np.sin(6 * bands)
    image = (spectrum[:, None, None] * rng.uniform(0.8, 1.2, (1, 8, 8))).astype(np.float32)
    labels = np.ones((8, 8), dtype=np.uint8)
    for seed in range(10):
        plain, _ = augment(image, labels, np.random.default_rng(seed), spectral_jitter=0.0)
        jittered, _ = augment(image, labels, np.random.default_rng(seed), spectral_jitter=0.02)
        change = jittered - plain
        assert np.abs(change).max() > 1e-4  # it does something
        assert np.abs(change / plain).max() < 0.15  # and not much
        # Per pixel the change is (gain − 1)·x + one smooth curve, so its band-to-band steps
        # are small next to its size (white noise would give steps as large as itself).
        steps = np.abs(np.diff(change, axis=0)).mean()
        assert steps < 0.2 * np.abs(change).mean()
    with pytest.raises(ConfigError, match="spectral_jitter"):
        augment(image, labels, rng, spectral_jitter=-0.1)
    with pytest.raises(ConfigError, match="do not match"):
        augment(image, labels[:4], rng)
