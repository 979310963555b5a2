"""Surface, cloud and methane spectra for the simulator.

Surface spectra are measured or PROSAIL-simulated spectra from the ``earthlib`` spectral library
(400–2450 nm at 10 nm, water-absorption windows removed), put on a regular 5 nm grid from 350
to 2550 nm (linear interpolation across the gaps, end values held). Water, which earthlib lacks,
follows an analytic model. Methane absorption comes from the ``mag1c`` package's ``ch4.lut``
(radiance for 7 column enhancements, 0–16 000 ppm·m, at 31 800 wavelengths): for any band set
we form band-averaged log-transmittances ``log(L_b(c) / L_b(0))`` with the bands' Gaussian
responses and apply them with Beer–Lambert, interpolating linearly in ``c`` between levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from spectraflow.sensors.absorption import CH4_LEVELS_PPM_M, envi_header, package_dir
from spectraflow.sensors.bands import BandTable, gaussian_response

GRID_NM = np.arange(350.0, 2550.0 + 1e-9, 5.0)


@dataclass(frozen=True)
class SpectralLibrary:
    """Spectra on :data:`GRID_NM` with their earthlib class levels."""

    reflectance: np.ndarray  # (n_spectra, len(GRID_NM)), fraction 0-1
    level2: tuple[str, ...]
    level3: tuple[str, ...]

    def select(self, level3: tuple[str, ...]) -> np.ndarray:
        """Indices of spectra whose level-3 class is one of ``level3``."""
        return np.flatnonzero(np.isin(np.asarray(self.level3), level3))


@cache
def earthlib_library() -> SpectralLibrary:
    """Load earthlib's ``spectra.sli`` (ENVI spectral library) onto the 5 nm grid."""
    data = package_dir("earthlib") / "data"
    header = envi_header((data / "spectra.sli.hdr").read_text())
    raw = (data / "spectra.sli").read_bytes()
    table = (data / "spectra.csv").read_text().strip().splitlines()
    wavelengths = np.array([float(w) for w in header["wavelength"].split(",")])
    if header.get("wavelength units", "").lower().startswith("micro"):
        wavelengths = wavelengths * 1000.0
    n_lines, n_samples = int(header["lines"]), int(header["samples"])
    dtype = {"4": "<f4", "5": "<f8"}[header["data type"]]
    spectra = np.frombuffer(raw, dtype=dtype).reshape(n_lines, n_samples).astype(np.float64)
    on_grid = np.stack([np.interp(GRID_NM, wavelengths, s) for s in spectra])
    rows = [line.split(",") for line in table[1:]]
    return SpectralLibrary(
        reflectance=np.clip(on_grid, 0.0, 1.0),
        level2=tuple(r[2] for r in rows),
        level3=tuple(r[3] for r in rows),
    )


# Pure-water absorption (m^-1), log-interpolated between tabulated points (after Pope & Fry
# 1997 in the visible and Hale & Querry 1973 beyond); enough to make water dark past 750 nm.
_WATER_ABS = np.array(
    [
        (350, 0.0071),
        (400, 0.0066),
        (450, 0.0092),
        (500, 0.0204),
        (550, 0.0565),
        (600, 0.2224),
        (650, 0.34),
        (700, 0.65),
        (750, 2.47),
        (800, 2.07),
        (900, 6.8),
        (970, 45.0),
        (1000, 36.0),
        (1200, 104.0),
        (1450, 3000.0),
        (1600, 800.0),
        (1940, 11000.0),
        (2200, 2000.0),
        (2550, 7000.0),
    ]
)


def water_reflectance(turbidity: float = 1.0) -> np.ndarray:
    """Analytic inland-water reflectance on :data:`GRID_NM` (peak about 0.025 near 570 nm).

    Sub-surface reflectance ``0.33 * u`` with ``u = bb / (a + bb)``: absorption ``a`` is pure
    water plus coloured dissolved organic matter (``0.5 exp(-0.014 (lambda - 440))`` m^-1), and
    particulate backscatter ``bb`` falls as ``lambda^-1`` (scaled by ``turbidity``); times the
    air-water transmission (0.54), plus a small specular floor.
    """
    a_water = np.exp(np.interp(GRID_NM, _WATER_ABS[:, 0], np.log(_WATER_ABS[:, 1])))
    a = a_water + 0.5 * np.exp(-0.014 * (GRID_NM - 440.0))
    bb = 0.02 * (550.0 / GRID_NM) * turbidity + 0.0012 * (500.0 / GRID_NM) ** 4.3
    return 0.54 * 0.33 * bb / (a + bb) + 0.004


def cloud_reflectance() -> np.ndarray:
    """Thick liquid-water cloud top reflectance on :data:`GRID_NM` (bright, darker in SWIR)."""
    wl = GRID_NM / 1000.0
    base = 0.78 - 0.09 * np.clip(wl - 0.8, 0.0, None)
    dips = 0.10 * np.exp(-0.5 * ((wl - 1.50) / 0.06) ** 2) + 0.16 * np.exp(
        -0.5 * ((wl - 2.02) / 0.09) ** 2
    )
    return np.clip(base - dips, 0.05, 1.0)


def apply_ch4(reflectance: np.ndarray, ppm_m: np.ndarray, log_t: np.ndarray) -> np.ndarray:
    """Attenuate ``reflectance`` (..., bands) by Beer–Lambert for enhancements ``ppm_m`` (...).

    ``log_t`` is :func:`ch4_log_transmittance`; between table levels the log-transmittance is
    linear in concentration, beyond the last level it extrapolates the last segment.
    """
    c = np.clip(np.asarray(ppm_m, dtype=np.float64), 0.0, None)
    k = np.clip(
        np.searchsorted(CH4_LEVELS_PPM_M, c, side="right") - 1, 0, len(CH4_LEVELS_PPM_M) - 2
    )
    c0, c1 = CH4_LEVELS_PPM_M[k], CH4_LEVELS_PPM_M[k + 1]
    w = ((c - c0) / (c1 - c0))[..., None]
    log_tc = log_t[k] * (1.0 - w) + log_t[k + 1] * w
    return reflectance * np.exp(log_tc)


def resample(spectra: np.ndarray, bands: BandTable) -> np.ndarray:
    """Resample spectra on :data:`GRID_NM` (..., n_grid) to ``bands`` with Gaussian responses."""
    return spectra @ gaussian_response(GRID_NM, bands.wavelengths, bands.fwhms)
