"""``process_scene`` (one scene into products) and the per-scene task chains of the flows.

:func:`run_scenes` is what :func:`~spectraflow.flows.map_region` fans out. The flows take their
task runner as a parameter (a deployment can set it), so each starts it itself
(:func:`stages_on`) and submits its tasks to it: one flow run per call.

Layout under ``out``::

    cubes/<scene id>.zarr                     ingest
    predictions/<scene id>.<model>.zarr       predict
    products/<product name>/                  COG, STAC item, quicklook
    catalog/                                  the products' STAC catalog (default)
    .prefect-results/                         persisted task results (the cache)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner
from prefect.utilities.callables import get_call_parameters

from spectraflow.catalog.scene import Scene
from spectraflow.errors import BandMismatchError
from spectraflow.flows.progress import Watcher, current_watcher
from spectraflow.flows.runners import gpu_resources, make_task_runner, share_prefect_server
from spectraflow.flows.summary import ProductRef, SceneOutcome, StageRun
from spectraflow.tasks.stages import (
    ingest_scene,
    make_product,
    model_label,
    predict,
    prediction_url,
)

if TYPE_CHECKING:
    from prefect import Task

__all__ = ["Layout", "Stages", "process_scene", "resolve_runner", "stages_on"]

RunnerLike = str | TaskRunner[Any] | None
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_runner(runner: RunnerLike) -> TaskRunner[Any]:
    """The task runner for ``runner``: a TaskRunner as is, else the factory's.

    See :func:`spectraflow.flows.runners.make_task_runner` (default: a dask ``LocalCluster``).
    """
    if isinstance(runner, TaskRunner):
        return runner
    return make_task_runner(runner)


def _runner_label(runner: RunnerLike) -> str | None:
    # Flow parameters are stored as JSON: a TaskRunner object goes in by its class name.
    return runner if runner is None or isinstance(runner, str) else type(runner).__name__


@dataclass(frozen=True)
class Layout:
    """Where a flow writes under ``out`` (see the module docstring)."""

    out: Path
    catalog: Path

    @classmethod
    def under(cls, out: str | os.PathLike[str], catalog: str | os.PathLike[str] | None) -> Layout:
        """The layout under ``out`` (created), with the products' catalog (default out/catalog)."""
        root = Path(out).expanduser().absolute()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, Path(catalog).expanduser().absolute() if catalog else root / "catalog")

    @property
    def cubes(self) -> str:
        """Directory of the cubes."""
        return str(self.out / "cubes")

    @property
    def predictions(self) -> str:
        """Directory of the predictions stores."""
        return str(self.out / "predictions")

    @property
    def products(self) -> str:
        """Directory of the products."""
        return str(self.out / "products")

    @property
    def results(self) -> Path:
        """Directory of the persisted task results (the cache)."""
        return self.out / ".prefect-results"

    def product_cog(self, name: str) -> Path:
        """The main COG of product ``name``."""
        return self.out / "products" / name / f"{name}.tif"

    def bind(self, task: Task[..., Any], expected: str | os.PathLike[str]) -> Task[..., Any]:
        """``task`` persisting its results here; its cache is bypassed when ``expected`` is gone.

        A cached reference to a file somebody deleted would be a lie; the library stages are
        idempotent, so re-running them is safe.
        """
        return task.with_options(
            result_storage=self.results, refresh_cache=not Path(expected).exists()
        )


def product_name(*parts: str) -> str:
    """A product name (directory, file stem, STAC item id) from ``parts``."""
    return _NAME_RE.sub("-", "_".join(parts))


def failure(future: PrefectFuture[Any]) -> BaseException | None:
    """The exception a finished task run failed with, or None when it did not fail."""
    state = future.state
    if not state.is_failed() and not state.is_crashed():
        return None
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        return result
    return RuntimeError(state.message or f"task ended in state {state.name}")


def describe(exc: BaseException) -> str:
    """``"<error type>: <message>"`` with credentials and signatures redacted."""
    from spectraflow.catalog.redaction import redact

    return f"{type(exc).__name__}: {redact(str(exc))}"


@dataclass
class Stages:
    """Submits a flow's tasks to its task runner and times them (:class:`StageRun` seconds).

    Seconds run from submission to completion, so they include time queued for a worker.
    """

    runner: TaskRunner[Any]
    watcher: Watcher | None = field(default_factory=current_watcher)
    submitted: dict[int, tuple[str, float]] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)

    def submit(self, task: Task[..., Any], *args: Any) -> PrefectFuture[Any]:
        """``task(*args)`` on the runner (what ``task.submit`` does with a flow's own runner)."""
        future = self.runner.submit(task, get_call_parameters(task.fn, args, {}))
        self.submitted[id(future)] = (task.name, time.monotonic())
        self.done.pop(id(future), None)
        if self.watcher is not None:
            self.watcher(task.name, "submitted")
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: PrefectFuture[Any]) -> None:
        self.done[id(future)] = time.monotonic()
        if self.watcher is not None:
            self.watcher(self.submitted[id(future)][0], "finished")

    def stage(self, stage: Any, future: PrefectFuture[Any], **kw: Any) -> StageRun:
        """The finished (waited for) task run as a :class:`StageRun`."""
        future.wait()
        end = self.done.get(id(future), time.monotonic())
        seconds = max(end - self.submitted.get(id(future), ("", end))[1], 0.0)
        return StageRun(stage=stage, state=future.state.name, seconds=round(seconds, 3), **kw)


@contextmanager
def stages_on(runner: RunnerLike) -> Iterator[Stages]:
    """:class:`Stages` on the task runner for ``runner``, started for the block."""
    chosen = runner.duplicate() if isinstance(runner, TaskRunner) else resolve_runner(runner)
    share_prefect_server(chosen)
    with chosen:
        yield Stages(chosen)


def run_scenes(
    scenes: Sequence[Scene],
    models: Sequence[str],
    layout: Layout,
    stages: Stages,
    *,
    device: str | None,
) -> list[SceneOutcome]:
    """Ingest and predict ``scenes`` concurrently through the flow's task runner.

    Predict tasks of a scene are submitted as soon as its cube is ready. A scene whose ingest
    or prediction fails is recorded with the reason; a model whose bands a scene lacks is
    recorded as skipped for it, without a task (a scene no model can read is not ingested).
    Nothing raises for one scene.

    Raises
    ------
    ModelError
        A model name or card is unknown or invalid (before anything runs).
    """
    from spectraflow.cube.ingest import cube_url

    outcomes = {
        s.id: SceneOutcome(scene_id=s.id, sensor=s.sensor, datetime=s.datetime) for s in scenes
    }
    usable = {s.id: _models_for(s, models, outcomes[s.id]) for s in scenes}
    ingests: dict[int, tuple[Scene, PrefectFuture[str]]] = {}
    for scene in (s for s in scenes if usable[s.id]):
        task = layout.bind(ingest_scene, Path(cube_url(scene, layout.cubes)) / "zarr.json")
        future = stages.submit(task, scene, layout.cubes)
        ingests[id(future)] = (scene, future)

    predictions: list[tuple[Scene, str, PrefectFuture[str]]] = []
    for done in as_completed([f for _, f in ingests.values()]):
        scene, _ = ingests[id(done)]
        outcome = outcomes[scene.id]
        outcome.stages.append(stages.stage("ingest", done, scene_id=scene.id))
        if (exc := failure(done)) is not None:
            outcome.error = f"ingest: {describe(exc)}"
            continue
        cube = done.result()
        outcome.cube_url = cube
        for model in usable[scene.id]:
            target = prediction_url(cube, model, layout.predictions)
            task = layout.bind(predict, Path(target) / "zarr.json")
            with gpu_resources(stages.runner):  # on GPU workers, if the cluster has any
                pending = stages.submit(task, cube, model, layout.predictions, device)
            predictions.append((scene, model, pending))

    for scene, model, pending in predictions:
        outcome = outcomes[scene.id]
        label = model_label(model)
        outcome.stages.append(stages.stage("predict", pending, scene_id=scene.id, model=label))
        if (exc := failure(pending)) is None:
            outcome.predictions[label] = pending.result()
        elif isinstance(exc, BandMismatchError):
            outcome.skipped[label] = describe(exc)
        elif outcome.error is None:
            outcome.error = f"predict {label}: {describe(exc)}"
    return [outcomes[s.id] for s in scenes]


def _models_for(scene: Scene, models: Sequence[str], outcome: SceneOutcome) -> list[str]:
    """The models whose bands ``scene`` has; the others are recorded as skipped for it.

    The scene's band table is the provider's; the cube's may flag more bands bad, so predict
    can still find a mismatch (also recorded as skipped).
    """
    from spectraflow.models import get_card
    from spectraflow.models.bands import select_bands

    usable = []
    for model in models:
        card = get_card(model)
        try:
            select_bands(scene.bands, card.input, model=card.name)
        except BandMismatchError as exc:
            outcome.skipped[model_label(model)] = describe(exc)
        else:
            usable.append(model)
    return usable


def submit_product(
    stages: Stages, layout: Layout, urls: Sequence[str], name: str, policy: str
) -> PrefectFuture[dict[str, Any]]:
    """Submit the product task for ``urls`` (bypassing the cache when the COG is gone)."""
    task = layout.bind(make_product, layout.product_cog(name))
    return stages.submit(task, list(urls), layout.products, name, policy, str(layout.catalog))


def collect_product(
    stages: Stages, future: PrefectFuture[dict[str, Any]], model: str
) -> tuple[StageRun, ProductRef | None, str | None]:
    """The stage run of a product task and its product, or why it failed."""
    run = stages.stage("product", future, model=model)
    if (exc := failure(future)) is not None:
        return run, None, describe(exc)
    return run, ProductRef(model=model, **future.result()), None


def _as_scene(scene: Scene | dict[str, Any] | str) -> Scene:
    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, dict):
        return Scene.model_validate(scene)
    from spectraflow.catalog import find_scene

    found: Scene = find_scene(scene)
    return found


@flow(name="process-scene")
def process_scene(
    scene: Scene | dict[str, Any] | str,
    models: Sequence[str] | str,
    *,
    out: str,
    device: str | None = None,
    products: bool = True,
    catalog: str | None = None,
    runner: Any = None,
) -> SceneOutcome:
    """Ingest one scene, predict it with each model whose bands it has, and map each prediction.

    Parameters
    ----------
    scene
        A :class:`~spectraflow.catalog.Scene` (or its dict), or the href of its STAC item.
    models
        Model names or card files (one name, or a list). A model whose bands the scene lacks
        is skipped for it, and the outcome says why.
    out
        Output directory (layout: module docstring).
    device
        ``"cuda"``, ``"mps"`` or ``"cpu"``; default the best available.
    products
        Also write a product (COG, STAC item, quicklook) per model from this scene alone,
        named ``<scene id>_<model>``.
    catalog
        Local STAC catalog directory the products are published to (default ``out/catalog``).
    runner
        Task runner: ``"threads"``, a spec of ``spectraflow.flows.runners``, or a TaskRunner.

    Returns
    -------
    SceneOutcome
        Cube, predictions and products, and the error (type and message) if the scene failed.
    """
    names = [models] if isinstance(models, str) else list(models)
    layout = Layout.under(out, catalog)
    with stages_on(runner) as stages:
        (outcome,) = run_scenes([_as_scene(scene)], names, layout, stages, device=device)
        if not products or outcome.error is not None:
            return outcome
        futures = {
            label: submit_product(
                stages, layout, [url], product_name(outcome.scene_id, label), "latest"
            )
            for label, url in outcome.predictions.items()
        }
        for label, future in futures.items():
            run, product, error = collect_product(stages, future, label)
            outcome.stages.append(run)
            if product is not None:
                outcome.products[label] = product
            elif outcome.error is None:
                outcome.error = f"product {label}: {error}"
    return outcome
