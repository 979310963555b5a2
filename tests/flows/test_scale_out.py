"""``map_region`` scaled out and interrupted: separate Dask processes, and a SIGKILL mid-run.

Both runs are checked against one uninterrupted thread-pool run of the same region, pixel for
pixel. The Prefect test server comes from tests/flows/conftest.py (``prefect_server``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import rasterio
from distributed import Client

from spectraflow.catalog import LocalCatalog
from spectraflow.flows import map_region
from spectraflow.flows.summary import RunSummary

MODEL = "lc-any-wavelength"
SENSORS = ["enmap", "sentinel2"]
START, END = "2024-06-01", "2024-06-30"
ONE_THREAD = '{"kind": "threads", "n_workers": 1}'  # scenes one after another: easy to cut

# `Client.run` ships _executed to the worker processes, which cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def stac(region: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a local STAC API serving the region's four good scenes."""
    source = LocalCatalog(tmp_path_factory.mktemp("scale-out-source"))
    source.add(region.good)
    with source.serve() as api:
        yield api.url


@pytest.fixture(scope="module")
def reference(
    prefect_server: None, region: Any, stac: str, tmp_path_factory: pytest.TempPathFactory
) -> RunSummary:
    """An uninterrupted thread-pool run of the region."""
    out = tmp_path_factory.mktemp("scale-out-reference")
    summary = map_region(
        region.aoi, START, END, SENSORS, [MODEL], out=str(out), providers=[stac], runner="threads"
    )
    assert summary.failed == [] and MODEL in summary.products
    return summary


def _prefect_env(home: Path) -> dict[str, str]:
    """The environment of a child process that reports to the session's Prefect test server."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test server is not running"
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PREFECT_API_URL": str(url), "PREFECT_HOME": str(home)}


@pytest.fixture
def dask_workers(prefect_server: None, dask_processes: Any, tmp_path: Path) -> Iterator[str]:
    """A ``dask scheduler`` and two one-thread ``dask worker`` processes; yields the address."""
    env = {
        **_prefect_env(tmp_path / "dask-prefect-home"),
        "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": "1000000",  # keep every task's record
    }
    with dask_processes(tmp_path / "dask-logs", {"w1": [], "w2": []}, env=env) as cluster:
        yield cluster["address"]


def _executed(dask_worker: Any) -> list[str]:
    """Keys of the tasks a worker executed (run on the worker by ``Client.run``)."""
    return sorted({str(entry[0]) for entry in dask_worker.state.log if entry[2] == "executing"})


def _assert_same_product(a: RunSummary, b: RunSummary) -> None:
    first, second = a.products[MODEL], b.products[MODEL]
    assert first.id == second.id
    with rasterio.open(first.cog) as one, rasterio.open(second.cog) as two:
        assert (one.crs, one.transform, one.shape, one.count) == (
            two.crs, two.transform, two.shape, two.count,
        )  # fmt: skip
        assert np.array_equal(one.read(), two.read())
    items = [json.loads(Path(p.item).read_text()) for p in (first, second)]
    assert items[0]["geometry"] == items[1]["geometry"]
    assert items[0]["bbox"] == items[1]["bbox"]


def test_map_region_on_separate_dask_processes(
    region: Any, stac: str, reference: RunSummary, dask_workers: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = map_region(
        region.aoi, START, END, SENSORS, [MODEL],
        out=str(out), providers=[stac], runner=dask_workers,
    )  # fmt: skip

    assert summary.failed == [] and summary.product_errors == {}
    assert len(summary.scenes) == 4
    assert Path(summary.products[MODEL].cog).is_file()
    assert "Cached" not in summary.states()
    _assert_same_product(summary, reference)
    with Client(dask_workers, timeout=30) as client:
        executed = client.run(_executed)
        assert client.run(os.getpid).keys() == executed.keys()
    assert len(executed) == 2
    assert all(keys for keys in executed.values()), "both worker processes should run tasks"
    keys = [k for keys in executed.values() for k in keys]
    # every Prefect task (keyed by its function's name) ran in a worker process, and so did the
    # dask-array work inside them (tuple keys)
    prefect_tasks = [k.split("-")[0] for k in keys if not k.startswith("(")]
    expected = {"search_scenes": 1, "ingest_scene": 4, "predict": 4, "make_product": 1}
    for name, count in expected.items():
        assert prefect_tasks.count(name) == count, (name, sorted(set(prefect_tasks)))
    assert any(k.startswith("(") for k in keys)


def _complete(store: Path) -> bool:
    try:
        attrs = json.loads((store / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return attrs.get("_spectraflow_complete") is True


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


_CHILD = """
import json, sys
from spectraflow.flows import map_region
aoi, start, end, sensors, model, out, url, runner = json.loads(sys.argv[1])
map_region(tuple(aoi), start, end, sensors, [model], out=out, providers=[url], runner=runner)
"""


def test_a_killed_run_resumes_without_redoing_finished_scenes(
    region: Any,
    stac: str,
    reference: RunSummary,
    tmp_path: Path,
    kill_process_when: Callable[..., None],
) -> None:
    out = tmp_path / "out"
    args = [list(region.aoi), START, END, SENSORS, MODEL, str(out), stac, ONE_THREAD]
    env = _prefect_env(tmp_path / "prefect-home")
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    finished: dict[str, dict[str, int]] = {}  # scene id → its cube's files, when it was killed

    def a_scene_is_predicted() -> bool:
        for store in (out / "predictions").glob(f"*.{MODEL}.zarr"):
            scene = store.name.removesuffix(f".{MODEL}.zarr")
            if _complete(store) and scene not in finished:
                finished[scene] = _mtimes(out / "cubes" / f"{scene}.zarr")
        return bool(finished)

    kill_process_when(child, a_scene_is_predicted, timeout=60)
    assert child.returncode == -9
    assert not (out / "products").exists() or not any((out / "products").iterdir())

    summary = map_region(
        region.aoi, START, END, SENSORS, [MODEL], out=str(out), providers=[stac], runner="threads"
    )

    assert summary.failed == [] and summary.product_errors == {}
    by_id = {s.scene_id: s for s in summary.scenes}
    assert set(finished) < set(by_id)  # killed mid-way: some scenes were not done
    for scene, files in finished.items():
        ingest = [r.state for r in by_id[scene].stages if r.stage == "ingest"]
        assert ingest == ["Cached"], (scene, ingest)
        assert _mtimes(out / "cubes" / f"{scene}.zarr") == files
    undone = set(by_id) - set(finished)
    assert any(r.state == "Completed" for s in undone for r in by_id[s].stages)
    _assert_same_product(summary, reference)
