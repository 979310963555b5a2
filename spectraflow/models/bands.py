"""Pick the bands a model reads from any sensor's band table (pure).

A model card's input contract says which bands it needs (see
:class:`spectraflow.models.card.InputContract`); :func:`select_bands` turns that into indices
of a cube's ``band`` dimension, or raises :class:`~spectraflow.errors.BandMismatchError` naming
the wavelengths that are missing.
"""

from __future__ import annotations

import numpy as np

from spectraflow.errors import BandMismatchError
from spectraflow.models.card import InputContract
from spectraflow.sensors.bands import BandTable

__all__ = ["select_bands"]


def _nm(values: np.ndarray) -> str:
    return ", ".join(f"{v:.0f}" for v in values) or "none"


def select_bands(bands: BandTable, contract: InputContract, *, model: str = "model") -> np.ndarray:
    """Indices (ascending) of the bands of ``bands`` that ``contract`` asks for.

    Parameters
    ----------
    bands
        The cube's band table; bands flagged not good are never selected.
    contract
        The model card's input contract.
    model
        The model's name, for messages.

    Raises
    ------
    BandMismatchError
        Too few good bands in the window, or required wavelengths without a band near them.
    """
    centre = bands.wavelengths
    good = bands.good_mask
    if contract.band_selection == "window":
        inside = np.zeros(len(centre), dtype=bool)
        for low, high in contract.windows:
            inside |= (centre >= low) & (centre <= high)
        picked = np.flatnonzero(inside & good)
        if len(picked) < contract.min_bands:
            windows = ", ".join(f"{low:.0f}–{high:.0f}" for low, high in contract.windows)
            raise BandMismatchError(
                f"{model} needs at least {contract.min_bands} good bands in "
                f"{windows} nm; this band table has {len(picked)} "
                f"({_nm(centre[picked])} nm)",
                where="bands",
                fix=f"run {model} on a sensor that samples {windows} nm "
                f"({', '.join(contract.sensors) or 'an imaging spectrometer'})",
            )
        return picked
    assert contract.wavelengths_nm is not None
    wanted = np.asarray(contract.wavelengths_nm, dtype=float)
    candidates = np.flatnonzero(good)
    if len(candidates) == 0:
        raise BandMismatchError(
            "the band table has no good band", where="bands", fix="check the cube's good_band"
        )
    distance = np.abs(centre[candidates][None, :] - wanted[:, None])
    nearest = candidates[distance.argmin(axis=1)]
    missing = distance.min(axis=1) > contract.tolerance_nm
    if missing.any():
        raise BandMismatchError(
            f"{model} needs bands at {_nm(wanted[missing])} nm (± {contract.tolerance_nm:g} nm);"
            " this band table has none there",
            where="bands",
            fix=f"run {model} on a cube whose sensor has those bands",
        )
    return nearest
