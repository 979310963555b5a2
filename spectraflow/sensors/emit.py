"""NASA EMIT L2A reflectance: instrument constants and band table."""

from __future__ import annotations

import numpy as np

from spectraflow.sensors.bands import BandTable

N_BANDS = 285
CROSSTRACK = 1242
DOWNTRACK = 1280
FIRST_NM = 381.00558
LAST_NM = 2492.9934
PIXEL_M = 60.0
ORTHO_PIXEL_DEG = 0.00054223252025636698
FILL = -9999.0
BAD_BAND_VALUE = -0.1
# Water-vapour windows where the L2A product flags bands bad (good_wavelengths = 0).
WATER_VAPOUR_NM = ((1325.0, 1435.0), (1770.0, 1962.0))
MASK_BANDS = (
    "Cloud flag",
    "Cirrus flag",
    "Water flag",
    "Spacecraft Flag",
    "Dilated Cloud Flag",
    "AOD550",
    "H2O (g cm-2)",
    "Aggregate Flag",
)


def emit_band_table() -> BandTable:
    """The 285 EMIT bands: centres 381–2493 nm, FWHM 8.4–8.8 nm, water-vapour windows bad."""
    wl = np.linspace(FIRST_NM, LAST_NM, N_BANDS)
    # FWHM varies smoothly across the focal plane (8.4–8.8 nm in the real product).
    fwhm = 8.6 + 0.2 * np.cos(np.linspace(0.0, 2.0 * np.pi, N_BANDS))
    good = np.ones(N_BANDS, dtype=bool)
    for lo, hi in WATER_VAPOUR_NM:
        good &= ~((wl >= lo) & (wl <= hi))
    return BandTable.from_arrays(wl, fwhm, good=good)
