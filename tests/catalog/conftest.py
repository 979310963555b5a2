"""A real local STAC API (rustac) holding simulated scenes of all sensors and the real items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spectraflow.catalog import LocalCatalog, LocalStacServer, Provider
from spectraflow.simulate import SimulatedScene, simulate_scene

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data"
PERMIAN_BBOX = (-103.75, 31.85, -103.45, 32.05)  # around the "permian" preset's centre
DATES = ("2024-06-12", "2024-06-27")


@dataclass(frozen=True)
class LoadedCatalog:
    """What the session catalog holds, and where it is served."""

    url: str
    scenes: list[SimulatedScene]
    elsewhere: SimulatedScene  # a scene far from the Permian AOI
    bbox: tuple[float, float, float, float] = PERMIAN_BBOX
    dates: tuple[str, str] = DATES

    def provider(self, **options: object) -> Provider:
        return Provider(
            name="local",
            url=self.url,
            collections={
                "emit": ("EMITL2ARFL_001",),
                "enmap": ("ENMAP_HSI_L2A",),
                "sentinel2": ("sentinel-2-c1-l2a", "sentinel-2-l2a"),
            },
            backoff_s=0.0,
            **options,  # type: ignore[arg-type]
        )


def real_item_files() -> list[Path]:
    files = sorted((REAL / "dlr-geoservice").glob("*.json"))
    files += sorted((REAL / "earth-search-v1").glob("sentinel-2-*.json"))
    return files


def real_pc_items() -> list[dict]:
    return json.loads(
        (REAL / "planetary-computer" / "sentinel-2-l2a-pc_4items_PB05.10.json").read_text()
    )


@pytest.fixture(scope="session")
def loaded_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedCatalog]:
    out = tmp_path_factory.mktemp("scenes")
    scenes = [
        simulate_scene(sensor, out=out, date=day, region="permian")
        for day in DATES
        for sensor in ("emit", "enmap", "sentinel2")
    ]
    # The same Sentinel-2 acquisition as the older Earth Search collection serves it.
    scenes.append(
        simulate_scene(
            "sentinel2", out=out, date=DATES[0], region="permian", provider="earth-search-l2a"
        )
    )
    elsewhere = simulate_scene("enmap", out=out, date=DATES[0], region="hunter-valley")
    catalog = LocalCatalog(tmp_path_factory.mktemp("catalog"))
    catalog.add([s.item_path for s in [*scenes, elsewhere]] + real_item_files())
    catalog.add(real_pc_items())
    server: LocalStacServer
    with catalog.serve() as server:
        yield LoadedCatalog(server.url, scenes, elsewhere)
