"""Orchestration cost of the flows: ``map_region`` against the library calls it makes.

- Overhead: the same scenes, model and outputs two ways, each in a fresh process with empty
  output folders (no cache), after a warm-up that loads Prefect, torch and the model:

  * direct: ``catalog.search``, then ``cube.ingest`` of each scene, ``inference.predict_cube``
    of each cube, and ``mosaic.mosaic`` of the predictions, one after another in one thread;
    the sum of these calls' own times;
  * flow: ``map_region`` wall time, on a thread pool of one worker (the same sequence, so the
    difference is the orchestration: task runs, state reports to the Prefect server, result
    persistence and cache lookups) and on the default thread pool (``runner="threads"``,
    scenes concurrently).

  ``overhead_fraction`` = (flow wall − direct sum) ÷ direct sum, with the one-worker pool;
  ``overhead_fraction_threads`` the same with the default pool.
- Memory: peak RSS of a process running ``map_region`` (``runner="threads"``) over 2 scenes and
  over 8 scenes of the same sensors; ``peak_rss_ratio_8_vs_2`` = 8-scene peak ÷ 2-scene peak.
  The thread pool keeps every task in the measured process; the workers of a dask
  ``LocalCluster`` are other processes and would not be counted.

Scenes are simulated once under ``$SPECTRAFLOW_BENCH_DIR/flows`` (``demo`` size) and served by
a local STAC API; the Prefect server is one temporary server shared by every measurement.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.report import in_child, warm, work_dir, write_result

MODEL = "lc-any-wavelength"
SENSORS = ("enmap", "sentinel2")
DATES = ("2024-06-10", "2024-06-12", "2024-06-14", "2024-06-16")
SIZE = "demo"
OVERHEAD_DATES = DATES[:2]  # 4 scenes
ONE_WORKER = '{"kind": "threads", "n_workers": 1}'


def _aoi() -> tuple[float, float, float, float]:
    from spectraflow.simulate.world import resolve_region

    centre = resolve_region(None)
    return (centre.lon - 0.05, centre.lat - 0.05, centre.lon + 0.05, centre.lat + 0.05)


def _scenes(work: Path) -> dict[str, list[Path]]:
    """STAC item files of the simulated scenes by date (simulated on first use)."""
    from spectraflow.simulate import simulate_scene

    items: dict[str, list[Path]] = {}
    for d, date in enumerate(DATES):
        for s, sensor in enumerate(SENSORS):
            folder = work / "scenes" / date / sensor
            found = sorted(folder.glob("*/*.json")) if folder.exists() else []
            if not found:
                print(f"  simulating a {SIZE} {sensor} scene of {date} (once)", flush=True)
                seed = 10 * d + s + 1
                found = [
                    simulate_scene(sensor, out=folder, size=SIZE, date=date, seed=seed).item_path
                ]
            items.setdefault(date, []).append(found[0])
    return items


def _warm_up(out: Path) -> None:
    """Load Prefect (and reach its server), torch and the model before anything is timed."""
    from prefect import flow

    from spectraflow.models.registry import get_card

    @flow(name="bench-warm-up")
    def nothing() -> int:
        return 1

    nothing()
    get_card(MODEL)
    import torch  # noqa: F401

    from spectraflow.inference.runtime import runtime_for
    from spectraflow.models.registry import resolve_device

    runtime_for(MODEL, str(resolve_device(None)))
    shutil.rmtree(out, ignore_errors=True)


def _direct(catalog: str, dates: tuple[str, ...], out: str) -> dict[str, float]:
    """The library calls of map_region, one after another; each call's own seconds."""
    from spectraflow.catalog import LocalCatalog, search
    from spectraflow.cube import ingest
    from spectraflow.inference import predict_cube
    from spectraflow.mosaic import mosaic
    from spectraflow.tasks.stages import prediction_url

    root = Path(out)
    _warm_up(root)
    times = {"search": 0.0, "ingest": 0.0, "predict": 0.0, "product": 0.0}
    with LocalCatalog(Path(catalog)).serve() as api:
        start = time.perf_counter()
        scenes = search(_aoi(), dates[0], dates[-1], list(SENSORS), providers=[api.url])
        times["search"] = time.perf_counter() - start
        urls = []
        for scene in scenes:
            start = time.perf_counter()
            cube = ingest(scene, out=str(root / "cubes"))
            times["ingest"] += time.perf_counter() - start
            start = time.perf_counter()
            target = prediction_url(cube, MODEL, str(root / "predictions"))
            urls.append(str(predict_cube(cube, MODEL, out=target)))
            times["predict"] += time.perf_counter() - start
        start = time.perf_counter()
        name = f"{MODEL}_direct_latest"
        mosaic(urls, out=str(root / "products"), name=name, catalog=str(root / "catalog"))
        times["product"] = time.perf_counter() - start
    times["scenes"] = len(scenes)
    return times


def _flow(catalog: str, dates: tuple[str, ...], out: str, runner: str) -> dict[str, float]:
    """``map_region`` over ``dates``: its wall time (after a warm-up) and what it did."""
    from spectraflow.catalog import LocalCatalog
    from spectraflow.flows import map_region

    root = Path(out)
    _warm_up(root)
    with LocalCatalog(Path(catalog)).serve() as api:
        start = time.perf_counter()
        summary = map_region(
            _aoi(), dates[0], dates[-1], list(SENSORS), [MODEL],
            out=str(root), providers=[api.url], runner=runner,
        )  # fmt: skip
        wall = time.perf_counter() - start
    if summary.failed or MODEL not in summary.products:
        raise RuntimeError(f"map_region did not finish cleanly: {summary.message}")
    return {"wall": wall, "scenes": len(summary.scenes)}


def _catalog(work: Path, name: str, items: list[Path]) -> str:
    from spectraflow.catalog import LocalCatalog

    folder = work / "catalogs" / name
    shutil.rmtree(folder, ignore_errors=True)
    LocalCatalog(folder).add(items)
    warm(*(p.parent for p in items))
    return str(folder)


def _overhead(work: Path, items: dict[str, list[Path]]) -> dict[str, Any]:
    catalog = _catalog(work, "overhead", [p for d in OVERHEAD_DATES for p in items[d]])
    runs = work / "runs"
    direct = in_child(_direct, catalog, OVERHEAD_DATES, str(runs / "direct")).value
    direct_sum = sum(v for k, v in direct.items() if k != "scenes")
    print(f"  direct: {direct_sum:.1f} s over {direct['scenes']:.0f} scenes {direct}", flush=True)
    flows = {}
    for label, runner in (("one_worker", ONE_WORKER), ("threads", "threads")):
        flows[label] = in_child(_flow, catalog, OVERHEAD_DATES, str(runs / label), runner).value
        print(f"  map_region ({label}): {flows[label]['wall']:.1f} s", flush=True)
    shutil.rmtree(runs, ignore_errors=True)
    return {"direct": direct, "direct_sum": direct_sum, "flows": flows}


def _peak(work: Path, items: dict[str, list[Path]], dates: tuple[str, ...]) -> tuple[int, int]:
    catalog = _catalog(work, f"memory-{len(dates)}", [p for d in dates for p in items[d]])
    out = work / "runs" / f"memory-{len(dates)}"
    measured = in_child(_flow, catalog, dates, str(out), "threads")
    shutil.rmtree(out, ignore_errors=True)
    return measured.peak_rss_bytes, int(measured.value["scenes"])


def main() -> None:
    """Run the flows benchmark and write bench/results/flows.json."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    work = work_dir() / "flows"
    work.mkdir(parents=True, exist_ok=True)
    items = _scenes(work)
    home = work / "prefect-home"
    home.mkdir(exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=120):
        # spawned children inherit the environment: one server for every measurement
        os.environ["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        try:
            overhead = _overhead(work, items)
            small, n_small = _peak(work, items, DATES[:1])
            large, n_large = _peak(work, items, DATES)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    print(f"  peak RSS: {n_small} scenes {small / 2**20:.0f} MiB, {n_large} scenes "
          f"{large / 2**20:.0f} MiB", flush=True)  # fmt: skip
    direct_sum = overhead["direct_sum"]
    flows = overhead["flows"]
    write_result(
        "flows",
        params={
            "model": MODEL,
            "sensors": list(SENSORS),
            "size": SIZE,
            "overhead_scenes": int(overhead["direct"]["scenes"]),
            "overhead_compares": (
                "map_region wall time (fresh outputs, no cache, after a warm-up) against the "
                "sum of the same library calls run directly one after another in one thread "
                "(catalog.search, cube.ingest per scene, predict_cube per cube, mosaic), each "
                "in its own fresh process; overhead_fraction with a one-worker thread pool, "
                "overhead_fraction_threads with runner='threads'"
            ),
            "direct_seconds": {k: round(v, 2) for k, v in overhead["direct"].items()},
            "memory_scenes": [n_small, n_large],
            "memory_runner": (
                "threads (every task in the measured process; a LocalCluster's worker "
                "processes would not be counted)"
            ),
        },
        metrics={
            "overhead_fraction": (flows["one_worker"]["wall"] - direct_sum) / direct_sum,
            "overhead_fraction_threads": (flows["threads"]["wall"] - direct_sum) / direct_sum,
            "direct_sum_s": direct_sum,
            "flow_wall_s": flows["one_worker"]["wall"],
            "flow_wall_threads_s": flows["threads"]["wall"],
            "peak_rss_ratio_8_vs_2": large / small,
            "peak_rss_2_scenes_mib": small / 2**20,
            "peak_rss_8_scenes_mib": large / 2**20,
        },
        goals={"overhead_fraction": "<= 0.05", "peak_rss_ratio_8_vs_2": "<= 1.2"},
    )
