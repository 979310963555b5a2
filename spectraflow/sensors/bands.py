"""Band tables and Gaussian spectral response functions (pure code, no I/O).

A :class:`BandTable` describes the bands of one product as the catalog and the readers see
them: a name, the centre wavelength and full width at half maximum in nanometres, the linear
scaling from stored values to reflectance (``reflectance = value * scale + offset``) and a
``good`` flag (``False`` for bands a provider marks unusable, e.g. EMIT's water-vapour windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from spectraflow.errors import SceneFormatError

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


class BandTable(BaseModel):
    """Per-band metadata of one product, stored column-wise (one tuple per field).

    Wavelengths and FWHM are in nanometres whatever unit the provider used.
    """

    model_config = ConfigDict(frozen=True)

    name: tuple[str, ...]
    wavelength_nm: tuple[float, ...]
    fwhm_nm: tuple[float, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    good: tuple[bool, ...]

    def model_post_init(self, context: Any, /) -> None:
        """Check that every column has one entry per band (raises :class:`SceneFormatError`)."""
        lengths = {
            len(self.name),
            len(self.wavelength_nm),
            len(self.fwhm_nm),
            len(self.scale),
            len(self.offset),
            len(self.good),
        }
        if len(lengths) != 1:
            raise SceneFormatError(
                "band table columns have different lengths",
                where="BandTable",
                fix="give one name, wavelength, FWHM, scale, offset and good flag per band",
            )

    @classmethod
    def from_arrays(
        cls,
        wavelength_nm: Sequence[float] | np.ndarray,
        fwhm_nm: Sequence[float] | np.ndarray,
        *,
        name: Sequence[str] | None = None,
        scale: Sequence[float] | float = 1.0,
        offset: Sequence[float] | float = 0.0,
        good: Sequence[bool] | np.ndarray | None = None,
    ) -> BandTable:
        """Build a table from arrays; scalars broadcast to every band."""
        wl = [float(w) for w in np.asarray(wavelength_nm, dtype=float)]
        n = len(wl)

        def column(value: Sequence[float] | np.ndarray | float) -> tuple[float, ...]:
            arr = np.broadcast_to(np.asarray(value, dtype=float), (n,))
            return tuple(float(v) for v in arr)

        return cls(
            name=tuple(name) if name is not None else tuple(f"B{i + 1:03d}" for i in range(n)),
            wavelength_nm=tuple(wl),
            fwhm_nm=column(fwhm_nm),
            scale=column(scale),
            offset=column(offset),
            good=tuple(bool(g) for g in good) if good is not None else (True,) * n,
        )

    def __len__(self) -> int:
        return len(self.name)

    @property
    def wavelengths(self) -> np.ndarray:
        """Centre wavelengths in nm as a float64 array."""
        return np.asarray(self.wavelength_nm, dtype=float)

    @property
    def fwhms(self) -> np.ndarray:
        """Full widths at half maximum in nm as a float64 array."""
        return np.asarray(self.fwhm_nm, dtype=float)

    @property
    def good_mask(self) -> np.ndarray:
        """Boolean array, ``True`` for usable bands."""
        return np.asarray(self.good, dtype=bool)


def gaussian_response(
    source_nm: np.ndarray, centre_nm: np.ndarray, fwhm_nm: np.ndarray
) -> np.ndarray:
    """Response matrix resampling spectra sampled at ``source_nm`` to Gaussian bands.

    Returns ``R`` with shape ``(len(source_nm), len(centre_nm))`` whose columns sum to one, so
    that ``spectra @ R`` gives the band-averaged values. The source grid may be irregular: each
    sample is weighted by the width of the wavelength interval it represents. A band with no
    source sample within three sigma falls back to the nearest sample.
    """
    src = np.asarray(source_nm, dtype=float)
    centre = np.asarray(centre_nm, dtype=float)
    sigma = np.asarray(fwhm_nm, dtype=float) * FWHM_TO_SIGMA
    width = np.gradient(src) if src.size > 1 else np.ones(1)
    z = (src[:, None] - centre[None, :]) / sigma[None, :]
    weight = np.where(np.abs(z) <= 4.0, np.exp(-0.5 * z**2), 0.0) * width[:, None]
    total = weight.sum(axis=0)
    empty = total < 1e-12 * sigma
    if np.any(empty):
        nearest = np.abs(src[:, None] - centre[None, empty]).argmin(axis=0)
        weight[:, empty] = 0.0
        weight[nearest, np.flatnonzero(empty)] = 1.0
        total = weight.sum(axis=0)
    return weight / total[None, :]
