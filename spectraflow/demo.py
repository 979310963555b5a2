"""A small end-to-end example: one region seen by EMIT, EnMAP and Sentinel-2 on two dates.

For now the demo simulates the scenes (with their STAC items and ground truth); later stages of
the pipeline (ingest, predict, mosaic) will be added here as they land.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEMO_DATES", "DEMO_SEED", "DEMO_SENSORS", "ProgressCallback", "demo_plan", "run_demo"]

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


def _scaled(progress: ProgressCallback, index: int, total: int) -> ProgressCallback:
    """Map one scene's ``(done, total)`` onto the progress of the whole demo."""

    def report(done: int, scene_total: int) -> None:
        fraction = min(done / scene_total, 1.0) if scene_total > 0 else 0.0
        progress(index * _STEPS_PER_SCENE + round(fraction * _STEPS_PER_SCENE), total)

    return report
