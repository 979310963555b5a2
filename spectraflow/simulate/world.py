"""The simulated world: a region's land cover, elevation and methane sources (pure code).

A :class:`Region` is a point on Earth plus a seed. Its world is defined on the plane of the UTM
zone of that point, in metres from the centre, so every sensor and date that looks at the region
sees the same ground. Land cover is built like real landscapes are: smooth natural cover (tree
cover, grassland, bare soil, sand) from noise fields, low-lying water, a burn scar, rectangular
crop parcels in an agricultural zone, a town with a street grid and roofs, and straight regional
roads a few metres wide (sub-pixel for every sensor, so they appear as mixed pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from pyproj import CRS, Transformer

from spectraflow.errors import SimulationError
from spectraflow.simulate.noise import Fractal, hash_uniform


class LandCoverClass(NamedTuple):
    """One class of the simulated land-cover map (value 0 is reserved for no data)."""

    value: int
    name: str
    colour: tuple[int, int, int]


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "water", (0, 100, 200)),
    LandCoverClass(2, "tree_cover", (0, 100, 0)),
    LandCoverClass(3, "grassland", (255, 187, 34)),
    LandCoverClass(4, "cropland", (240, 150, 255)),
    LandCoverClass(5, "bare_soil", (180, 140, 100)),
    LandCoverClass(6, "sand", (240, 225, 170)),
    LandCoverClass(7, "roof", (250, 0, 0)),
    LandCoverClass(8, "road", (90, 90, 90)),
    LandCoverClass(9, "burned", (40, 20, 20)),
)
N_CLASSES = len(CLASSES)
CLASS_INDEX = {c.name: i for i, c in enumerate(CLASSES)}


class Region(NamedTuple):
    """A simulated region: centre (lon, lat in degrees, WGS 84) and the world's seed."""

    name: str
    lon: float
    lat: float
    seed: int

    @property
    def utm_epsg(self) -> int:
        """EPSG code of the UTM zone of the centre."""
        zone = min(int((self.lon + 180.0) // 6.0) + 1, 60)
        return (32600 if self.lat >= 0 else 32700) + zone


PRESETS: dict[str, Region] = {
    "permian": Region("permian", -103.62, 31.93, 1),
    "four-corners": Region("four-corners", -108.35, 36.72, 2),
    "hunter-valley": Region("hunter-valley", 150.95, -32.38, 3),
}
DEFAULT_REGION = "permian"


def resolve_region(region: Region | str | None) -> Region:
    """Normalise a preset name, ``"lon,lat"`` string, :class:`Region` or None (the default)."""
    if region is None:
        return PRESETS[DEFAULT_REGION]
    if isinstance(region, Region):
        return region
    if region in PRESETS:
        return PRESETS[region]
    try:
        lon, lat = (float(v) for v in region.split(","))
    except ValueError:
        raise SimulationError(
            f"unknown region {region!r}",
            where="region",
            fix=f"use a preset ({', '.join(PRESETS)}) or 'lon,lat' in degrees",
        ) from None
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise SimulationError(
            f"region centre {lon},{lat} is outside the UTM domain",
            where="region",
            fix="give longitude in [-180, 180] and latitude in [-80, 84]",
        )
    seed = int(abs(lon * 1000.0) * 7 + abs(lat * 1000.0) * 13) % 100_003
    return Region(f"{lon:.4f},{lat:.4f}", lon, lat, seed)


class MethaneSource(NamedTuple):
    """A point source of methane: position (m from the region centre) and rate (kg/h)."""

    x: float
    y: float
    rate_kg_h: float


# 1 ppm·m of CH4 at 1 atm and 15 °C: 1e-6 m × 42.3 mol/m³ × 0.01604 kg/mol.
KG_M2_PER_PPM_M = 1e-6 * 42.29 * 0.01604


def pasquill_sigma_y(downwind_m: np.ndarray) -> np.ndarray:
    """Horizontal plume spread (m), Briggs' open-country formula for stability class C."""
    x = np.clip(downwind_m, 0.0, None)
    return 5.0 + 0.11 * x / np.sqrt(1.0 + 0.0001 * x)


@dataclass(frozen=True)
class Wind:
    """Wind at the time of a scene: direction the air moves *towards* (deg from north), m/s."""

    towards_deg: float
    speed_m_s: float


@dataclass(frozen=True)
class World:
    """The ground truth of a region, evaluated at arbitrary points (metres from its centre)."""

    region: Region

    @cached_property
    def crs(self) -> CRS:
        """The region's UTM CRS."""
        return CRS.from_epsg(self.region.utm_epsg)

    @cached_property
    def centre_utm(self) -> tuple[float, float]:
        """Easting and northing of the region centre."""
        to_utm = Transformer.from_crs(4326, self.crs, always_xy=True)
        e, n = to_utm.transform(self.region.lon, self.region.lat)
        return float(e), float(n)

    def _fractal(self, key: int, spacings: tuple[float, ...]) -> Fractal:
        amplitudes = tuple(1.0 / (k + 1.0) for k in range(len(spacings)))
        return Fractal(self.region.seed * 1009 + key, spacings, amplitudes)

    def elevation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Terrain height in metres above sea level."""
        return 900.0 + 120.0 * self._fractal(1, (6000.0, 1500.0, 400.0)).sample(x, y)

    def illumination(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Relative illumination (terrain shading), about 0.9–1.1."""
        return 1.0 + 0.1 * self._fractal(2, (900.0, 250.0)).sample(x, y)

    def class_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index into :data:`CLASSES` (0-based) at each point; the same shape as ``x + y``."""
        shape = np.broadcast_shapes(np.shape(x), np.shape(y))
        # Natural cover: the class with the highest noise score wins.
        scores = np.stack(
            [0.15 + self._fractal(10 + k, (2500.0, 700.0, 200.0)).sample(x, y) for k in range(4)]
        )
        natural = np.array(
            [CLASS_INDEX[n] for n in ("tree_cover", "grassland", "bare_soil", "sand")]
        )
        out = natural[np.argmax(scores, axis=0)].astype(np.uint8)
        out = np.broadcast_to(out, shape).copy()

        burn = self._fractal(20, (1500.0, 300.0)).sample(x, y)
        out[np.broadcast_to(burn > 0.5, shape)] = CLASS_INDEX["burned"]

        # Agriculture: rectangular parcels on a rotated grid.
        agri = self._fractal(30, (5000.0, 1200.0)).sample(x, y)
        u, v = _rotate(x, y, 17.0)
        size = 360.0
        pi, pj = np.floor(u / size), np.floor(v / (size * 1.6))
        crop = hash_uniform(self.region.seed + 31, pi, pj)
        in_agri = np.broadcast_to(agri > 0.12, shape)
        parcel = np.select(
            [crop < 0.62, crop < 0.8],
            [CLASS_INDEX["cropland"], CLASS_INDEX["bare_soil"]],
            CLASS_INDEX["grassland"],
        )
        parcel = np.broadcast_to(parcel, shape)
        out[in_agri] = parcel[in_agri]

        # Town: blocks of roofs and gardens between streets.
        town = self._fractal(40, (4000.0, 900.0)).sample(x, y)
        in_town = np.broadcast_to(town > 0.45, shape)
        su, sv = _rotate(x, y, -8.0)
        street = (np.mod(su, 140.0) < 12.0) | (np.mod(sv, 110.0) < 12.0)
        roof = self._fractal(41, (90.0, 40.0)).sample(x, y) > -0.2
        town_cls = np.where(
            street,
            CLASS_INDEX["road"],
            np.where(roof, CLASS_INDEX["roof"], CLASS_INDEX["grassland"]),
        )
        town_cls = np.broadcast_to(town_cls, shape)
        out[in_town] = town_cls[in_town]

        # Water where the terrain is lowest.
        lake = self._fractal(1, (6000.0, 1500.0, 400.0)).sample(x, y)
        out[np.broadcast_to(lake < -0.38, shape)] = CLASS_INDEX["water"]

        # Regional roads: straight, 15 m wide, crossing everything but water.
        for angle, offset in ((23.0, 180.0), (112.0, -650.0), (71.0, 2400.0)):
            ru, _ = _rotate(x, y, angle)
            on_road = np.broadcast_to(np.abs(ru - offset) < 7.5, shape) & (
                out != CLASS_INDEX["water"]
            )
            out[on_road] = CLASS_INDEX["road"]
        return out

    def methane_sources(self) -> tuple[MethaneSource, ...]:
        """Point sources: one near the centre (every scene size sees it) and more farther out."""
        rng = np.random.default_rng(self.region.seed + 77)
        sources = [
            MethaneSource(float(rng.uniform(-150, 150)), float(rng.uniform(-150, 150)), 1800.0)
        ]
        for _ in range(5):
            r, t = rng.uniform(3000, 30000), rng.uniform(0, 2 * np.pi)
            sources.append(
                MethaneSource(
                    float(r * np.cos(t)), float(r * np.sin(t)), float(rng.uniform(600, 3000))
                )
            )
        return tuple(sources)

    def methane(self, x: np.ndarray, y: np.ndarray, wind: Wind) -> np.ndarray:
        """CH4 column enhancement (ppm·m) of all sources' Gaussian plumes under ``wind``.

        Vertically integrated Gaussian plume: ``Q / (u sqrt(2 pi) sigma_y(x)) exp(-y^2 / (2
        sigma_y^2))`` kg/m² downwind of the source, with a gentle meander and a 4 km reach.
        """
        theta = np.deg2rad(wind.towards_deg)
        ax, ay = np.sin(theta), np.cos(theta)  # unit vector downwind (east, north)
        total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))
        for src in self.methane_sources():
            dx, dy = x - src.x, y - src.y
            down = dx * ax + dy * ay
            cross = dx * ay - dy * ax
            cross = cross - 0.08 * down * np.sin(down / 350.0 + src.x)
            sigma = pasquill_sigma_y(down)
            kg_m2 = (src.rate_kg_h / 3600.0) / (wind.speed_m_s * np.sqrt(2 * np.pi) * sigma)
            plume = kg_m2 * np.exp(-0.5 * (cross / sigma) ** 2)
            # Fade in over the first 10 m and out towards 4 km downwind.
            fade = np.clip(down / 10.0, 0.0, 1.0) * np.clip((4000.0 - down) / 1000.0, 0.0, 1.0)
            total = total + plume * fade / KG_M2_PER_PPM_M
        return total


def _rotate(x: np.ndarray, y: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.deg2rad(degrees)
    return x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
