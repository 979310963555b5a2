"""The flows end to end on a tiny simulated region, served by a local STAC API.

Every flow runs on the thread-pool task runner under the session's Prefect test server.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import rasterio
import requests
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from spectraflow.catalog import LocalCatalog
from spectraflow.catalog.normalise import scene_from_item
from spectraflow.errors import CatalogError, SceneFormatError
from spectraflow.flows import backfill, map_region, process_scene, watch_catalog, watching
from spectraflow.flows.summary import RunSummary
from spectraflow.flows.watch import read_watermark
from spectraflow.tasks import stages
from spectraflow.tasks.stages import cache_key, is_network_error

MODEL = "lc-any-wavelength"
SENSORS = ["enmap", "sentinel2"]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _task_runs_of_latest(flow_name: str) -> list[str]:
    """Names of the task runs of the latest run of flow ``flow_name``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        ours = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        tasks = client.read_task_runs(flow_run_filter=ours)
    return [t.name for t in tasks]


def test_map_region_makes_a_product_and_a_rerun_skips_finished_work(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add(region.good)
    out = tmp_path / "out"
    with source.serve() as api:
        args = (region.aoi, "2024-06-01", "2024-06-30", SENSORS, [MODEL])
        events: list[tuple[str, str]] = []
        with watching(lambda stage, event: events.append((stage, event))):
            first = map_region(*args, out=str(out), providers=[api.url], runner="threads")

        assert [s.error for s in first.scenes] == [None] * 4
        assert {s.sensor for s in first.scenes} == set(SENSORS)
        product = first.products[MODEL]
        assert product.id == f"{MODEL}_20240610-20240612_latest"
        assert len(product.sources) == 4
        with rasterio.open(product.cog) as src:
            assert (src.read(1) > 0).mean() > 0.3
        items = LocalCatalog(out / "catalog").items()
        assert [i["id"] for i in items] == [product.id]
        written = RunSummary.model_validate_json((out / "run-summary.json").read_text())
        assert written.products[MODEL].cog == product.cog
        assert set(first.stage_seconds()) == {"search", "ingest", "predict", "product"}
        assert "Cached" not in first.states()
        # Whoever watches sees every task run submitted, then finished
        expected = {"search-scenes": 1, "ingest": 4, "predict": 4, "product": 1}
        for event in ("submitted", "finished"):
            assert Counter(stage for stage, e in events if e == event) == expected
        assert events.index(("ingest", "finished")) > events.index(("ingest", "submitted"))
        # One flow run holds every task run (no subflow for the task runner)
        assert sorted(t.split("-")[0] for t in _task_runs_of_latest("map-region")) == sorted(
            ["search"] + ["ingest"] * 4 + ["predict"] * 4 + ["product"]
        )
        before = _mtimes(out / "products") | _mtimes(out / "predictions")

        again = map_region(*args, out=str(out), providers=[api.url], runner="threads")

    # Every ingest, predict and product task came from the cache; no file was rewritten.
    assert set(again.states("ingest") + again.states("predict")) == {"Cached"}
    assert again.states("product") == ["Cached"]
    assert again.products[MODEL].cog == product.cog
    assert _mtimes(out / "products") | _mtimes(out / "predictions") == before


def test_a_deleted_output_is_made_again_despite_the_cache(region, tmp_path):
    out = tmp_path / "out"
    scene = scene_from_item(json.loads(region.good[1].read_text()))
    first = process_scene(scene, MODEL, out=str(out), runner="threads")
    assert first.error is None and set(first.products) == {MODEL}
    cog = Path(first.products[MODEL].cog)
    cog.unlink()

    runner = ThreadPoolTaskRunner(max_workers=2)  # a TaskRunner object, not a spec
    second = process_scene(scene, [MODEL], out=str(out), runner=runner)

    assert cog.is_file()
    states = {run.stage: run.state for run in second.stages}
    assert states == {"ingest": "Cached", "predict": "Cached", "product": "Completed"}


def test_a_corrupt_scene_fails_alone_with_its_reason(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add([*region.good[:2], region.corrupt])
    out = tmp_path / "out"
    with source.serve() as api:
        summary = map_region(
            region.aoi, "2024-06-09", "2024-06-11", SENSORS, [MODEL],
            out=str(out), providers=[api.url], runner="threads",
        )  # fmt: skip

    assert [s.scene_id for s in summary.failed] == [region.corrupt_id]
    reason = summary.failed[0].error or ""
    assert reason.startswith("ingest: SceneFormatError")
    assert summary.failed[0].predictions == {}
    ok = [s for s in summary.scenes if s.ok]
    assert len(ok) == 2 and all(MODEL in s.predictions for s in ok)
    assert Path(summary.products[MODEL].cog).is_file()
    assert len(summary.products[MODEL].sources) == 2
    assert "1 failed" in summary.message
    written = json.loads((out / "run-summary.json").read_text())
    errors = {s["scene_id"]: s["error"] for s in written["scenes"]}
    assert errors[region.corrupt_id] == reason


def test_watch_catalog_does_nothing_when_nothing_is_new(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add(region.good[:2])  # 2024-06-10
    out = tmp_path / "out"
    watch = {"out": str(out), "runner": "threads", "now": "2024-06-20", "lookback_days": 30}
    with source.serve() as api:
        first = watch_catalog(region.aoi, SENSORS, [MODEL], providers=[api.url], **watch)
        assert not first.nothing_new and len(first.scenes) == 2
        mark = read_watermark(out)
        assert set(mark.processed) == {s.scene_id for s in first.scenes}
        products = _mtimes(out / "products")
        assert products

        idle = watch_catalog(region.aoi, SENSORS, [MODEL], providers=[api.url], **watch)
        assert idle.nothing_new and idle.scenes == [] and idle.products == {}
        assert "nothing new" in idle.message
        assert _mtimes(out / "products") == products
        assert read_watermark(out) == mark

        source.add([region.later])
        api.reload()
        later = watch_catalog(region.aoi, SENSORS, [MODEL], providers=[api.url], **watch)

    assert [s.scene_id for s in later.scenes] == [region.later_id]
    assert later.products[MODEL].id == f"{MODEL}_20240614_latest"
    assert _mtimes(out / "products").items() >= products.items()  # older products untouched
    assert set(read_watermark(out).processed) == set(mark.processed) | {region.later_id}


def test_backfill_runs_map_region_per_batch(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add([region.good[1], region.good[3]])  # sentinel2 on 2024-06-10 and 2024-06-12
    with source.serve() as api:
        summaries = backfill(
            region.aoi, "2024-06-10", "2024-06-13", ["sentinel2"], [MODEL],
            out=str(tmp_path / "out"), batch_days=2, providers=[api.url], runner="threads",
        )  # fmt: skip

    assert [len(s.scenes) for s in summaries] == [1, 1]
    ids = [s.products[MODEL].id for s in summaries]
    assert ids == [f"{MODEL}_20240610_latest", f"{MODEL}_20240612_latest"]


def test_retries_follow_network_errors_only():
    calls: list[str] = []

    def fail(kind: str) -> None:
        if kind == "data":
            raise SceneFormatError("bad data", where="x.tif")
        try:
            raise requests.ConnectionError("connection refused")
        except requests.ConnectionError as exc:
            raise CatalogError("provider did not answer", where="provider test") from exc

    @task(**{**stages._RETRY_OPTIONS, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def flaky(kind: str) -> str:
        calls.append(kind)
        if len([c for c in calls if c == kind]) == 1:
            fail(kind)
        return kind

    @flow
    def run() -> list[str]:
        states = [flaky(kind, return_state=True) for kind in ("network", "data")]
        return [s.name for s in states]

    assert run() == ["Completed", "Failed"]
    assert calls == ["network", "network", "data"]  # data errors are not retried


def test_the_gpu_slot_does_not_need_the_limit_to_exist():
    entered = False
    with stages._gpu_slot("cuda"):  # no "gpu" limit on the test server
        entered = True
    assert entered


def test_network_errors_are_found_through_the_exception_chain():
    try:
        try:
            raise requests.Timeout("read timed out")
        except requests.Timeout:
            raise CatalogError("did not answer", where="provider x") from None
    except CatalogError as err:
        wrapped = err
    assert is_network_error(wrapped)
    assert not is_network_error(CatalogError("HTTP 404", where="provider x"))
    assert not is_network_error(SceneFormatError("truncated file", where="x.tif"))


def test_cache_keys_follow_the_model_version_and_the_spectraflow_version(monkeypatch, tmp_path):
    from spectraflow.models.registry import CARDS_DIR

    card = tmp_path / "lc.toml"
    text = (CARDS_DIR / f"{MODEL}.toml").read_text()
    card.write_text(text)
    params = {"cube_url": "/data/a.zarr", "model": str(card), "out": "/data/p", "device": "cpu"}
    key = cache_key("predict", params)
    assert cache_key("predict", {**params, "device": "cuda"}) == key  # same result anywhere
    assert cache_key("ingest", params) != key
    card.write_text(text.replace('version = "', 'version = "9', 1))
    assert cache_key("predict", params) != key  # a new model version
    card.write_text(text)
    assert cache_key("predict", params) == key
    monkeypatch.setattr(stages, "__version__", "999.0")
    assert cache_key("predict", params) != key


def test_a_stage_gives_back_its_leftovers_even_when_it_fails():
    from rasterio.env import get_gdal_config

    from spectraflow.tasks.memory import steady_memory

    size = get_gdal_config("GDAL_CACHEMAX")
    with pytest.raises(SceneFormatError), steady_memory():
        raise SceneFormatError("a failing stage", where="test")
    assert get_gdal_config("GDAL_CACHEMAX") == size > 0  # blocks dropped, the size kept


def test_an_unknown_runner_spec_is_refused():
    from spectraflow.flows.scene import resolve_runner

    with pytest.raises(ValueError, match=r"(?i)runner"):  # ConfigError is a ValueError
        resolve_runner("no-such-runner-spec")
