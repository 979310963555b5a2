"""``spectraflow map-region``, ``watch`` and ``backfill``: the Prefect flows from the shell.

Each command runs its flow in this process (Prefect's ephemeral server unless
``PREFECT_API_URL`` points at a server) with a progress bar per stage, prints the products and
what failed and why, and exits with status 1 when a scene or product failed (the others are
still made).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spectraflow.cli._common import (
    DeviceOption,
    progress_bar,
    reporting_errors,
    stderr,
    stdout,
)
from spectraflow.cli.mosaic import Policy

__all__ = ["RunnerOption", "backfill", "flow_progress", "map_region", "print_failures", "watch"]

_STAGE_LABELS = {"search-scenes": "search", "product": "products"}
# Per-run chatter: the bars show it. Warnings and errors still print.
_CHATTY_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.task_runner", "distributed")
# The same for the processes of a local dask cluster, which read it from their environment.
_QUIET_WORKERS = {"PREFECT_LOGGING_LEVEL": "WARNING", "DASK_LOGGING__DISTRIBUTED": "warning"}


@contextmanager
def flow_progress() -> Iterator[None]:
    """A bar per stage (task runs finished of those submitted) while the block runs flows.

    The flow and task runs' INFO logs, and dask's, are held back meanwhile.
    """
    import distributed  # noqa: F401  (importing it sets its loggers' levels)
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging

    from spectraflow.flows.progress import watching

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()  # what the first flow run does, which would undo the quieting
    totals: dict[str, int] = {}
    with progress_bar() as bar, _quiet(_CHATTY_LOGGERS), _environment(_QUIET_WORKERS):
        tasks: dict[str, Any] = {}

        def watch(stage: str, event: str) -> None:
            label = _STAGE_LABELS.get(stage, stage)
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=0)
            if event == "submitted":
                totals[label] = totals.get(label, 0) + 1
                bar.update(tasks[label], total=totals[label])
            else:
                bar.advance(tasks[label])

        with watching(watch):
            yield


@contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """``defaults`` in the environment while the block runs, where the user set nothing."""
    added = {k: v for k, v in defaults.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextmanager
def _quiet(prefixes: tuple[str, ...]) -> Iterator[None]:
    """Only warnings from the loggers under ``prefixes`` while the block runs."""
    names = [
        name
        for name in [*logging.root.manager.loggerDict, *prefixes]
        if any(name == p or name.startswith(p + ".") for p in prefixes)
    ]
    loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


AoiOption = Annotated[
    str,
    typer.Option(
        metavar="AOI",
        help="Area of interest in lon/lat: 'lon_min,lat_min,lon_max,lat_max', a GeoJSON file "
        "or WKT.",
    ),
]
SensorOption = Annotated[
    str,
    typer.Option(
        "--sensor", "-s", metavar="LIST", help="Sensors, comma-separated: emit,enmap,sentinel2."
    ),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="LIST",
        help="Models, comma-separated; each runs on the scenes that have its bands.",
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Working directory: cubes/, predictions/, products/, catalog/, run-summary.json.",
    ),
]
ProviderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--provider",
        "-p",
        metavar="NAME|URL",
        help="Provider to search (repeat): a registry name or any STAC API URL.",
    ),
]
RunnerOption = Annotated[
    str | None,
    typer.Option(
        metavar="RUNNER",
        show_default="$SPECTRAFLOW_RUNNER, else a dask LocalCluster",
        help="threads, local, a dask scheduler address (tcp://…), kubernetes, gateway, coiled, "
        "slurm or cuda.",
    ),
]
StartOption = Annotated[str, typer.Option(metavar="DATE", help="Start of the time range (UTC).")]
EndOption = Annotated[str, typer.Option(metavar="DATE", help="End; a date includes the whole day.")]
PolicyOption = Annotated[
    Policy, typer.Option(help="Compositing where scenes overlap (see 'spectraflow mosaic').")
]


def print_failures(summary: Any) -> bool:
    """Print the products not made and the scenes that failed, and why; whether there were any."""
    for name, reason in summary.product_errors.items():
        stderr().print(f"[yellow]product {escape(name)} not made:[/] {escape(reason)}")
    failed = [scene for scene in summary.scenes if scene.error]
    for scene in failed:
        stderr().print(f"[yellow]{escape(scene.scene_id)} failed:[/] {escape(scene.error)}")
    return bool(summary.product_errors or failed)


def _report(summaries: list[Any]) -> None:
    """Print the products and failures of flow runs; exit 1 if anything failed."""
    failed = False
    for summary in summaries:
        if summary.nothing_new:
            stdout().print(summary.message or "nothing new")
        for product in summary.products.values():
            stdout().print(f"[cyan]{product.id}[/]  {product.cog}")
        failed |= print_failures(summary)
    if failed:
        raise typer.Exit(code=1)


def map_region(
    aoi: AoiOption,
    start: StartOption,
    end: EndOption,
    model: ModelOption,
    out: OutOption,
    sensor: SensorOption = "emit,enmap,sentinel2",
    provider: ProviderOption = None,
    policy: PolicyOption = Policy.latest,
    runner: RunnerOption = None,
    device: DeviceOption = None,
) -> None:
    r"""Map a region: search, ingest and predict every scene, mosaic one product per model.

    Runs the map_region Prefect flow. Scenes are processed concurrently on the task runner;
    a scene that fails is reported with its reason while the others complete; a re-run skips
    finished work. Example:

        spectraflow map-region --aoi -103.9,31.9,-103.5,32.2 --start 2024-06-01 \\
            --end 2024-06-30 --model lc-any-wavelength --out runs/permian
    """
    with reporting_errors():
        from spectraflow.flows import map_region as flow

        with flow_progress():
            summary = flow(
                aoi, start, end, sensor, model, out=str(out), providers=provider or None,
                policy=policy.value, runner=runner, device=device,
            )  # fmt: skip
        _report([summary])


def watch(
    aoi: AoiOption,
    model: ModelOption,
    out: OutOption,
    sensor: SensorOption = "emit,enmap,sentinel2",
    provider: ProviderOption = None,
    lookback_days: Annotated[
        float, typer.Option(metavar="DAYS", help="How far back the first run looks.")
    ] = 30,
    runner: RunnerOption = None,
    device: DeviceOption = None,
) -> None:
    """Process the scenes that appeared since the last successful run (for schedules).

    Runs the watch_catalog Prefect flow: its watermark (OUT/watermark.json) remembers what was
    processed, so a run with nothing new does nothing. prefect.yaml deploys it on a schedule.
    """
    with reporting_errors():
        from spectraflow.flows import watch_catalog

        with flow_progress():
            summary = watch_catalog(
                aoi, sensor, model, out=str(out), providers=provider or None,
                lookback_days=lookback_days, runner=runner, device=device,
            )  # fmt: skip
        _report([summary])


def backfill(
    aoi: AoiOption,
    start: StartOption,
    end: EndOption,
    model: ModelOption,
    out: OutOption,
    sensor: SensorOption = "emit,enmap,sentinel2",
    provider: ProviderOption = None,
    batch_days: Annotated[int, typer.Option(metavar="DAYS", min=1, help="Days per batch.")] = 30,
    runner: RunnerOption = None,
    device: DeviceOption = None,
) -> None:
    """Map a long time range in batches of days (one map_region run and product per batch)."""
    with reporting_errors():
        from spectraflow.flows import backfill as flow

        with flow_progress():
            summaries = flow(
                aoi, start, end, sensor, model, out=str(out), batch_days=batch_days,
                providers=provider or None, runner=runner, device=device,
            )  # fmt: skip
        _report(summaries)
