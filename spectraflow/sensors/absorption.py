"""Methane absorption for any band set, from the ``mag1c`` package's ``ch4.lut``.

``ch4.lut`` holds at-sensor radiance for 7 methane column enhancements (0–16 000 ppm·m) at
31 800 wavelengths (1399–2522 nm). For a band set we convolve it with each band's Gaussian
response (centre, FWHM) and take ``log(L_b(c) / L_b(0))``, the band log-transmittance at the
table's levels. The simulator applies it with Beer–Lambert; retrievals linearise it:

    unit absorption k_b = least-squares slope of log L_b(c) against c   (per ppm·m)

over the levels up to ``max_ppm_m``, the method of mag1c's ``generate_template_from_bands``.
The fit is what makes a matched filter's answer a column enhancement: for a pixel with
reflectance r and enhancement c, r_b(c) ≈ r_b(0) · (1 + k_b c). Absorption saturates, so a fit
over 0–16 000 ppm·m (mag1c's) has a smaller slope than the tangent at 0; the default fit over
0–4 000 ppm·m matches the enhancements of real plumes better. Bands beyond the table (by more
than three sigma) do not absorb: their coefficient is 0.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from spectraflow.errors import ConfigError
from spectraflow.sensors.bands import BandTable, gaussian_response

__all__ = [
    "CH4_LEVELS_PPM_M",
    "ch4_log_transmittance",
    "ch4_lut",
    "ch4_unit_absorption",
    "envi_header",
    "package_dir",
]

CH4_LEVELS_PPM_M = np.array([0.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
"""Column enhancements of the table's levels (ppm·m)."""

DEFAULT_FIT_MAX_PPM_M = 4000.0


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it (mag1c imports torch)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the {name} package is not installed",
            where=name,
            fix="install spectraflow with its dependencies (pip install spectraflow)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def envi_header(text: str) -> dict[str, str]:
    """Fields of an ENVI header, lower-case keys, braces stripped."""
    fields: dict[str, str] = {}
    for match in re.finditer(r"^\s*([\w ]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, re.MULTILINE):
        fields[match.group(1).strip().lower()] = match.group(2).strip().strip("{}").strip()
    return fields


@cache
def ch4_lut() -> tuple[np.ndarray, np.ndarray]:
    """``(wavelengths_nm, radiance)`` of ``ch4.lut``; radiance is (wavelengths, levels)."""
    pkg = package_dir("mag1c")
    header = envi_header((pkg / "ch4.hdr").read_text())
    raw = (pkg / "ch4.lut").read_bytes()
    wavelengths = np.array([float(w) for w in header["wavelength"].split(",")])
    n_bands, n_samples = int(header["bands"]), int(header["samples"])
    dtype = {"4": "<f4", "5": "<f8"}[header["data type"]]
    # BSQ with one line: (bands, samples) = (wavelength, concentration level).
    radiance = np.frombuffer(raw, dtype=dtype).reshape(n_bands, n_samples).astype(np.float64)
    return wavelengths, radiance


@cache
def ch4_log_transmittance(bands: BandTable) -> np.ndarray:
    """Band-averaged CH4 log-transmittance, shape ``(len(CH4_LEVELS_PPM_M), n_bands)``.

    Cached per band table (tables are frozen and hashable).
    """
    wavelengths, radiance = ch4_lut()
    centre, fwhm = bands.wavelengths, bands.fwhms
    sigma = fwhm / 2.3548
    inside = (centre + 3 * sigma > wavelengths[0]) & (centre - 3 * sigma < wavelengths[-1])
    out = np.zeros((len(CH4_LEVELS_PPM_M), len(bands)))
    if inside.any():
        response = gaussian_response(wavelengths, centre[inside], fwhm[inside])
        band_rad = radiance.T @ response  # (levels, n_inside)
        out[:, inside] = np.log(band_rad / band_rad[0])
    return out


@cache
def ch4_unit_absorption(
    bands: BandTable, *, max_ppm_m: float = DEFAULT_FIT_MAX_PPM_M
) -> np.ndarray:
    """Unit absorption spectrum ``k`` (per ppm·m, ≤ 0), one value per band of ``bands``.

    The least-squares slope of the band log-transmittance against the enhancement over the
    table's levels up to ``max_ppm_m`` (at least two levels). Cached per band table.
    """
    levels = CH4_LEVELS_PPM_M[max_ppm_m >= CH4_LEVELS_PPM_M]
    if len(levels) < 2:
        raise ConfigError(
            f"the absorption fit needs two table levels, {max_ppm_m} ppm·m leaves {len(levels)}",
            where="max_ppm_m",
            fix=f"use at least {CH4_LEVELS_PPM_M[1]:.0f} ppm·m",
        )
    log_t = ch4_log_transmittance(bands)[: len(levels)]
    design = np.stack([np.ones_like(levels), levels], axis=1)
    coef, *_ = np.linalg.lstsq(design, log_t, rcond=None)
    slope: np.ndarray = coef[1]
    return slope
