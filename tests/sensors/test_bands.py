import numpy as np
import pytest

from spectraflow.sensors.bands import BandTable, gaussian_response
from spectraflow.sensors.emit import emit_band_table
from spectraflow.sensors.enmap import enmap_band_table
from spectraflow.sensors.sentinel2 import offset_applies, sentinel2_band_table


def test_response_columns_sum_to_one_and_peak_at_centre():
    src = np.arange(400.0, 1000.0, 1.0)
    r = gaussian_response(src, np.array([500.0, 733.3]), np.array([10.0, 25.0]))
    np.testing.assert_allclose(r.sum(axis=0), 1.0)
    assert src[r[:, 0].argmax()] == 500.0
    assert abs(src[r[:, 1].argmax()] - 733.3) < 1.0


def test_response_of_linear_spectrum_is_value_at_centre():
    src = np.arange(350.0, 2550.0, 5.0)
    centre = np.array([600.0, 1234.5, 2100.0])
    r = gaussian_response(src, centre, np.array([8.5, 10.0, 40.0]))
    np.testing.assert_allclose((0.001 * src) @ r, 0.001 * centre, rtol=1e-6)


def test_band_far_from_source_falls_back_to_nearest_sample():
    r = gaussian_response(np.array([1400.0, 1500.0]), np.array([500.0]), np.array([10.0]))
    assert r[0, 0] == 1.0


def test_band_table_rejects_ragged_columns():
    # pydantic wraps the SceneFormatError raised in validation; both are ValueErrors.
    with pytest.raises(ValueError, match="different lengths"):
        BandTable(
            name=("a",),
            wavelength_nm=(1.0, 2.0),
            fwhm_nm=(1.0,),
            scale=(1.0,),
            offset=(0.0,),
            good=(True,),
        )


def test_sensor_tables_match_the_real_products():
    emit = emit_band_table()
    assert len(emit) == 285
    assert emit.wavelengths[0] == pytest.approx(381.0, abs=0.1)
    assert emit.wavelengths[-1] == pytest.approx(2492.9, abs=0.1)
    assert emit.fwhms.min() >= 8.4 and emit.fwhms.max() <= 8.8
    bad = emit.wavelengths[~emit.good_mask]
    assert ((bad > 1320) & (bad < 1440) | (bad > 1765) & (bad < 1965)).all()

    enmap = enmap_band_table()
    assert len(enmap) == 224
    assert np.all(np.diff(enmap.wavelengths) > 0)
    assert set(enmap.scale) == {1e-4}

    s2 = sentinel2_band_table("05.10")
    assert len(s2) == 12 and s2.offset[0] == pytest.approx(-0.1)
    assert sentinel2_band_table("03.01").offset[0] == 0.0


@pytest.mark.parametrize(
    ("baseline", "expected"), [("02.14", False), ("04.00", True), ("05.11", True)]
)
def test_processing_baseline_rule(baseline, expected):
    assert offset_applies(baseline) is expected


def test_band_table_is_hashable_and_frozen():
    t = emit_band_table()
    assert hash(t) == hash(emit_band_table())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        t.name = ("x",)  # type: ignore[misc]
