"""What a flow run did: per-scene outcomes, products and stage timings (pydantic, no I/O).

:class:`RunSummary` is what :func:`~spectraflow.flows.map_region` returns and writes to
``<out>/run-summary.json``; :class:`SceneOutcome` is what
:func:`~spectraflow.flows.process_scene` returns.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ProductRef", "RunSummary", "SceneOutcome", "StageRun"]

Stage = Literal["search", "ingest", "predict", "product"]


class StageRun(BaseModel):
    """One task run of a stage.

    Attributes
    ----------
    stage
        ``"search"``, ``"ingest"``, ``"predict"`` or ``"product"``.
    state
        The task's final Prefect state name: ``"Completed"``, ``"Cached"`` (finished work
        skipped) or ``"Failed"``.
    seconds
        Wall time from submission to completion as the flow saw it (includes time queued
        behind other tasks on a busy runner).
    model, scene_id
        The model and scene the run was for, when it was for one.
    """

    model_config = ConfigDict(frozen=True)

    stage: Stage
    state: str
    seconds: float
    model: str | None = None
    scene_id: str | None = None


class ProductRef(BaseModel):
    """A product written by a flow: its STAC item id and files (paths as strings)."""

    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    cog: str
    item: str
    quicklook: str | None = None
    sources: list[str] = Field(default_factory=list)


class SceneOutcome(BaseModel):
    """What became of one scene.

    Attributes
    ----------
    scene_id, sensor, datetime
        The scene.
    cube_url
        Its cube, or None when ingest failed.
    predictions
        Model → predictions store URL.
    products
        Model → per-scene product (:func:`~spectraflow.flows.process_scene` only).
    skipped
        Model → why it was not run on this scene (e.g. the scene lacks its bands).
    error
        Why the scene failed (error type and message), or None.
    stages
        The scene's task runs.
    """

    scene_id: str
    sensor: str
    datetime: dt.datetime | None = None
    cube_url: str | None = None
    predictions: dict[str, str] = Field(default_factory=dict)
    products: dict[str, ProductRef] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    stages: list[StageRun] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the scene was processed without error (skipped models are no error)."""
        return self.error is None


class RunSummary(BaseModel):
    """What a :func:`~spectraflow.flows.map_region` (or watch) run did.

    Attributes
    ----------
    flow
        The flow's name.
    started, finished
        UTC times of the run.
    start, end
        The time range searched (ISO 8601), as given.
    sensors, models
        As given.
    scenes
        One outcome per scene found, in time order.
    products
        Model → the product mosaicked over every scene with predictions of that model.
    product_errors
        Model → why its product could not be made.
    stages
        The run's own task runs (search, products); scenes hold theirs.
    nothing_new
        True when a watch run found no scene it had not processed (and did nothing).
    message
        One line for people.
    """

    flow: str
    started: dt.datetime
    finished: dt.datetime | None = None
    start: str | None = None
    end: str | None = None
    sensors: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    scenes: list[SceneOutcome] = Field(default_factory=list)
    products: dict[str, ProductRef] = Field(default_factory=dict)
    product_errors: dict[str, str] = Field(default_factory=dict)
    stages: list[StageRun] = Field(default_factory=list)
    nothing_new: bool = False
    message: str = ""

    @property
    def failed(self) -> list[SceneOutcome]:
        """Scenes that failed."""
        return [s for s in self.scenes if s.error is not None]

    @property
    def seconds(self) -> float | None:
        """Wall time of the run, once finished."""
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage summed over every task run of the run (not wall time)."""
        totals: dict[str, float] = {}
        for run in [*self.stages, *(r for s in self.scenes for r in s.stages)]:
            totals[run.stage] = totals.get(run.stage, 0.0) + run.seconds
        return totals

    def states(self, stage: str | None = None) -> list[str]:
        """Final state names of every task run (of one ``stage``), for checks like "all cached"."""
        runs = [*self.stages, *(r for s in self.scenes for r in s.stages)]
        return [r.state for r in runs if stage is None or r.stage == stage]
