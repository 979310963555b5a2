"""``watch_catalog``: for schedules; processes the scenes that appeared since the last success.

The watermark, ``<out>/watermark.json``, holds the newest acquisition time processed and the ids
processed (with their times)::

    {"newest": "2024-06-27T17:40:00Z", "processed": {"<scene id>": "<datetime>", ...},
     "updated": "<time of the run>"}

A run searches from ``min(newest, now - lookback_days)`` to ``now`` (the overlap catches items
that a provider indexes late), drops scenes already processed, and processes the rest like
:func:`~spectraflow.flows.map_region` (products named by the new scenes' dates). The watermark is
updated only after the run, with the scenes that succeeded: failed scenes are tried again next
time. Ids older than the search window are forgotten (no search returns them again).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field, ValidationError

from spectraflow.catalog.store import atomic_write
from spectraflow.catalog.timerange import parse_time_range
from spectraflow.errors import ConfigError
from spectraflow.flows.region import (
    as_names,
    process_scenes,
    search_stage,
    utc_now,
    write_summary,
)
from spectraflow.flows.scene import Layout, Stages, stages_on
from spectraflow.flows.summary import RunSummary
from spectraflow.tasks.stages import model_label

__all__ = ["WATERMARK_FILE", "Watermark", "read_watermark", "watch_catalog"]

WATERMARK_FILE = "watermark.json"


class Watermark(BaseModel):
    """The state of a watch: newest acquisition processed and the ids processed."""

    newest: dt.datetime | None = None
    processed: dict[str, dt.datetime] = Field(default_factory=dict)
    updated: dt.datetime | None = None


def read_watermark(out: str | Path) -> Watermark:
    """The watermark under ``out`` (an empty one before the first success).

    Raises
    ------
    ConfigError
        The file exists but is not a watermark.
    """
    path = Path(out) / WATERMARK_FILE
    if not path.is_file():
        return Watermark()
    try:
        return Watermark.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as err:
        raise ConfigError(
            f"the watermark is unreadable: {err}",
            where=str(path),
            fix="fix or delete the file (deleting it reprocesses the lookback window)",
        ) from err


def _write_watermark(out: Path, mark: Watermark) -> None:
    atomic_write(out / WATERMARK_FILE, mark.model_dump_json(indent=2) + "\n")


def _watch(
    stages: Stages,
    aoi: Any,
    sensors: list[str],
    models: list[str],
    out: str,
    providers: list[str] | str | None,
    catalog: str | None,
    policy: str,
    device: str | None,
    lookback_days: float,
    now: str | None,
) -> RunSummary:
    layout = Layout.under(out, catalog)
    end = (parse_time_range(None, now)[1] if now else None) or utc_now()
    mark = read_watermark(layout.out)
    start = end - dt.timedelta(days=lookback_days)
    if mark.newest is not None:
        start = min(start, mark.newest)
    summary = RunSummary(
        flow="watch_catalog", started=utc_now(), start=start.isoformat(), end=end.isoformat(),
        sensors=sensors, models=[model_label(m) for m in models],
    )  # fmt: skip
    found = search_stage(stages, aoi, start, end, sensors, providers, summary)
    new = [s for s in found if s.id not in mark.processed]
    if not new:
        summary.nothing_new = True
        summary.finished = utc_now()
        summary.message = f"nothing new: {len(found)} scene(s) found, all processed before"
        write_summary(summary, layout)
        return summary
    summary = process_scenes(stages, new, models, layout, summary, policy=policy, device=device)
    summary.message = f"{len(new)} new scene(s) of {len(found)} found; " + summary.message
    write_summary(summary, layout)
    done = {o.scene_id: o.datetime for o in summary.scenes if o.ok and o.datetime is not None}
    if done:
        kept = {k: v for k, v in mark.processed.items() if v >= start}
        newest = max([*done.values(), *([mark.newest] if mark.newest else [])])
        _write_watermark(
            layout.out, Watermark(newest=newest, processed={**kept, **done}, updated=utc_now())
        )
    return summary


@flow(name="watch-catalog")
def watch_catalog(
    aoi: Any,
    sensors: Sequence[str] | str,
    models: Sequence[str] | str,
    *,
    out: str,
    providers: Sequence[str] | str | None = None,
    lookback_days: float = 30,
    catalog: str | None = None,
    policy: str = "latest",
    runner: Any = None,
    device: str | None = None,
    now: str | None = None,
) -> RunSummary:
    """Process the scenes over ``aoi`` that appeared since the last successful run.

    Parameters
    ----------
    aoi, sensors, models, providers, catalog, policy, runner, device
        As in :func:`~spectraflow.flows.map_region`.
    out
        Output directory; holds the watermark (``watermark.json``) and ``run-summary.json``.
    lookback_days
        How far back the first run looks, and the overlap of later runs' searches.
    now
        The end of the search window (ISO 8601; default the current time): for replays.

    Returns
    -------
    RunSummary
        With ``nothing_new`` true (and nothing processed or written but the summary) when
        every scene found was processed before.
    """
    with stages_on(runner) as stages:
        return _watch(
            stages, aoi, as_names(sensors), as_names(models), str(out),
            None if providers is None else as_names(providers), catalog, policy, device,
            float(lookback_days), now,
        )  # fmt: skip
