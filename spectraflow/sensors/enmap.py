"""DLR EnMAP L2A surface reflectance: instrument constants and band table."""

from __future__ import annotations

from importlib import resources

import numpy as np

from spectraflow.sensors.bands import BandTable

N_BANDS = 224
PIXEL_M = 30.0
GAIN = 1e-4
OFFSET = 0.0
NODATA = -32768
# Bands the L2A processor writes entirely as nodata (deep water-vapour absorption), as in the
# real product: 1290–1510 nm and 1725–1970 nm.
NODATA_NM = ((1290.0, 1510.0), (1725.0, 1970.0))
QUALITY_LAYERS = ("CLASSES", "CLOUD", "CLOUDSHADOW", "HAZE", "CIRRUS", "SNOW", "TESTFLAGS")


def enmap_band_table() -> BandTable:
    """The 224 EnMAP bands (centres and FWHM of DLR's published band characterisation).

    Wavelengths ascend with the VNIR and SWIR channels interleaved around 900–1000 nm.
    """
    text = resources.files("spectraflow.sensors").joinpath("data/enmap_bands.csv").read_text()
    rows = np.array([line.split(",") for line in text.strip().splitlines()[1:]], dtype=float)
    wl, fwhm = rows[:, 1], rows[:, 2]
    good = np.ones(len(wl), dtype=bool)
    for lo, hi in NODATA_NM:
        good &= ~((wl >= lo) & (wl <= hi))
    return BandTable.from_arrays(
        wl,
        fwhm,
        name=[str(int(n)) for n in rows[:, 0]],
        scale=GAIN,
        offset=OFFSET,
        good=good,
    )
