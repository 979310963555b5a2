"""Prefect tasks over the library stages: search, ingest, predict, product.

Each task is a thin wrapper that passes references (scenes, URLs, small dicts), never arrays.

- Retries: network errors only (:func:`is_network_error`), with exponential backoff; bad data,
  band mismatches and missing credentials fail at once.
- Caching: keyed on the task's inputs plus the model card's version and weights hash (predict)
  and the spectraflow version (:func:`cache_key`). Results are persisted where the flow says
  (``task.with_options(result_storage=Path(...))``, see :mod:`spectraflow.flows`), so a re-run
  skips finished work. The library stages are idempotent themselves; the cache is the cheap path.
- Predict runs under the Prefect global concurrency limit ``"gpu"`` on CUDA devices; a limit
  that does not exist yet does not block (create one with
  ``prefect gcl create gpu --limit <number of GPUs>``).
- Memory: each stage gives back what it leaves behind (:mod:`spectraflow.tasks.memory`), so a
  process's memory stays flat over many scenes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.tasks import exponential_backoff

from spectraflow import __version__
from spectraflow.catalog.scene import Scene
from spectraflow.errors import AuthError
from spectraflow.tasks.memory import steady_memory

if TYPE_CHECKING:
    from prefect.client.schemas.objects import TaskRun
    from prefect.context import TaskRunContext
    from prefect.states import State
    from prefect.tasks import Task

__all__ = [
    "GPU_LIMIT",
    "cache_key",
    "ingest_scene",
    "is_network_error",
    "make_product",
    "model_label",
    "predict",
    "prediction_url",
    "search_scenes",
]

GPU_LIMIT = "gpu"
"""Name of the Prefect global concurrency limit that predict tasks on CUDA run under."""

_RETRIES = 3
_BACKOFF_S = 2.0  # 2, 4, 8 s (plus jitter) between attempts


# --- retries -----------------------------------------------------------------------------------


def _network_types() -> tuple[type[BaseException], ...]:
    import httpx
    import requests

    return (
        requests.ConnectionError,
        requests.Timeout,
        httpx.TransportError,  # connect/read errors and timeouts
        ConnectionError,
        TimeoutError,
    )


def is_network_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is a network error worth retrying.

    The chain (``__cause__``, else ``__context__``) is followed, because the library raises
    :class:`~spectraflow.errors.CatalogError` from the transport error (sometimes ``from None``,
    which still keeps the context). Refused credentials never count.
    """
    types = _network_types()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AuthError):
            return False
        if isinstance(exc, types):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _retry_on_network_error(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # a result that cannot be read is no reason to retry
        return False
    return isinstance(exc, BaseException) and is_network_error(exc)


_RETRY_OPTIONS: dict[str, Any] = {
    "retries": _RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=_BACKOFF_S),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": _retry_on_network_error,
}


# --- caching -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Scene):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _model_identity(model: str) -> dict[str, Any]:
    from spectraflow.models.card import load_card

    if model.endswith(".toml") and Path(model).is_file():
        card = load_card(Path(model))
    else:
        from spectraflow.models.registry import get_card  # imports torch: only for predict keys

        card = get_card(model)
    sha = card.weights.sha256 if card.weights is not None else None
    return {"model": card.name, "version": card.version, "weights_sha256": sha}


def _store_stamp(url: str) -> str | None:
    # A predictions store rewritten since (another model version) must not hit the old product.
    meta = Path(url) / "zarr.json"
    try:
        return str(meta.stat().st_mtime_ns)
    except OSError:
        return None


def cache_key(stage: str, parameters: dict[str, Any]) -> str:
    """The cache key of a ``stage`` task called with ``parameters``.

    Inputs, the spectraflow version, and for predict the model card's name, version and
    weights hash; for products, when each input store was last written.
    """
    inputs = {k: v for k, v in parameters.items() if k != "device"}  # same result on any device
    extra: dict[str, Any] = {"spectraflow": __version__}
    if stage == "predict":
        extra["card"] = _model_identity(str(parameters["model"]))
    if stage == "product":
        extra["stores"] = [_store_stamp(str(u)) for u in parameters["prediction_urls"]]
    text = json.dumps([stage, _jsonable(inputs), extra], sort_keys=True, default=str)
    return f"spectraflow-{stage}-{hashlib.sha256(text.encode()).hexdigest()}"


def _key_fn(stage: str) -> Any:
    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        return cache_key(stage, parameters)

    key.__name__ = f"cache_key_{stage}"
    return key


# --- naming ------------------------------------------------------------------------------------


def model_label(model: str) -> str:
    """A model's name as used in file names: the name, or a card file's stem."""
    return Path(model).stem if model.endswith(".toml") else model


def prediction_url(cube_url: str, model: str, out: str | os.PathLike[str]) -> str:
    """Where :func:`predict` writes ``model``'s predictions of a cube.

    That is ``<out>/<scene id>.<model>.zarr``, as ``spectraflow predict`` names them.
    """
    scene = Path(str(cube_url).rstrip("/")).name.removesuffix(".zarr")
    base = str(out)
    name = f"{scene}.{model_label(model)}.zarr"
    if "://" in base:
        return f"{base.rstrip('/')}/{name}"
    return str(Path(base).expanduser().resolve() / name)


# --- tasks -------------------------------------------------------------------------------------


@task(name="search-scenes", **_RETRY_OPTIONS)
def search_scenes(
    aoi: Any,
    start: date | datetime | str | None,
    end: date | datetime | str | None,
    sensors: Sequence[str] | str,
    providers: Sequence[str] | str | None = None,
) -> list[Scene]:
    """Scenes of ``sensors`` over ``aoi`` from ``start`` to ``end`` (``catalog.search``).

    Not cached: a catalog grows.
    """
    from spectraflow.catalog import search

    return search(aoi, start, end, sensors, providers=providers)


@task(
    name="ingest",
    cache_key_fn=_key_fn("ingest"),
    persist_result=True,
    task_run_name="ingest-{scene.id}",
    **_RETRY_OPTIONS,
)
def ingest_scene(scene: Scene, out: str) -> str:
    """Write ``scene`` into a cube under ``out``; return the cube URL (see ``cube.ingest``)."""
    from spectraflow.cube import ingest
    from spectraflow.flows.runners import cluster_compute

    with steady_memory(), cluster_compute():  # on a dask worker: writes use the cluster
        return ingest(scene, out=out)


def _on_cuda(device: str | None) -> bool:
    if device is None:
        from spectraflow.models.registry import resolve_device

        device = str(resolve_device(None))
    return device.startswith("cuda")


def _gpu_slot(device: str | None) -> AbstractContextManager[Any]:
    if not _on_cuda(device):
        return nullcontext()
    from prefect.concurrency.sync import concurrency

    # strict=False: without a "gpu" limit defined the slot is granted at once.
    return concurrency(GPU_LIMIT, occupy=1, strict=False)


@task(
    name="predict",
    cache_key_fn=_key_fn("predict"),
    persist_result=True,
    task_run_name="predict-{model}",
    **_RETRY_OPTIONS,
)
def predict(cube_url: str, model: str, out: str, device: str | None = None) -> str:
    """Run ``model`` over a cube into ``<out>/<scene>.<model>.zarr``; return that URL.

    Raises
    ------
    BandMismatchError
        The cube lacks the model's bands (not retried; the flows record it as skipped).
    """
    from spectraflow.flows.runners import cluster_compute, local_compute
    from spectraflow.inference import predict_cube

    target = prediction_url(cube_url, model, out)
    # A GPU task keeps its dask work next to its GPU; CPU inference spreads over the cluster.
    compute = local_compute() if _on_cuda(device) else cluster_compute()
    with steady_memory(), _gpu_slot(device), compute:
        return str(predict_cube(cube_url, model, out=target, device=device))


@task(
    name="product",
    cache_key_fn=_key_fn("product"),
    persist_result=True,
    task_run_name="product-{name}",
    **_RETRY_OPTIONS,
)
def make_product(
    prediction_urls: list[str],
    out: str,
    name: str,
    policy: str = "latest",
    catalog: str | None = None,
) -> dict[str, Any]:
    """Mosaic predictions stores of one model into product ``name`` under ``out``.

    Returns
    -------
    dict
        ``id``, ``cog``, ``item``, ``quicklook`` (paths as strings, quicklook may be None),
        and ``sources`` (the input stores).
    """
    from spectraflow.flows.runners import cluster_compute
    from spectraflow.mosaic import mosaic

    with steady_memory(), cluster_compute():
        product = mosaic(prediction_urls, out=out, name=name, policy=policy, catalog=catalog)
    return {
        "id": product.id,
        "cog": str(product.cog),
        "item": str(product.item),
        "quicklook": None if product.quicklook is None else str(product.quicklook),
        "sources": list(prediction_urls),
    }
