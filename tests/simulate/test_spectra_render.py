import numpy as np
import pytest

from spectraflow.sensors.absorption import CH4_LEVELS_PPM_M, ch4_log_transmittance
from spectraflow.sensors.emit import emit_band_table
from spectraflow.sensors.sentinel2 import sentinel2_band_table
from spectraflow.simulate.render import NOISE, Conditions, class_endmembers, render
from spectraflow.simulate.spectra import (
    GRID_NM,
    apply_ch4,
    earthlib_library,
    resample,
    water_reflectance,
)
from spectraflow.simulate.world import CLASS_INDEX, PRESETS, Wind, World


def test_earthlib_library_loads_real_spectra():
    lib = earthlib_library()
    assert lib.reflectance.shape == (7261, GRID_NM.size)
    assert len(lib.select(("char",))) == 21
    soil = lib.reflectance[lib.select(("soil",))].mean(axis=0)
    # Soils brighten from blue to SWIR-1.
    assert soil[np.searchsorted(GRID_NM, 1650)] > soil[np.searchsorted(GRID_NM, 450)]


def test_water_is_dark_beyond_the_red_edge():
    w = water_reflectance()
    assert 520 < GRID_NM[w.argmax()] < 600
    assert w[np.searchsorted(GRID_NM, 1600)] < 0.006


def test_vegetation_endmembers_have_a_red_edge():
    em = resample(class_endmembers(1), sentinel2_band_table())
    red, nir = 3, 7  # B04, B08
    for name in ("tree_cover", "cropland"):
        assert (em[CLASS_INDEX[name], :, nir] > 2.5 * em[CLASS_INDEX[name], :, red]).all()


def test_ch4_absorbs_only_in_the_swir_and_grows_with_concentration():
    bands = emit_band_table()
    log_t = ch4_log_transmittance(bands)
    assert log_t.shape == (len(CH4_LEVELS_PPM_M), len(bands))
    np.testing.assert_array_equal(log_t[0], 0.0)
    assert (log_t[:, bands.wavelengths < 1350] == 0).all()
    strongest = log_t[-1].argmin()
    assert np.abs(log_t[-1, bands.wavelengths < 1550]).max() < 0.1 * abs(log_t[-1, strongest])
    assert 2200 < bands.wavelengths[strongest] < 2400
    assert np.all(np.diff(log_t[:, strongest]) < 0)


def test_beer_lambert_interpolates_between_levels():
    bands = emit_band_table()
    log_t = ch4_log_transmittance(bands)
    refl = np.full((3, len(bands)), 0.3)
    out = apply_ch4(refl, np.array([0.0, 1000.0, 1500.0]), log_t)
    np.testing.assert_allclose(out[0], 0.3)
    np.testing.assert_allclose(out[1], 0.3 * np.exp(log_t[2]))
    np.testing.assert_allclose(out[2], 0.3 * np.exp(0.5 * (log_t[2] + log_t[3])))


@pytest.fixture(scope="module")
def rendered():
    world = World(PRESETS["permian"])
    cond = Conditions(
        seed=4, wind=Wind(45.0, 3.0), cloud_cover=0.15, sun_zenith_deg=30.0, sun_azimuth_deg=150.0
    )
    xs = np.arange(-1200.0, 1200.0, 30.0)[None, :] + 15
    ys = np.arange(1200.0, -1200.0, -30.0)[:, None] - 15
    return render(
        world,
        cond,
        emit_band_table(),
        xs,
        ys,
        col_step=(30.0, 0.0),
        row_step=(0.0, -30.0),
        noise=NOISE["emit"],
        rng=np.random.default_rng(0),
    )


def test_render_outputs_are_consistent(rendered):
    r = rendered
    assert r.reflectance.shape == (80, 80, 285) and r.reflectance.dtype == np.float32
    np.testing.assert_allclose(r.fractions.sum(axis=0), 1.0, atol=1e-6)
    mixed = (r.fractions.max(axis=0) < 1.0).mean()
    assert 0.02 < mixed < 0.6  # sub-pixel mixing at edges only
    assert 0 < r.cloud.mean() < 0.5
    assert not (r.cloud & r.cloud_shadow).any()
    assert r.ch4_ppm_m.max() > 1000.0  # the source near the centre is in view
    assert 0.0 < np.nanmedian(r.reflectance) < 0.6


def test_clouds_are_bright_and_shadows_dark(rendered):
    r = rendered
    vis = r.reflectance[..., 30]
    clear = ~r.cloud & ~r.cloud_shadow
    assert vis[r.cloud].mean() > vis[clear].mean() + 0.2
    if r.cloud_shadow.sum() > 20:
        assert vis[r.cloud_shadow].mean() < vis[clear].mean()


def test_noise_matches_its_sigma():
    world = World(PRESETS["permian"])
    cond = Conditions(
        seed=1, wind=Wind(0.0, 3.0), cloud_cover=0.0, sun_zenith_deg=30.0, sun_azimuth_deg=150.0
    )
    xs = np.arange(0.0, 600.0, 30.0)[None, :]
    ys = np.arange(0.0, -600.0, -30.0)[:, None]
    args = (world, cond, emit_band_table(), xs, ys)
    kw = {"col_step": (30.0, 0.0), "row_step": (0.0, -30.0), "noise": NOISE["enmap"]}
    a = render(*args, **kw, rng=np.random.default_rng(1))
    b = render(*args, **kw, rng=np.random.default_rng(2))
    z = (a.reflectance - b.reflectance) / (np.sqrt(2) * a.noise_sigma)
    assert z.std() == pytest.approx(1.0, abs=0.05)
