import numpy as np
import pytest

from spectraflow.errors import SimulationError
from spectraflow.simulate.noise import Fractal, ValueNoise, hash_uniform
from spectraflow.simulate.world import (
    CLASSES,
    KG_M2_PER_PPM_M,
    PRESETS,
    Wind,
    World,
    resolve_region,
)


def test_hash_is_uniform_and_deterministic():
    i, j = np.meshgrid(np.arange(200), np.arange(200))
    u = hash_uniform(7, i, j)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u, hash_uniform(7, i, j))
    assert not np.array_equal(u, hash_uniform(8, i, j))


def test_grid_and_point_sampling_agree():
    noise = ValueNoise(3, 250.0)
    xs = np.linspace(-1000, 1500, 37)[None, :]
    ys = np.linspace(900, -700, 23)[:, None]
    grid = noise.sample(xs, ys)
    points = noise.sample(*np.broadcast_arrays(xs, ys))
    np.testing.assert_allclose(grid, points, atol=1e-12)
    assert grid.min() >= -1.0 and grid.max() <= 1.0


def test_fractal_is_smooth_at_small_scales():
    f = Fractal(1, (800.0, 200.0), (1.0, 0.5))
    xs = np.arange(0.0, 2000.0, 5.0)[None, :]
    v = f.sample(xs, np.zeros((1, 1)))[0]
    assert np.abs(np.diff(v)).max() < 0.05


def test_land_cover_is_coherent_and_has_all_classes():
    world = World(PRESETS["permian"])
    xs = np.arange(-15000.0, 15000.0, 30.0)[None, :]
    ys = np.arange(15000.0, -15000.0, -30.0)[:, None]
    cls = world.class_index(xs, ys)
    counts = np.bincount(cls.ravel(), minlength=len(CLASSES))
    assert (counts > 0).all(), counts
    # Spatial coherence: most pixels share the class of their right neighbour.
    assert (cls[:, 1:] == cls[:, :-1]).mean() > 0.85


def test_same_ground_whatever_the_sampling():
    world = World(PRESETS["hunter-valley"])
    xs = np.arange(-600.0, 600.0, 10.0)[None, :]
    ys = np.arange(600.0, -600.0, -10.0)[:, None]
    fine = world.class_index(xs, ys)
    coarse = world.class_index(xs[:, ::6], ys[::6])
    np.testing.assert_array_equal(fine[::6, ::6], coarse)


def test_plume_mass_balance():
    """Cross-wind integral of the column equals emission rate / wind speed (kg/m)."""
    world = World(PRESETS["permian"])
    src = world.methane_sources()[0]
    wind = Wind(90.0, 4.0)  # towards east
    y = np.arange(-400.0, 400.0, 1.0)[:, None] + src.y
    x = np.full((1, 1), src.x + 600.0)
    ppm_m = world.methane(x, y, wind)[:, 0]
    kg_per_m = ppm_m.sum() * 1.0 * KG_M2_PER_PPM_M
    assert kg_per_m == pytest.approx(src.rate_kg_h / 3600.0 / wind.speed_m_s, rel=0.02)
    upwind = world.methane(np.full((1, 1), src.x - 300.0), y, wind)
    assert upwind.max() < 1.0


def test_regions():
    assert resolve_region(None).name == "permian"
    r = resolve_region("10.5,45.1")
    assert r.utm_epsg == 32632
    assert resolve_region("150.9,-32.4").utm_epsg == 32756
    with pytest.raises(SimulationError, match="unknown region"):
        resolve_region("atlantis")
    with pytest.raises(SimulationError, match="outside"):
        resolve_region("200,10")
