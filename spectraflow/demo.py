"""A small end-to-end example: one region seen by EMIT, EnMAP and Sentinel-2 on two dates.

The demo simulates the scenes (with their STAC items and ground truth), catalogs them in a local
STAC API and finds them again with :func:`spectraflow.catalog.search`, then runs the
:func:`~spectraflow.flows.map_region` flow on it (:func:`make_demo_products`): every scene into
a cube, land cover from all sensors with the wavelength-conditioned model and methane from
EMIT with the matched filter, each mosaicked into a product (COG, STAC item, quicklook)
published in the demo's catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_DATES",
    "DEMO_MODELS",
    "DEMO_SEED",
    "DEMO_SENSORS",
    "ProgressCallback",
    "demo_plan",
    "find_demo_scenes",
    "make_demo_products",
    "run_demo",
]

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``, called as work advances."""

DEMO_SENSORS: tuple[str, ...] = ("emit", "enmap", "sentinel2")
"""Sensors simulated by the demo, in order."""

DEMO_DATES: tuple[str, ...] = ("2024-06-12", "2024-06-27")
"""Acquisition dates (ISO 8601) simulated for every demo sensor."""

DEMO_SEED = 0
"""Random seed of the demo scenes, so that every run writes the same data."""

_STEPS_PER_SCENE = 1000  # resolution of the overall progress reported by run_demo


def demo_plan() -> list[tuple[str, str]]:
    """Return the ``(sensor, date)`` pairs the demo simulates, in the order of :func:`run_demo`."""
    return [(sensor, date) for sensor in DEMO_SENSORS for date in DEMO_DATES]


def run_demo(
    out: Path,
    *,
    size: str = "demo",
    progress: ProgressCallback | None = None,
) -> list[Any]:
    """Simulate the demo scenes under ``out``.

    The scenes share one region (the simulator's default region) and the seed
    :data:`DEMO_SEED`.

    Parameters
    ----------
    out
        Output directory; created if missing.
    size
        Scene size preset of the simulator (``"tiny"``, ``"demo"`` or ``"full"``).
    progress
        Called as ``progress(done, total)`` with the progress over all demo scenes together.

    Returns
    -------
    list
        One result of :func:`spectraflow.simulate.simulate_scene` per pair of
        :func:`demo_plan`, in that order.
    """
    from spectraflow.simulate import simulate_scene  # the simulator loads numpy & co.

    plan = demo_plan()
    total = len(plan) * _STEPS_PER_SCENE
    results = []
    for index, (sensor, date) in enumerate(plan):
        scene_progress = None if progress is None else _scaled(progress, index, total)
        result = simulate_scene(
            sensor,
            out=out,
            size=size,
            region=None,
            date=date,
            seed=DEMO_SEED,
            progress=scene_progress,
        )
        results.append(result)
    if progress is not None:
        progress(total, total)
    return results


def find_demo_scenes(out: Path, simulated: list[Any]) -> list[Any]:
    """Catalog the simulated items under ``out/catalog`` and search them through a local STAC API.

    The search asks for every sensor over a small box around the region's centre and the demo
    dates, the way a user would ask a real provider.

    Returns
    -------
    list
        The :class:`spectraflow.catalog.Scene` objects found, sorted by time.
    """
    from spectraflow.catalog import LocalCatalog, search
    from spectraflow.simulate.world import resolve_region

    catalog = LocalCatalog(out / "catalog")
    catalog.add([result.item_path for result in simulated])
    region = resolve_region(None)
    aoi = (region.lon - 0.05, region.lat - 0.05, region.lon + 0.05, region.lat + 0.05)
    with catalog.serve() as api:
        return search(aoi, DEMO_DATES[0], DEMO_DATES[-1], DEMO_SENSORS, providers=[api.url])


DEMO_MODELS: tuple[str, ...] = ("lc-any-wavelength", "ch4-mf")
"""Models of the demo's products: land cover from every sensor, methane from EMIT."""


def make_demo_products(out: Path, *, runner: Any = None) -> Any:
    """Run the :func:`~spectraflow.flows.map_region` flow over the demo region and dates.

    The flow searches the demo catalog (served by a local STAC API for the run), ingests every
    scene, runs each of :data:`DEMO_MODELS` where the scene has its bands, and mosaics one
    product per model into ``out/products``, published in ``out/catalog-products`` (the scenes'
    catalog stays scenes only).

    Parameters
    ----------
    runner
        Task runner of the flow (default: a dask ``LocalCluster``; ``"threads"`` for none).

    Returns
    -------
    spectraflow.flows.RunSummary
        Products, per-scene outcomes (a scene or model that failed, and why) and stage times.
    """
    from spectraflow.catalog import LocalCatalog
    from spectraflow.flows import map_region
    from spectraflow.simulate.world import resolve_region

    region = resolve_region(None)
    aoi = (region.lon - 0.05, region.lat - 0.05, region.lon + 0.05, region.lat + 0.05)
    with LocalCatalog(out / "catalog").serve() as api:
        return map_region(
            aoi, DEMO_DATES[0], DEMO_DATES[-1], DEMO_SENSORS, DEMO_MODELS,
            out=str(out), providers=[api.url], catalog=str(out / "catalog-products"),
            runner=runner,
        )  # fmt: skip


def _scaled(progress: ProgressCallback, index: int, total: int) -> ProgressCallback:
    """Map one scene's ``(done, total)`` onto the progress of the whole demo."""

    def report(done: int, scene_total: int) -> None:
        fraction = min(done / scene_total, 1.0) if scene_total > 0 else 0.0
        progress(index * _STEPS_PER_SCENE + round(fraction * _STEPS_PER_SCENE), total)

    return report
