"""``map_region`` (a region's scenes into products) and ``backfill`` (it over date batches).

``map_region``: search → per-scene task chains → one mosaic per model → catalog + summary;
``backfill``: ``map_region`` over consecutive date batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from prefect import flow

from spectraflow.catalog.scene import Scene
from spectraflow.catalog.store import atomic_write
from spectraflow.catalog.timerange import parse_time_range
from spectraflow.errors import QueryError
from spectraflow.flows.scene import (
    Layout,
    Stages,
    collect_product,
    failure,
    product_name,
    run_scenes,
    stages_on,
    submit_product,
)
from spectraflow.flows.summary import RunSummary
from spectraflow.tasks.stages import model_label, search_scenes

__all__ = ["SUMMARY_FILE", "backfill", "map_region", "process_scenes"]

SUMMARY_FILE = "run-summary.json"
"""File under ``out`` that every ``map_region`` (and watch) run writes its summary to."""


def utc_now() -> dt.datetime:
    """The current time, UTC."""
    return dt.datetime.now(dt.UTC)


def as_names(values: Sequence[str] | str) -> list[str]:
    """A list of names from a list or a comma-separated string."""
    return [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)


def _span(scenes: Sequence[Scene]) -> str:
    first, last = min(s.datetime for s in scenes), max(s.datetime for s in scenes)
    return f"{first:%Y%m%d}" + ("" if first.date() == last.date() else f"-{last:%Y%m%d}")


def process_scenes(
    stages: Stages,
    scenes: Sequence[Scene],
    models: Sequence[str],
    layout: Layout,
    summary: RunSummary,
    *,
    policy: str,
    device: str | None,
) -> RunSummary:
    """Run the scene chains and one product per model into ``summary``; write it under ``out``.

    Must run inside a flow (``stages``' task runner does the work).
    """
    summary.scenes = run_scenes(scenes, models, layout, stages, device=device)
    by_id = {s.id: s for s in scenes}
    futures = {}
    for model in map(model_label, models):
        done = [o for o in summary.scenes if model in o.predictions]
        if not done:
            summary.product_errors[model] = "no scene has predictions of this model"
            continue
        name = product_name(model, _span([by_id[o.scene_id] for o in done]), policy)
        urls = [o.predictions[model] for o in done]
        futures[model] = submit_product(stages, layout, urls, name, policy)
    for model, future in futures.items():
        run, product, error = collect_product(stages, future, model)
        summary.stages.append(run)
        if product is not None:
            summary.products[model] = product
        else:
            summary.product_errors[model] = error or "unknown error"
    summary.finished = utc_now()
    failed = len(summary.failed)
    summary.message = (
        f"{len(scenes)} scene(s), {failed} failed; "
        f"{len(summary.products)} product(s) of {len(models)} model(s)"
    )
    write_summary(summary, layout)
    return summary


def write_summary(summary: RunSummary, layout: Layout) -> None:
    """Write ``summary`` to ``<out>/run-summary.json`` (atomically)."""
    atomic_write(layout.out / SUMMARY_FILE, summary.model_dump_json(indent=2) + "\n")


def search_stage(
    stages: Stages,
    aoi: Any,
    start: Any,
    end: Any,
    sensors: list[str],
    providers: list[str] | str | None,
    summary: RunSummary,
) -> list[Scene]:
    """Run the search task and record it in ``summary``; a failed search raises."""
    future = stages.submit(search_scenes, aoi, start, end, sensors, providers)
    summary.stages.append(stages.stage("search", future))
    if (exc := failure(future)) is not None:
        raise exc
    scenes: list[Scene] = future.result()
    return scenes


@flow(name="map-region")
def map_region(
    aoi: Any,
    start: str | dt.date | dt.datetime,
    end: str | dt.date | dt.datetime,
    sensors: Sequence[str] | str,
    models: Sequence[str] | str,
    *,
    out: str,
    providers: Sequence[str] | str | None = None,
    catalog: str | None = None,
    policy: str = "latest",
    runner: Any = None,
    device: str | None = None,
) -> RunSummary:
    """Map a region: search, process every scene, mosaic one product per model, publish.

    Scenes are processed concurrently through the task runner; one failed scene fails alone
    (its reason is in the summary) while the others complete. Finished work is skipped on a
    re-run (task results persisted under ``out/.prefect-results``).

    Parameters
    ----------
    aoi
        Area of interest in lon/lat (see :func:`spectraflow.catalog.search`).
    start, end
        Time range (a date-only ``end`` includes that day).
    sensors
        Any of ``"emit"``, ``"enmap"``, ``"sentinel2"``.
    models
        Model names or card files; each is run on the scenes whose bands it finds.
    out
        Output directory (layout: :mod:`spectraflow.flows.scene`); the summary goes to
        ``out/run-summary.json``.
    providers
        Registry names or STAC API URLs (default: every default provider).
    catalog
        Local STAC catalog directory the products are published to (default ``out/catalog``).
    policy
        Compositing policy of the mosaics: ``"latest"``, ``"best-confidence"`` or ``"mean"``.
    runner
        ``"threads"``, a spec of ``spectraflow.flows.runners.make_task_runner`` (default: its
        default, a dask ``LocalCluster``), or a prefect TaskRunner.
    device
        Inference device; default the best available.

    Returns
    -------
    RunSummary
    """
    layout = Layout.under(out, catalog)
    sensor_names, model_names = as_names(sensors), as_names(models)
    summary = RunSummary(
        flow="map_region", started=utc_now(), start=str(start), end=str(end),
        sensors=sensor_names, models=[model_label(m) for m in model_names],
    )  # fmt: skip
    where = None if providers is None else as_names(providers)
    with stages_on(runner) as stages:
        scenes = search_stage(stages, aoi, start, end, sensor_names, where, summary)
        return process_scenes(
            stages, scenes, model_names, layout, summary, policy=policy, device=device
        )


def _batches(
    start: str | dt.date | dt.datetime, end: str | dt.date | dt.datetime, days: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    if days < 1:
        raise QueryError(
            f"batch_days must be positive, got {days}", where="batch_days", fix="give 1 or more"
        )
    first, last = parse_time_range(start, end)
    if first is None or last is None:
        raise QueryError(
            "backfill needs a closed time range", where="start, end", fix="give both ends"
        )
    batches, step, tick = [], dt.timedelta(days=days), dt.timedelta(microseconds=1)
    while first <= last:
        batches.append((first, min(first + step - tick, last)))
        first += step
    return batches


@flow(name="backfill")
def backfill(
    aoi: Any,
    start: str | dt.date | dt.datetime,
    end: str | dt.date | dt.datetime,
    sensors: Sequence[str] | str,
    models: Sequence[str] | str,
    *,
    out: str,
    batch_days: int = 30,
    providers: Sequence[str] | str | None = None,
    catalog: str | None = None,
    policy: str = "latest",
    runner: Any = None,
    device: str | None = None,
) -> list[RunSummary]:
    """:func:`map_region` over consecutive batches of ``batch_days`` days from ``start`` to ``end``.

    Each batch makes its own products (named by their dates); a re-run skips finished batches'
    work through the task cache. ``out/run-summary.json`` holds the last batch's summary.

    Returns
    -------
    list of RunSummary
        One per batch, in time order.
    """
    summaries = []
    for first, last in _batches(start, end, batch_days):
        summary = map_region(
            aoi, first.isoformat(), last.isoformat(), sensors, models, out=out,
            providers=providers, catalog=catalog, policy=policy, runner=runner, device=device,
        )  # fmt: skip
        summaries.append(summary)
    return summaries
