"""Render what a sensor sees over a block of pixels (pure code, no I/O).

For each pixel the ground is sampled at ``s × s`` points inside its footprint: the class
fractions are area fractions (linear sub-pixel mixing at class edges), and the methane column
is the footprint average. The pixel's surface spectrum mixes per-class endmember spectra from
earthlib (each class blends three library spectra with spatially smooth weights), is shaded by
terrain illumination and cloud shadow, attenuated by methane (Beer–Lambert, ``ch4.lut``),
mixed with cloud, and gets signal-dependent sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from spectraflow.sensors.absorption import ch4_log_transmittance
from spectraflow.sensors.bands import BandTable
from spectraflow.simulate.noise import Fractal
from spectraflow.simulate.spectra import (
    GRID_NM,
    apply_ch4,
    cloud_reflectance,
    earthlib_library,
    resample,
    water_reflectance,
)
from spectraflow.simulate.world import CLASS_INDEX, N_CLASSES, Wind, World

ENDMEMBERS_PER_CLASS = 3
CLOUD_TOP_M = 1200.0

_LIBRARY_CLASSES: dict[str, tuple[str, ...]] = {
    "bare_soil": ("soil", "dirt"),
    "sand": ("sand",),
    "roof": ("comp_shingle", "concrete_tile", "metal", "tile", "wood_shingle"),
    "road": ("road", "asphalt", "parking_lot"),
    "burned": ("char",),
}


@cache
def class_endmembers(seed: int) -> np.ndarray:
    """Endmember spectra on :data:`GRID_NM`, shape (N_CLASSES, ENDMEMBERS_PER_CLASS, n_grid)."""
    lib = earthlib_library()
    rng = np.random.default_rng(seed)
    refl = lib.reflectance
    red = refl[:, np.searchsorted(GRID_NM, 665.0)]
    nir = refl[:, np.searchsorted(GRID_NM, 850.0)]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    canopy = lib.select(("canopy",))
    npv = lib.select(("litter", "npv", "bark", "wood"))
    lush = canopy[ndvi[canopy] > np.quantile(ndvi[canopy], 0.7)]
    dark_lush = lush[nir[lush] < np.median(nir[lush])]
    bright_lush = lush[nir[lush] >= np.median(nir[lush])]
    mid = canopy[
        (ndvi[canopy] > np.quantile(ndvi[canopy], 0.3))
        & (ndvi[canopy] < np.quantile(ndvi[canopy], 0.6))
    ]

    def pick(candidates: np.ndarray) -> np.ndarray:
        return refl[rng.choice(candidates, ENDMEMBERS_PER_CLASS, replace=len(candidates) < 3)]

    out = np.empty((N_CLASSES, ENDMEMBERS_PER_CLASS, GRID_NM.size))
    out[CLASS_INDEX["water"]] = np.stack([water_reflectance(t) for t in (0.6, 1.0, 1.8)])
    out[CLASS_INDEX["tree_cover"]] = pick(dark_lush)
    out[CLASS_INDEX["cropland"]] = pick(bright_lush)
    out[CLASS_INDEX["grassland"]] = 0.6 * pick(mid) + 0.4 * pick(npv)
    for name, level3 in _LIBRARY_CLASSES.items():
        out[CLASS_INDEX[name]] = pick(lib.select(level3))
    return out


@cache
def _band_spectra(seed: int, bands: BandTable) -> tuple[np.ndarray, np.ndarray]:
    """Class endmembers (K, M, B) and cloud reflectance (B) in ``bands``, once per band set."""
    return resample(class_endmembers(seed), bands), resample(cloud_reflectance(), bands)


@dataclass(frozen=True)
class Conditions:
    """What changes from one acquisition to the next over the same world."""

    seed: int
    wind: Wind
    cloud_cover: float  # target fraction of cloudy pixels, 0-1
    sun_zenith_deg: float
    sun_azimuth_deg: float

    def cloud_field(self) -> Fractal:
        """Smooth field whose upper tail is cloud."""
        return Fractal(self.seed * 31 + 5, (1800.0, 600.0, 200.0), (1.0, 0.5, 0.25))

    @cached_property
    def cloud_threshold(self) -> float:
        """Field level above which it is cloudy, set to give :attr:`cloud_cover`."""
        if self.cloud_cover <= 0.0:
            return np.inf
        probe = np.linspace(-30000.0, 30000.0, 241)
        values = self.cloud_field().sample(probe[None, :], probe[:, None])
        return float(np.quantile(values, 1.0 - self.cloud_cover))

    def cloud_fraction(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fraction of the pixel covered by optically thick cloud, 0-1."""
        if self.cloud_cover <= 0.0:
            return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))
        return np.clip((self.cloud_field().sample(x, y) - self.cloud_threshold) / 0.08, 0.0, 1.0)

    def shadow_offset(self) -> tuple[float, float]:
        """Vector (m) from a ground point to the cloud that would shade it."""
        reach = CLOUD_TOP_M * np.tan(np.deg2rad(self.sun_zenith_deg))
        az = np.deg2rad(self.sun_azimuth_deg)
        return float(reach * np.sin(az)), float(reach * np.cos(az))


@dataclass(frozen=True)
class Rendered:
    """A rendered pixel block: reflectance and the truth behind it."""

    reflectance: np.ndarray  # (H, W, bands) float32, with noise
    noise_sigma: np.ndarray  # (H, W, bands) float32, the noise standard deviation
    fractions: np.ndarray  # (N_CLASSES, H, W) float32 area fractions
    classes: np.ndarray  # (H, W) uint8 class value (1..N) of the dominant class
    ch4_ppm_m: np.ndarray  # (H, W) float32 footprint-mean enhancement
    cloud: np.ndarray  # (H, W) bool
    cloud_shadow: np.ndarray  # (H, W) bool


def subpixel_offsets(
    col_step: tuple[float, float], row_step: tuple[float, float], s: int
) -> list[tuple[float, float]]:
    """Offsets (dx, dy in m) of ``s × s`` samples spread evenly over a pixel footprint."""
    t = (np.arange(s) + 0.5) / s - 0.5
    return [
        (a * col_step[0] + b * row_step[0], a * col_step[1] + b * row_step[1]) for b in t for a in t
    ]


def render(
    world: World,
    conditions: Conditions,
    bands: BandTable,
    x: np.ndarray,
    y: np.ndarray,
    *,
    col_step: tuple[float, float],
    row_step: tuple[float, float],
    supersample: int = 3,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> Rendered:
    """Render pixels centred at ``(x, y)`` (metres from the region centre).

    ``x``/``y`` are (H, W) arrays, or (1, W) and (H, 1) for a north-up grid (faster).
    ``col_step``/``row_step`` are the ground vectors (m) from one pixel to the next column/row.
    ``noise`` is the sensor's noise model (see :data:`NOISE`), drawn from ``rng``.
    """
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    fractions = np.zeros((N_CLASSES, *shape), dtype=np.float32)
    ch4 = np.zeros(shape)
    cloud = np.zeros(shape)
    shadow = np.zeros(shape)
    sx, sy = conditions.shadow_offset()
    offsets = subpixel_offsets(col_step, row_step, supersample)
    for dx, dy in offsets:
        # Keep the separable grid form: x offsets only move columns, y offsets only rows.
        px, py = (x + dx, y + dy)
        cls = world.class_index(px, py)
        for k in range(N_CLASSES):
            fractions[k] += cls == k
        ch4 += world.methane(px, py, conditions.wind)
        cloud += conditions.cloud_fraction(px, py)
        shadow += conditions.cloud_fraction(px + sx, py + sy)
    n = len(offsets)
    fractions /= n
    ch4 /= n
    cloud /= n
    shadow /= n

    endmembers, cloud_b = _band_spectra(world.region.seed, bands)
    weights = np.stack(
        [
            np.stack(
                [
                    np.broadcast_to(
                        Fractal(
                            world.region.seed * 101 + k * 7 + m, (400.0, 120.0), (1.0, 0.6)
                        ).sample(x, y),
                        shape,
                    )
                    for m in range(ENDMEMBERS_PER_CLASS)
                ]
            )
            for k in range(N_CLASSES)
        ]
    )  # (K, M, H, W)
    weights = np.exp(4.0 * weights)
    weights /= weights.sum(axis=1, keepdims=True)
    abundance = (fractions[:, None] * weights).reshape(-1, *shape)  # (K*M, H, W)
    surface = np.einsum("phw,pb->hwb", abundance, endmembers.reshape(-1, len(bands)))
    illum = np.broadcast_to(world.illumination(x, y), shape)
    surface *= (illum * (1.0 - 0.65 * shadow * (1.0 - cloud)))[..., None]
    surface = apply_ch4(surface, ch4, ch4_log_transmittance(bands))
    clean = surface * (1.0 - cloud)[..., None] + cloud[..., None] * cloud_b
    sigma = noise.sigma(clean, bands)
    noisy = clean + rng.standard_normal(clean.shape) * sigma
    return Rendered(
        reflectance=noisy.astype(np.float32),
        noise_sigma=sigma.astype(np.float32),
        fractions=fractions,
        classes=(np.argmax(fractions, axis=0) + 1).astype(np.uint8),
        ch4_ppm_m=ch4.astype(np.float32),
        cloud=cloud >= 0.5,
        cloud_shadow=(shadow >= 0.5) & (cloud < 0.5),
    )


@dataclass(frozen=True)
class NoiseModel:
    """Signal-dependent sensor noise in reflectance units: a floor plus shot noise.

    ``floor`` and ``snr`` are given for three spectral regions: VNIR (< 1000 nm), SWIR-1
    (1000–1800 nm) and SWIR-2 (> 1800 nm), where detectors and solar flux make noise grow.
    """

    floor: tuple[float, float, float]
    snr: tuple[float, float, float]

    def sigma(self, reflectance: np.ndarray, bands: BandTable) -> np.ndarray:
        """Noise standard deviation for ``reflectance`` (..., bands)."""
        region = np.digitize(bands.wavelengths, [1000.0, 1800.0])
        floor = np.asarray(self.floor)[region]
        snr = np.asarray(self.snr)[region]
        return np.sqrt(floor**2 + (np.clip(reflectance, 0.0, None) / snr) ** 2)


# Per-sensor noise, set from the missions' published signal-to-noise figures at typical
# radiance: EMIT is the quietest (SNR of several hundred in the SWIR), EnMAP's SWIR is noisier,
# Sentinel-2's wide bands have high SNR but 12-bit-like quantisation.
NOISE: dict[str, NoiseModel] = {
    "emit": NoiseModel(floor=(0.0006, 0.0008, 0.0010), snr=(600.0, 500.0, 350.0)),
    "enmap": NoiseModel(floor=(0.0010, 0.0015, 0.0020), snr=(450.0, 300.0, 180.0)),
    "sentinel2": NoiseModel(floor=(0.0010, 0.0010, 0.0012), snr=(300.0, 250.0, 200.0)),
}
