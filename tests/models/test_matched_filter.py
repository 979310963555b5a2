"""The CH4 matched filter: exact against a plain reference, right against injected truth."""

from __future__ import annotations

import h5netcdf
import numpy as np
import pytest
import torch

from spectraflow.catalog import find_scene
from spectraflow.cube import ingest, open_cube
from spectraflow.errors import ModelError
from spectraflow.models import load_model
from spectraflow.models.filter_math import (
    SCALE,
    FilterSettings,
    apply_filter,
    filter_statistics,
)
from spectraflow.models.plume import plume_mask
from spectraflow.simulate import simulate_scene

ROBUST = FilterSettings(iterations=5, albedo=True, nonnegative=True, sparse=True, shrinkage=0.0)
PRODUCTION = FilterSettings()


def _synthetic(plume: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G, N, b) reflectance of G columns with correlated noise, a plume in pixels 40–59."""
    rng = np.random.default_rng(seed)
    g, n, b = 8, 600, 24
    k = -np.abs(rng.normal(1.4e-5, 0.5e-5, b))
    mix = np.eye(b) + 0.2 * rng.normal(0, 0.2, (b, b))
    base = rng.uniform(0.1, 0.4, b)
    albedo = rng.uniform(0.6, 1.4, (g, n, 1))
    c = np.zeros((g, n))
    c[:, 40:60] = plume
    x = albedo * base * (1 + k * c[..., None]) + rng.normal(0, 0.002, (g, n, b)) @ mix
    return x, k, c


def _band_major(x: np.ndarray) -> torch.Tensor:
    """(G, N, b) pixels as the filter takes them: (G, b, N) float32."""
    return torch.tensor(x.transpose(0, 2, 1), dtype=torch.float32)


def _reference(x: np.ndarray, k: np.ndarray, s: FilterSettings) -> np.ndarray:
    """mag1c's algorithm written plainly: the covariance recomputed from the data every step."""
    out = []
    for xg in x:
        mu = xg.mean(0)
        r = xg @ mu / (mu @ mu) if s.albedo else np.ones(len(xg))
        t = k * SCALE * mu
        cov = (xg - mu).T @ (xg - mu) / len(xg)
        cit = np.linalg.solve(cov, t)
        alpha = (xg - mu) @ cit / (r * (t @ cit))
        alpha = np.maximum(alpha, 0) if s.nonnegative else alpha
        for _ in range(s.iterations):
            reg = 1 / (r * (alpha + 1e-9))
            mod = xg - (r * alpha)[:, None] * t
            mu = mod.mean(0)
            t = k * SCALE * mu
            cov = (mod - mu).T @ (mod - mu) / len(xg)
            cit = np.linalg.solve(cov, t)
            norm = max(t @ cit, 1.0)
            alpha = np.maximum(((xg - mu) @ cit - reg) / (r * norm), 0)
        out.append(alpha * SCALE)
    return np.array(out)


@pytest.mark.parametrize("settings", [ROBUST, FilterSettings(shrinkage=0.0)])
def test_rank2_updates_equal_recomputing_the_covariance(settings):
    x, k, _ = _synthetic(plume=1500.0)
    xt = _band_major(x)
    stats = filter_statistics(
        xt, torch.ones(x.shape[:2], dtype=torch.bool), torch.tensor(k), settings
    )
    enhancement, _, _ = apply_filter(xt, stats, settings)
    reference = _reference(x.astype(np.float32).astype(np.float64), k, settings)
    # Per-pixel arithmetic is float32: a few pixels differ by up to ~1 ppm·m (noise: ~300).
    np.testing.assert_allclose(enhancement.numpy(), reference, rtol=1e-3, atol=2.0)


def test_zero_plume_gives_a_zero_mean_map_and_honest_uncertainty():
    x, k, _ = _synthetic(plume=0.0, seed=3)
    xt = _band_major(x)
    use = torch.ones(x.shape[:2], dtype=torch.bool)
    enhancement, sensitivity, uncertainty = apply_filter(
        xt, filter_statistics(xt, use, torch.tensor(k), PRODUCTION), PRODUCTION
    )
    e = enhancement.numpy()
    assert abs(e.mean()) < 0.05 * e.std()
    # The stated uncertainty is the spread of the answers (within sampling error).
    assert 0.8 < e.std() / float(uncertainty.mean()) < 1.25
    assert abs(float(sensitivity.mean()) - 1.0) < 0.05


def test_recovers_an_injected_plume_within_5_percent():
    settings = ROBUST
    x, k, c = _synthetic(plume=1500.0, seed=7)
    xt = _band_major(x)
    use = torch.ones(x.shape[:2], dtype=torch.bool)
    enhancement = apply_filter(xt, filter_statistics(xt, use, torch.tensor(k), settings), settings)[
        0
    ]
    ratio = float(enhancement[torch.tensor(c > 0)].mean()) / 1500.0
    assert abs(ratio - 1) < 0.05, ratio


def test_robust_and_production_agree_where_they_should():
    x, k, c = _synthetic(plume=2000.0, seed=5)
    xt = _band_major(x)
    use = torch.ones(x.shape[:2], dtype=torch.bool)
    plain = FilterSettings(shrinkage=0.0)
    robust0 = FilterSettings(iterations=0, albedo=False, nonnegative=False, shrinkage=0.0)
    a = apply_filter(xt, filter_statistics(xt, use, torch.tensor(k), plain), plain)[0]
    b = apply_filter(xt, filter_statistics(xt, use, torch.tensor(k), robust0), robust0)[0]
    torch.testing.assert_close(a, b)  # the robust code without its options is the plain filter
    robust = apply_filter(xt, filter_statistics(xt, use, torch.tensor(k), ROBUST), ROBUST)[0]
    production = apply_filter(
        xt, filter_statistics(xt, use, torch.tensor(k), PRODUCTION), PRODUCTION
    )[0]
    inside = torch.tensor(c > 0)
    for answer in (robust, production):  # both find the plume's strength ...
        assert abs(float(answer[inside].mean()) / 2000.0 - 1) < 0.1
    # ... and differ where they should: the robust variant is sparse and non-negative.
    assert float(robust[~inside].min()) == 0 and float((robust[~inside] == 0).float().mean()) > 0.5
    assert float(production[~inside].min()) < 0


@pytest.fixture(scope="module")
def emit_cube(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emit")
    sim = simulate_scene("emit", out=tmp / "src", size="demo")
    url = ingest(find_scene(sim.item_path), out=tmp / "cubes")
    with h5netcdf.File(sim.item_path.parent / "truth_sensor_geometry.nc", "r") as f:
        truth = np.asarray(f["ch4_ppm_m"][...])
    return open_cube(url), truth


@pytest.mark.parametrize("name", ["ch4-mf", "ch4-mag1c"])
def test_retrieval_from_a_simulated_emit_cube(emit_cube, name):
    cube, truth = emit_cube
    model = load_model(name, device="cpu")
    stats = model.statistics(cube)
    assert stats.grouping == "per-column" and stats.filter.mean.shape[1] == cube.sizes["sample"]
    result = model.retrieve(cube, stats)
    enhancement = result["ch4_enhancement"].values
    assert result["ch4_enhancement"].attrs["units"] == "ppm m" and "glt_x" in result
    assert np.isnan(enhancement[~cube["valid"].values]).all()
    # Tiles give the first pass's answer whatever the tiling (to float32 rounding): no seams.
    rechunked = model.retrieve(cube.chunk({"line": 100, "sample": 70}), stats)
    np.testing.assert_allclose(
        rechunked["ch4_enhancement"].values, enhancement, rtol=1e-5, atol=0.1
    )
    plume, background = truth > 300, truth == 0
    used = model.statistics_mask(cube).compute()  # clear land pixels
    if name == "ch4-mag1c":  # albedo-corrected: the plume's strength (demo scene: ~100 px)
        ratio = np.nanmean(enhancement[plume]) / truth[plume].mean()
        assert abs(ratio - 1) < 0.25, ratio
        found = plume_mask(enhancement, sigma=result["uncertainty"].values) > 0
        # The demo scene's plume is faint against its noise: the mask finds it far more often
        # than it flags clear background (docs/models.md has the full-size figures).
        assert found[truth > 500].mean() > 5 * found[background & used].mean()
    else:  # negative values kept: a zero-mean background
        values = enhancement[background & used]
        assert abs(values.mean()) < 0.1 * values.std()


def test_a_scene_the_statistics_cannot_use_says_why(emit_cube):
    cube, _ = emit_cube
    model = load_model("ch4-mf", device="cpu")
    short = cube.isel(line=slice(0, 40))  # fewer lines per column than bands
    with pytest.raises(ModelError, match=r"too few clear pixels .* at most \d+ per column"):
        model.statistics(short)
    hidden = cube.assign(valid=cube["valid"] & False)
    with pytest.raises(ModelError, match="no pixel of the scene can enter"):
        model.statistics(hidden)
