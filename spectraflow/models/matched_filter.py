"""The CH4 matched filter as a model: scene statistics first, then tile by tile.

Two cards use it: ``ch4-mf`` (the EMIT production style: one pass, slight covariance shrinkage,
negative values kept, no albedo correction) and ``ch4-mag1c`` (mag1c's robust variant: albedo
correction, 30 reweighted-L1 iterations, non-negative). The mathematics is in
:mod:`spectraflow.models.filter_math`; this module connects it to cubes:

1. :meth:`MatchedFilter.statistics` — the first pass over the whole scene. EMIT cubes in sensor
   geometry get statistics per detector column (each column is one detector with its own noise
   and calibration); map-grid cubes (EnMAP) one set for the scene. Pixels that are cloudy,
   watery, flagged, saturated or dark, or that have a non-finite value in the window, do not
   enter the statistics. Per-column statistics are computed in stripes of columns (memory of
   one stripe); per-scene statistics hold the window's bands of the scene in memory (about
   0.3 GB for a full EnMAP scene).
2. :meth:`MatchedFilter.predict_tile` — any tile, any size, from the statistics: the same
   answer as the first pass (to float32 rounding), so tiles need no halo and blend without
   seams.

:meth:`MatchedFilter.retrieve` does both for a whole cube and returns a lazy Dataset
(``ch4_enhancement`` ppm·m, ``sensitivity``, ``uncertainty`` ppm·m) in the cube's geometry;
EMIT results keep the GLT, so :func:`spectraflow.sensors.glt.orthorectify` maps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from spectraflow.errors import ModelError
from spectraflow.models.bands import select_bands
from spectraflow.models.card import ModelCard
from spectraflow.models.filter_math import (
    FilterSettings,
    FilterStatistics,
    apply_filter,
    concat_statistics,
    filter_statistics,
)
from spectraflow.sensors.absorption import ch4_unit_absorption
from spectraflow.sensors.bands import BandTable

__all__ = ["EXCLUDED_FLAGS", "MatchedFilter", "SceneStatistics", "build", "cube_bands"]

EXCLUDED_FLAGS = (
    "cloud",
    "cirrus",
    "dilated_cloud",
    "water",
    "spacecraft",
    "quality_cloud",
    "quality_cloud_shadow",
    "quality_cirrus",
    "quality_snow",
)
"""Cube mask layers whose non-zero pixels stay out of the statistics (EMIT and EnMAP names)."""

_ENMAP_WATER = 2  # QL_QUALITY_CLASSES: 1 land, 2 water, 3 background
OUTPUTS = ("ch4_enhancement", "sensitivity", "uncertainty")


def cube_bands(cube: xr.Dataset) -> BandTable:
    """The band table of a cube (wavelength, FWHM and good-band coordinates)."""
    return BandTable.from_arrays(
        cube["wavelength"].values,
        cube["fwhm"].values,
        good=cube["good_band"].values if "good_band" in cube.coords else None,
    )


@dataclass(frozen=True)
class SceneStatistics:
    """What the first pass gives the tiles: filter statistics and how to index them.

    ``grouping`` is ``"per-column"`` (group g = detector column g of the sensor grid) or
    ``"per-scene"`` (one group); ``bands`` are the indices of the cube bands the filter reads.
    """

    filter: FilterStatistics
    grouping: str
    bands: np.ndarray
    unit_absorption: np.ndarray


class MatchedFilter:
    """A CH4 matched filter built from a card (use :func:`spectraflow.models.load_model`)."""

    def __init__(
        self,
        card: ModelCard,
        *,
        device: torch.device,
        settings: FilterSettings,
        fit_max_ppm_m: float,
        saturation: float,
        stripe_columns: int = 128,
    ) -> None:
        self.card = card
        self.device = device
        self.settings = settings
        self.fit_max_ppm_m = fit_max_ppm_m
        self.saturation = saturation
        self.stripe_columns = stripe_columns

    def __repr__(self) -> str:
        return f"MatchedFilter({self.card.name!r}, device={self.device}, {self.settings})"

    def bands(self, table: BandTable) -> np.ndarray:
        """Indices of the bands of ``table`` the filter reads (raises BandMismatchError)."""
        return select_bands(table, self.card.input, model=self.card.name)

    def _grouping(self, cube: xr.Dataset) -> str:
        sensor_geometry = "sample" in cube["reflectance"].dims
        wanted = self.card.input.scene_statistics
        return "per-column" if wanted == "per-column" and sensor_geometry else "per-scene"

    def statistics_mask(self, cube: xr.Dataset, window: da.Array | None = None) -> da.Array:
        """Pixels (rows, cols) that enter the statistics (lazy); ``window``: the filter's bands."""
        if window is None:
            window = cube["reflectance"].data[self.bands(cube_bands(cube))]
        use = cube["valid"].data.astype(bool) if "valid" in cube else True
        for name in EXCLUDED_FLAGS:
            if name in cube:
                use = use & (cube[name].data == 0)
        if "quality_classes" in cube:
            use = use & (cube["quality_classes"].data != _ENMAP_WATER)
        inside = (window > 0) & (window < self.saturation)  # also False for NaN
        return use & inside.all(axis=0)

    def statistics(self, cube: xr.Dataset) -> SceneStatistics:
        """The first pass over the whole cube (see the module docstring).

        Raises
        ------
        BandMismatchError
            The cube has too few good bands in the filter's window.
        ModelError
            No pixel of the scene can enter the statistics.
        """
        table = cube_bands(cube)
        picked = self.bands(table)
        k = ch4_unit_absorption(table, max_ppm_m=self.fit_max_ppm_m)[picked]
        window = cube["reflectance"].data[picked]
        use = self.statistics_mask(cube, window)
        grouping = self._grouping(cube)
        kt = torch.as_tensor(k, device=self.device)
        if grouping == "per-column":
            parts = []
            for c0 in range(0, window.shape[2], self.stripe_columns):
                cols = slice(c0, c0 + self.stripe_columns)
                x, u = dask.compute(window[:, :, cols], use[:, cols])
                parts.append(self._fit(x.transpose(2, 0, 1), u.T, kt))  # (column, band, line)
            stats = concat_statistics(parts)
        else:
            x, u = dask.compute(window, use)
            stats = self._fit(x.reshape(1, len(picked), -1), u.reshape(1, -1), kt)
        if not bool(stats.ok.any()):
            raise self._no_statistics(cube, int(stats.count.max()), len(picked), grouping)
        return SceneStatistics(stats, grouping, picked, k)

    @staticmethod
    def _no_statistics(cube: xr.Dataset, most: int, bands: int, grouping: str) -> ModelError:
        where = str(cube.attrs.get("scene_id", "cube"))
        if most == 0:
            return ModelError(
                "no pixel of the scene can enter the matched filter's statistics "
                "(all cloudy, water, flagged, saturated or without data)",
                where=where,
                fix="check the cube's valid and mask layers, or choose a clearer scene",
            )
        group = "column" if grouping == "per-column" else "scene"
        return ModelError(
            f"too few clear pixels for the matched filter's statistics: at most {most} per "
            f"{group}, and {bands} bands need more than {bands}",
            where=where,
            fix="run the filter on a larger scene (more lines), or on a clearer one",
        )

    def _fit(self, x: np.ndarray, use: np.ndarray, k: torch.Tensor) -> FilterStatistics:
        xt = torch.as_tensor(np.ascontiguousarray(x), device=self.device)
        ut = torch.as_tensor(np.ascontiguousarray(use), device=self.device)
        return filter_statistics(xt, ut, k, self.settings)

    def predict_tile(
        self,
        reflectance: np.ndarray,
        stats: SceneStatistics,
        *,
        col0: int = 0,
    ) -> dict[str, np.ndarray]:
        """Outputs for one tile of the cube.

        Parameters
        ----------
        reflectance
            (bands, rows, cols) float32: every cube band, or already ``stats.bands`` only.
        stats
            From :meth:`statistics` of the same cube.
        col0
            Column of the tile's first pixel in the cube (per-column statistics).

        Returns
        -------
        dict
            ``ch4_enhancement`` (ppm·m), ``sensitivity`` (1), ``uncertainty`` (ppm·m), each
            (rows, cols) float32, NaN where the pixel has no finite window value.
        """
        x = reflectance if len(reflectance) == len(stats.bands) else reflectance[stats.bands]
        rows, cols = x.shape[1:]
        fs = stats.filter
        if stats.grouping == "per-column":
            groups = torch.arange(col0, col0 + cols, device=fs.ok.device)
            xt = torch.as_tensor(np.ascontiguousarray(x.transpose(2, 0, 1)), device=self.device)
            outs = apply_filter(xt, fs.take(groups), self.settings)
            return {n: o.T.cpu().numpy() for n, o in zip(OUTPUTS, outs, strict=True)}
        xt = torch.as_tensor(np.ascontiguousarray(x), device=self.device)
        outs = apply_filter(xt.reshape(1, len(x), rows * cols), fs, self.settings)
        return {n: o.reshape(rows, cols).cpu().numpy() for n, o in zip(OUTPUTS, outs, strict=True)}

    def retrieve(self, cube: xr.Dataset, stats: SceneStatistics | None = None) -> xr.Dataset:
        """Statistics (unless given) and a lazy, tile-by-tile retrieval over ``cube``."""
        stats = stats or self.statistics(cube)
        refl = cube["reflectance"]
        window = refl.data[stats.bands]

        def block(x: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
            col0 = block_info[0]["array-location"][2][0] if block_info else 0
            out = self.predict_tile(x, stats, col0=col0)
            return np.stack([out[n] for n in OUTPUTS])

        stacked = window.map_blocks(block, dtype=np.float32, chunks=((3,), *window.chunks[1:]))
        if "valid" in cube:  # no answer outside the scene's data
            stacked = da.where(cube["valid"].data[None], stacked, np.float32(np.nan))
        spatial = refl.dims[1:]
        out = xr.Dataset(
            {name: (spatial, stacked[i]) for i, name in enumerate(OUTPUTS)},
            coords={k: v for k, v in cube.coords.items() if set(v.dims) <= set(spatial)},
        )
        for name in ("glt_x", "glt_y"):
            if name in cube:
                out[name] = cube[name]
        units = {"ch4_enhancement": "ppm m", "sensitivity": "1", "uncertainty": "ppm m"}
        for var in self.card.output.variables:
            out[var.name].attrs.update(units=units[var.name], long_name=var.description)
        out.attrs.update(
            {
                k: v
                for k, v in cube.attrs.items()
                if k in ("sensor", "scene_id", "geotransform", "ortho_crs")
            }
        )
        out.attrs.update(
            model=self.card.name,
            model_version=self.card.version,
            statistics=stats.grouping,
            filter_bands_nm=[float(w) for w in cube["wavelength"].values[stats.bands]],
        )
        return out


def build(card: ModelCard, *, device: torch.device) -> MatchedFilter:
    """Factory named by the ``ch4-mf`` and ``ch4-mag1c`` cards (options from the card)."""
    opts = card.options
    settings = FilterSettings(
        iterations=int(opts.get("iterations", 0)),
        albedo=bool(opts.get("albedo", False)),
        nonnegative=bool(opts.get("nonnegative", False)),
        sparse=bool(opts.get("sparse", True)),
        shrinkage=float(opts.get("shrinkage", 1e-4)),
        covariance_update=float(opts.get("covariance_update", 1.0)),
    )
    return MatchedFilter(
        card,
        device=device,
        settings=settings,
        fit_max_ppm_m=float(opts.get("fit_max_ppm_m", 4000.0)),
        saturation=float(opts.get("saturation", 1.0)),
    )
