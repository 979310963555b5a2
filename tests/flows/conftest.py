"""Fixtures of the flow tests: a Prefect test server and a tiny simulated region.

The region: EnMAP and Sentinel-2 scenes (``tiny`` size) on 2024-06-10 and 2024-06-12, a third
Sentinel-2 scene on 2024-06-14 held back for watch tests, and an EnMAP scene on 2024-06-11 whose
spectral image is truncated after simulating (the corrupt scene).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from spectraflow.simulate import simulate_scene
from spectraflow.simulate.world import resolve_region


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (and database) for every flow test."""
    with prefect_test_harness(server_startup_timeout=60):
        yield


@dataclass(frozen=True)
class Region:
    """Simulated STAC item files of the test region, by role."""

    aoi: tuple[float, float, float, float]
    good: list[Path]  # enmap + sentinel2 on 2024-06-10 and 2024-06-12
    later: Path  # sentinel2 on 2024-06-14
    corrupt: Path  # enmap on 2024-06-11, spectral image truncated
    corrupt_id: str
    later_id: str


@pytest.fixture(scope="session")
def region(tmp_path_factory: pytest.TempPathFactory) -> Region:
    root = tmp_path_factory.mktemp("flows-region") / "scenes"
    plan = [
        ("enmap", "2024-06-10", 1),
        ("sentinel2", "2024-06-10", 2),
        ("enmap", "2024-06-12", 3),
        ("sentinel2", "2024-06-12", 4),
    ]
    good = [
        simulate_scene(sensor, out=root, size="tiny", date=date, seed=seed).item_path
        for sensor, date, seed in plan
    ]
    later = simulate_scene("sentinel2", out=root, size="tiny", date="2024-06-14", seed=5)
    bad = simulate_scene("enmap", out=root, size="tiny", date="2024-06-11", seed=6)
    (image,) = bad.item_path.parent.glob("*SPECTRAL_IMAGE*")
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])  # a download cut short
    centre = resolve_region(None)
    aoi = (centre.lon - 0.05, centre.lat - 0.05, centre.lon + 0.05, centre.lat + 0.05)
    return Region(
        aoi=aoi,
        good=good,
        later=later.item_path,
        corrupt=bad.item_path,
        corrupt_id=bad.item_path.stem,
        later_id=later.item_path.stem,
    )
