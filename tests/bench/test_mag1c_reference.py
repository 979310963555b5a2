from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.mag1c_reference import mag1c_template, run_fastmag1c, run_mag1c

LINES, SAMPLES = 160, 24
PLUME_PPM_M = 1000.0


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance-like columns with a Beer–Lambert CH4 plume from mag1c's own template."""
    rng = np.random.default_rng(0)
    wl = np.arange(2050.0, 2520.0, 7.4)  # straddles the 2122–2488 nm window
    fwhm = np.full_like(wl, 8.5)
    template = mag1c_template(wl, fwhm)
    base = 0.25 + 0.1 * np.sin(wl / 60.0)
    albedo = rng.uniform(0.4, 1.6, (LINES, SAMPLES, 1))
    tilt = 1 + 0.05 * rng.standard_normal((LINES, SAMPLES, 1)) * (wl - 2300) / 200
    ppm = np.zeros((LINES, SAMPLES))
    ppm[60:70, 5:15] = PLUME_PPM_M
    x = albedo * base * tilt * np.exp(template * ppm[..., None] / 1e5)
    x = (x + 0.001 * rng.standard_normal(x.shape)).astype(np.float32)
    x[3, 2, :] = -9999.0  # fill pixel
    x[10, 4, 7] = np.nan  # NaN outside the window: pixel stays valid
    x[:, 20, :] = np.nan  # dead column
    x[:, :, 1] = -0.1  # bad band (outside the window anyway)
    return x, wl, fwhm, ppm


def test_template_is_negative_absorption_in_window() -> None:
    wl = np.array([2150.0, 2300.0, 2350.0])
    t = mag1c_template(wl, np.full(3, 8.5))
    assert t.shape == (3,)
    assert np.all(t < 0)
    assert t[2] < t[0]  # stronger absorption near 2350 nm than at 2150 nm


def test_mag1c_and_fastmag1c_agree_and_find_the_plume(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, wl, fwhm, ppm = scene
    cholesky = torch.cholesky
    a = run_mag1c(x, wl, fwhm)
    assert torch.cholesky is cholesky  # alias restored
    b = run_fastmag1c(x, wl, fwhm)
    assert a.shape == b.shape == (LINES, SAMPLES)
    assert a.dtype == b.dtype == np.float32

    invalid = np.zeros((LINES, SAMPLES), dtype=bool)
    invalid[3, 2] = True
    invalid[:, 20] = True
    np.testing.assert_array_equal(np.isnan(a), invalid)
    np.testing.assert_array_equal(np.isnan(b), invalid)

    ok = ~invalid
    assert np.abs(a[ok] - b[ok]).max() < 0.1
    assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.99999

    plume = ppm > 0
    assert 0.8 * PLUME_PPM_M < a[plume].mean() < 1.2 * PLUME_PPM_M
    assert np.nanmedian(a[~plume]) == 0.0  # sparse, non-negative background
    assert np.nanmean(a[~plume]) < 0.1 * PLUME_PPM_M


def test_without_albedo_mag1c_runs_and_fastmag1c_refuses(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x, wl, fwhm, ppm = scene
    a = run_mag1c(x[:, :8], wl, fwhm, albedo=False, iterations=5)
    assert np.nanmean(a[ppm[:, :8] > 0]) > 0.5 * PLUME_PPM_M
    with pytest.raises(ValueError, match="albedo"):
        run_fastmag1c(x, wl, fwhm, albedo=False)
