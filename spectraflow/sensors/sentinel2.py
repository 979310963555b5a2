"""Copernicus Sentinel-2 MSI L2A: band definitions and the processing-baseline offset rule."""

from __future__ import annotations

from typing import NamedTuple

from spectraflow.sensors.bands import BandTable


class S2Band(NamedTuple):
    """One MSI band as the L2A product ships it."""

    name: str
    common_name: str
    wavelength_nm: float
    fwhm_nm: float
    resolution_m: int


# L2A reflectance bands (B10 cirrus is not in L2A), centres and widths as Earth Search lists them.
BANDS: tuple[S2Band, ...] = (
    S2Band("B01", "coastal", 443.0, 27.0, 60),
    S2Band("B02", "blue", 490.0, 98.0, 10),
    S2Band("B03", "green", 560.0, 45.0, 10),
    S2Band("B04", "red", 665.0, 38.0, 10),
    S2Band("B05", "rededge1", 704.0, 19.0, 20),
    S2Band("B06", "rededge2", 740.0, 18.0, 20),
    S2Band("B07", "rededge3", 783.0, 28.0, 20),
    S2Band("B08", "nir", 842.0, 145.0, 10),
    S2Band("B8A", "nir08", 865.0, 33.0, 20),
    S2Band("B09", "nir09", 945.0, 26.0, 60),
    S2Band("B11", "swir16", 1610.0, 143.0, 20),
    S2Band("B12", "swir22", 2190.0, 242.0, 20),
)
QUANTIFICATION = 10000.0
BOA_ADD_OFFSET = -1000.0
NODATA = 0
SCL_CLASSES = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}


def offset_applies(processing_baseline: str) -> bool:
    """Whether DNs carry the +1000 offset (processing baseline 04.00 and later)."""
    major, _, minor = processing_baseline.partition(".")
    return (int(major), int(minor or 0)) >= (4, 0)


def sentinel2_band_table(processing_baseline: str = "05.10") -> BandTable:
    """The 12 L2A reflectance bands with the DN scaling of ``processing_baseline``."""
    offset = BOA_ADD_OFFSET / QUANTIFICATION if offset_applies(processing_baseline) else 0.0
    return BandTable.from_arrays(
        [b.wavelength_nm for b in BANDS],
        [b.fwhm_nm for b in BANDS],
        name=[b.name for b in BANDS],
        scale=1.0 / QUANTIFICATION,
        offset=offset,
    )
