"""``simulate_scene``: one sensor's product, STAC item and ground truth, written atomically.

The pieces every sensor writer shares live here: scene sizes, the acquisition conditions
derived from (region, sensor, date, seed), block-wise rendering with reproducible noise, and the
staging directory that is renamed into place only when the whole scene is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import import_module
from pathlib import Path
from typing import Literal, Protocol, cast

import numpy as np
from pydantic import BaseModel, ConfigDict

from spectraflow.errors import SimulationError
from spectraflow.simulate.render import Conditions
from spectraflow.simulate.world import Region, Wind, World, resolve_region

Sensor = Literal["emit", "enmap", "sentinel2"]
Size = Literal["tiny", "demo", "full"]
ProgressCallback = Callable[[int, int], None]

SENSORS: tuple[str, ...] = ("emit", "enmap", "sentinel2")
# (rows, columns) of each product: EMIT downtrack × crosstrack in sensor geometry, EnMAP the
# 30 m ortho raster, Sentinel-2 the 20 m grid (10 m bands are twice, 60 m bands a third of it).
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "tiny": {"emit": (48, 40), "enmap": (64, 64), "sentinel2": (96, 96)},
    "demo": {"emit": (256, 242), "enmap": (320, 320), "sentinel2": (480, 480)},
    "full": {"emit": (1280, 1242), "enmap": (1250, 1200), "sentinel2": (5490, 5490)},
}
PROVIDERS: dict[str, tuple[str, ...]] = {
    "emit": ("cmr-stac",),
    "enmap": ("dlr",),
    "sentinel2": ("earth-search", "earth-search-l2a", "planetary-computer"),
}
# Local solar time of the overpass (EMIT rides the ISS and drifts through the day).
_LOCAL_OVERPASS_H = {"emit": 13.2, "enmap": 11.0, "sentinel2": 10.5}
DEFAULT_DATE = date(2024, 6, 12)


class SimulatedScene(BaseModel):
    """What :func:`simulate_scene` wrote: the product files, its STAC item and the truth."""

    model_config = ConfigDict(frozen=True)

    sensor: str
    provider: str
    collection: str
    id: str
    datetime: datetime
    directory: Path
    item_path: Path
    files: dict[str, Path]
    truth: dict[str, Path]


@dataclass(frozen=True)
class SceneSpec:
    """Everything a sensor writer needs.

    Writers write under ``stage_dir`` but every path they record (STAC hrefs,
    :class:`SimulatedScene`) points into ``final_dir``.
    """

    sensor: str
    size: str
    shape: tuple[int, int]
    region: Region
    world: World
    conditions: Conditions
    datetime: datetime
    seed: int
    provider: str
    stage_dir: Path
    final_dir: Path
    progress: ProgressCallback | None = None

    def block_rng(self, block: int) -> np.random.Generator:
        """Noise generator of one block: reproducible whatever order blocks are written in."""
        return np.random.default_rng(
            [self.region.seed, self.seed, SENSORS.index(self.sensor), block]
        )

    def row_blocks(self, rows: int, block_rows: int) -> Iterator[tuple[int, slice]]:
        """``(index, rows)`` of each block, reporting progress as blocks are consumed."""
        n = -(-rows // block_rows)
        for i in range(n):
            if self.progress is not None:
                self.progress(i, n)
            yield i, slice(i * block_rows, min((i + 1) * block_rows, rows))
        if self.progress is not None:
            self.progress(n, n)


class SceneWriter(Protocol):
    """What a sensor's writer module provides."""

    def scene_id(self, when: datetime, region: Region, seed: int) -> str:
        """The product's name, as the provider would name it."""
        ...

    def write(self, spec: SceneSpec, scene_id: str) -> SimulatedScene:
        """Write product, item and truth under ``spec.stage_dir``."""
        ...


def solar_position(lon: float, lat: float, when: datetime) -> tuple[float, float]:
    """Approximate sun zenith and azimuth (degrees, azimuth clockwise from north).

    NOAA's low-precision formulas (declination and equation of time from the day of year);
    good to about a degree, which is all the simulator needs for shading and cloud shadows.
    """
    day = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60.0 + when.second / 3600.0
    g = 2.0 * np.pi / 365.0 * (day - 1 + (hours - 12.0) / 24.0)
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
    )
    eqtime = 229.18 * (
        0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
    )
    solar_minutes = hours * 60.0 + eqtime + 4.0 * lon
    hour_angle = np.deg2rad(solar_minutes / 4.0 - 180.0)
    phi = np.deg2rad(lat)
    cos_z = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    zenith = np.arccos(np.clip(cos_z, -1.0, 1.0))
    azimuth = np.arctan2(
        np.sin(hour_angle), np.cos(hour_angle) * np.sin(phi) - np.tan(decl) * np.cos(phi)
    )
    return float(np.rad2deg(zenith)), float((np.rad2deg(azimuth) + 180.0) % 360.0)


def acquisition_time(sensor: str, region: Region, day: date, rng: np.random.Generator) -> datetime:
    """UTC time of the overpass: the sensor's local solar time at the region, plus jitter."""
    local_h = _LOCAL_OVERPASS_H[sensor] + float(rng.uniform(-0.3, 0.3))
    if sensor == "emit":
        local_h += float(rng.uniform(-3.0, 3.0))
    utc = datetime.combine(day, time(0, 0), tzinfo=UTC) + timedelta(
        hours=local_h - region.lon / 15.0
    )
    return utc.replace(microsecond=0)


def scene_conditions(
    sensor: str, region: Region, day: date, seed: int
) -> tuple[datetime, Conditions]:
    """Acquisition time and conditions, reproducible from (region, sensor, date, seed)."""
    rng = np.random.default_rng([region.seed, seed, SENSORS.index(sensor), day.toordinal()])
    when = acquisition_time(sensor, region, day, rng)
    zenith, azimuth = solar_position(region.lon, region.lat, when)
    conditions = Conditions(
        seed=int(rng.integers(0, 2**31)),
        wind=Wind(float(rng.uniform(0.0, 360.0)), float(rng.uniform(2.0, 6.0))),
        cloud_cover=float(rng.uniform(0.03, 0.2)),
        sun_zenith_deg=zenith,
        sun_azimuth_deg=azimuth,
    )
    return when, conditions


def _parse_date(value: date | datetime | str | None) -> date:
    if value is None:
        return DEFAULT_DATE
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise SimulationError(
            f"cannot read date {value!r}", where="date", fix="give an ISO date such as 2024-06-12"
        ) from None


def simulate_scene(
    sensor: str,
    *,
    out: str | Path,
    size: str = "tiny",
    region: Region | str | None = None,
    date: date | datetime | str | None = None,
    seed: int = 0,
    provider: str | None = None,
    progress: ProgressCallback | None = None,
) -> SimulatedScene:
    """Simulate one scene of ``sensor`` over ``region`` and write it under ``out``.

    Parameters
    ----------
    sensor
        ``"emit"``, ``"enmap"`` or ``"sentinel2"``.
    out
        Directory under which the scene's own directory (named by the scene id) is created.
    size
        ``"tiny"`` (tests), ``"demo"`` (a few hundred pixels a side) or ``"full"`` (the real
        products' sizes, for benchmarks); see :data:`SIZES`.
    region
        A preset name (see ``PRESETS``), ``"lon,lat"``, a :class:`Region`, or None for the
        default. Scenes of one region overlap whatever the sensor, date or size.
    date
        Acquisition date (UTC); the time of day follows the sensor's overpass.
    seed
        Seed of everything that changes between acquisitions (clouds, wind, noise). The same
        arguments always write the same bytes.
    provider
        Flavour of the STAC item (see :data:`PROVIDERS`); default: the first one listed.
    progress
        Called as ``progress(done, total)`` while blocks are written.

    Returns
    -------
    SimulatedScene
        The scene directory, item and truth paths. Nothing is visible under ``out`` until the
        whole scene is written; re-simulating the same scene replaces it.
    """
    if sensor not in SENSORS:
        raise SimulationError(
            f"unknown sensor {sensor!r}", where="sensor", fix=f"use one of {', '.join(SENSORS)}"
        )
    if size not in SIZES:
        raise SimulationError(
            f"unknown size {size!r}", where="size", fix=f"use one of {', '.join(SIZES)}"
        )
    provider = provider or PROVIDERS[sensor][0]
    if provider not in PROVIDERS[sensor]:
        raise SimulationError(
            f"no {provider!r} item flavour for {sensor}",
            where="provider",
            fix=f"use one of {', '.join(PROVIDERS[sensor])}",
        )
    reg = resolve_region(region)
    when, conditions = scene_conditions(sensor, reg, _parse_date(date), seed)
    # Each sensor's writer lives in spectraflow/simulate/<sensor>.py (imported only when used).
    writer = cast(SceneWriter, import_module(f"spectraflow.simulate.{sensor}"))
    out_dir = Path(out).expanduser().resolve()
    scene_id = writer.scene_id(when, reg, seed)
    # Other item flavours of the same acquisition get their own directory, not a replacement.
    dir_name = scene_id if provider == PROVIDERS[sensor][0] else f"{scene_id}.{provider}"
    final_dir = out_dir / dir_name
    stage_dir = out_dir / f".{dir_name}.partial"
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.mkdir(parents=True)
    spec = SceneSpec(
        sensor=sensor,
        size=size,
        shape=SIZES[size][sensor],
        region=reg,
        world=World(reg),
        conditions=conditions,
        datetime=when,
        seed=seed,
        provider=provider,
        stage_dir=stage_dir,
        final_dir=final_dir,
        progress=progress,
    )
    try:
        scene = writer.write(spec, scene_id)
    except BaseException:
        shutil.rmtree(stage_dir, ignore_errors=True)
        raise
    shutil.rmtree(final_dir, ignore_errors=True)
    stage_dir.rename(final_dir)
    return scene
