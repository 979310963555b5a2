"""Task runners for the flows, chosen by configuration: threads, a Dask cluster, or a GPU cluster.

:func:`make_task_runner` turns a :class:`RunnerSpec` (or a short string such as ``"local"`` or
``"tcp://scheduler:8786"``) into a Prefect task runner. Every kind but ``threads`` is a
:class:`prefect_dask.DaskTaskRunner`; the cluster behind it is chosen by ``kind``:

========== ================================================ ===================
kind       cluster                                          extra to install
========== ================================================ ===================
threads    none (``prefect.task_runners.ThreadPoolTaskRunner``)  –
local      ``distributed.LocalCluster`` (the default)       –
address    an existing scheduler (``address="tcp://…"``)    –
kubernetes ``dask_kubernetes.operator.KubeCluster``         ``kubernetes``
gateway    ``dask_gateway.GatewayCluster``                  ``gateway``
coiled     ``coiled.Cluster``                               ``coiled``
slurm      ``dask_jobqueue.SLURMCluster``                   ``slurm``
cuda       ``dask_cuda.LocalCUDACluster`` (resource GPU=1)  ``cuda``
========== ================================================ ===================

Without an argument the runner comes from the environment variable ``SPECTRAFLOW_RUNNER``
(a string as above, or a :class:`RunnerSpec` as JSON), and is ``local`` when it is unset.

Inside a task, wrap library calls that compute dask arrays in :func:`cluster_compute` to spread
their graphs over the same cluster as the tasks (CPU-bound stages: ingest, mosaic), or in
:func:`local_compute` to keep them in the worker that runs the task (GPU-bound stages: predict,
which must stay next to its GPU). Submit GPU-bound tasks under :func:`gpu_resources` so that
they are placed on GPU workers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spectraflow.errors import ConfigError

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

__all__ = [
    "GPU_RESOURCE",
    "RUNNER_ENV",
    "RunnerKind",
    "RunnerSpec",
    "cluster_compute",
    "gpu_resources",
    "local_compute",
    "make_task_runner",
    "share_prefect_server",
]

RUNNER_ENV = "SPECTRAFLOW_RUNNER"
"""Environment variable read by :func:`make_task_runner` when it is given no runner."""

GPU_RESOURCE = "GPU"
"""Name of the Dask worker resource that marks one GPU (``dask worker --resources GPU=1``)."""

RunnerKind = Literal[
    "threads", "local", "address", "kubernetes", "gateway", "coiled", "slurm", "cuda"
]

# kind → (module, class, pyproject extra) for the clusters that need an optional backend
_OPTIONAL_CLUSTERS: dict[str, tuple[str, str, str]] = {
    "kubernetes": ("dask_kubernetes.operator", "KubeCluster", "kubernetes"),
    "gateway": ("dask_gateway", "GatewayCluster", "gateway"),
    "coiled": ("coiled", "Cluster", "coiled"),
    "slurm": ("dask_jobqueue", "SLURMCluster", "slurm"),
    "cuda": ("dask_cuda", "LocalCUDACluster", "cuda"),
}
_ADDRESS_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://")


class RunnerSpec(BaseModel):
    """Which task runner to use, and the size of its cluster.

    Attributes
    ----------
    kind
        The runner or cluster type (see the module docstring).
    address
        Scheduler address for ``kind="address"`` (``tcp://host:8786``); the gateway address for
        ``kind="gateway"``.
    n_workers
        Number of Dask workers (threads for ``kind="threads"``); ``None`` lets the cluster choose.
    threads_per_worker
        Threads per Dask worker (``cores`` of a SLURM job); ``None`` lets the cluster choose.
    options
        Further keyword arguments for the cluster class (e.g. ``image``, ``namespace``,
        ``memory``, ``queue``). The key ``adapt`` is special: a mapping passed to
        ``cluster.adapt(...)`` (e.g. ``{"minimum": 1, "maximum": 20}``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RunnerKind = "local"
    address: str | None = None
    n_workers: int | None = Field(default=None, ge=1)
    threads_per_worker: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> RunnerSpec:
        """Read a runner from a string: a kind, a scheduler address, or JSON.

        Parameters
        ----------
        text
            ``"threads"``, ``"local"``, any other kind name, ``"tcp://host:port"`` (an existing
            scheduler), or a JSON object with the fields of :class:`RunnerSpec`.

        Returns
        -------
        RunnerSpec
            The parsed specification.

        Raises
        ------
        ConfigError
            If the string is none of these.
        """
        value = text.strip()
        if value.startswith("{"):
            try:
                return cls.model_validate_json(value)
            except ValidationError as exc:
                raise ConfigError(
                    f"invalid runner specification: {_problems(exc)}",
                    where="runner",
                    fix=f"give a JSON object with the fields {', '.join(cls.model_fields)}",
                ) from exc
        if value.startswith(_ADDRESS_SCHEMES):
            return cls(kind="address", address=value)
        kind = value.lower()
        if kind not in get_args(RunnerKind):
            raise ConfigError(
                f"unknown task runner {value!r}",
                where="runner",
                fix=f"use one of {', '.join(get_args(RunnerKind))} or a tcp://host:port address",
            )
        return cls(kind=kind)


def make_task_runner(spec: RunnerSpec | str | None = None) -> TaskRunner[Any]:
    """Build the Prefect task runner that ``spec`` describes.

    Parameters
    ----------
    spec
        A :class:`RunnerSpec`, a string for :meth:`RunnerSpec.parse`, or ``None`` for the
        environment variable ``SPECTRAFLOW_RUNNER`` (``local`` when unset). Optional backends
        are imported only for their own kind.

    Returns
    -------
    prefect.task_runners.TaskRunner
        A ``ThreadPoolTaskRunner`` for ``threads``, otherwise a ``prefect_dask.DaskTaskRunner``
        (the cluster starts when the flow starts, not here).

    Raises
    ------
    ConfigError
        If the specification is invalid, or the backend of its kind is not installed.
    """
    resolved = _resolve(spec)
    if resolved.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        # Bounded: the flows submit every scene at once, and each running scene holds memory.
        workers = resolved.n_workers or resolved.threads_per_worker or os.cpu_count() or 1
        return ThreadPoolTaskRunner(max_workers=workers)

    from prefect_dask import DaskTaskRunner

    options = dict(resolved.options)
    adapt = options.pop("adapt", None)
    if adapt is not None and not isinstance(adapt, dict):
        raise ConfigError(
            "the runner option 'adapt' must be a mapping",
            where="runner options.adapt",
            fix='give e.g. {"minimum": 1, "maximum": 20}',
        )
    adapt_kwargs = dict(adapt) if adapt else None

    if resolved.kind == "address":
        if not resolved.address:
            raise ConfigError(
                "the 'address' runner needs a scheduler address",
                where="runner address",
                fix="give address='tcp://host:8786' or the string 'tcp://host:8786'",
            )
        return DaskTaskRunner(address=resolved.address)
    if resolved.kind == "local":
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs=_sized(resolved, options),
            adapt_kwargs=adapt_kwargs,
        )
    cluster_class = _import_cluster(resolved.kind)
    return DaskTaskRunner(
        cluster_class=cluster_class,
        cluster_kwargs=_cluster_kwargs(resolved, options),
        adapt_kwargs=adapt_kwargs,
    )


def share_prefect_server(task_runner: Any) -> None:
    """Point the worker processes of a local cluster at this process's Prefect server.

    Without ``PREFECT_API_URL`` Prefect runs a temporary server per process: each worker of a
    ``LocalCluster`` would start its own and record its task runs there instead of with the
    flow run. The flows call this before they start their runner; it does nothing when the API
    URL is set (workers inherit it) or the cluster's workers are not this machine's children.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    local = getattr(task_runner, "resolved_cluster_class", None) in _local_clusters()
    server = SubprocessASGIServer()  # the temporary server of this process, if it runs
    if PREFECT_API_URL.value() or not local or not server.running:
        return
    env = task_runner.cluster_kwargs.setdefault("env", {})
    env.setdefault("PREFECT_API_URL", server.api_url)


def _local_clusters() -> list[type]:
    from distributed import LocalCluster

    found: list[type] = [LocalCluster]
    try:
        from dask_cuda import LocalCUDACluster

        found.append(LocalCUDACluster)
    except ImportError:
        pass
    return found


@contextmanager
def cluster_compute() -> Iterator[Any]:
    """Run the dask computations in this block on the cluster that runs the current task.

    On a Dask worker (a task run by a ``DaskTaskRunner``) the block gets the worker's client,
    made current, and the task's thread leaves the worker's thread pool while it waits
    (``distributed.worker_client``), so that a task waiting for its own dask graph never starves
    the workers of threads. Anywhere else (threads runner, plain Python) it does nothing and
    dask uses its local scheduler.

    Yields
    ------
    distributed.Client or None
        The worker's client, or ``None`` when not on a Dask worker.

    Examples
    --------
    >>> @task
    ... def ingest_scene(scene, out):
    ...     with cluster_compute():
    ...         return ingest(scene, out=out)  # its dask writes run on the whole cluster
    """
    try:
        from distributed import get_worker, worker_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        yield None
        return
    try:
        get_worker()
    except ValueError:
        yield None
        return
    with worker_client() as client, client.as_current():
        yield client


@contextmanager
def local_compute(*, num_workers: int | None = None) -> Iterator[None]:
    """Run the dask computations in this block in this process, with dask's threaded scheduler.

    For GPU-bound tasks: on a Dask worker, dask would otherwise send the task's graph to the
    whole cluster (``distributed`` makes the worker's client the default), so the model would
    run on workers without the GPU. The setting is process-wide while the block runs (dask's
    configuration is global), which is harmless on one-thread GPU workers (``cuda`` runners).

    Parameters
    ----------
    num_workers
        Threads for the local scheduler; ``None`` uses dask's default (one per core).

    Yields
    ------
    None
    """
    import dask

    settings: dict[str, Any] = {"scheduler": "threads"}
    if num_workers is not None:
        settings["num_workers"] = num_workers
    with dask.config.set(settings):
        yield


def gpu_resources(task_runner: Any, *, gpus: int = 1) -> AbstractContextManager[Any]:
    """A context in which tasks submitted to ``task_runner`` are placed on GPU workers only.

    Wrap ``task.submit(...)`` of GPU-bound tasks in it. It restricts the tasks to Dask workers
    that advertise the worker resource ``GPU``: ``cuda`` runners, or clusters whose workers were
    started with ``--resources GPU=1`` (the GPU worker group in ``infra/kubernetes/``). For any
    other runner it does nothing, since such a restriction would leave the tasks waiting forever.

    Parameters
    ----------
    task_runner
        The flow's task runner (``FlowRunContext.get().task_runner``), started.
    gpus
        GPUs each task needs.

    Returns
    -------
    contextlib.AbstractContextManager
        ``dask.annotate(resources={"GPU": gpus})``, or a no-op context.
    """
    if not _has_gpu_workers(task_runner):
        return nullcontext()
    import dask

    return dask.annotate(resources={GPU_RESOURCE: gpus})


def _has_gpu_workers(task_runner: Any) -> bool:
    kwargs = getattr(task_runner, "cluster_kwargs", None) or {}
    if GPU_RESOURCE in (kwargs.get("resources") or {}):
        return True
    if not getattr(task_runner, "_started", False) or not hasattr(task_runner, "client"):
        return False
    # a cluster we only connect to: ask the scheduler whether any worker has a GPU
    workers = task_runner.client.scheduler_info(n_workers=-1).get("workers", {})
    return any(GPU_RESOURCE in (w.get("resources") or {}) for w in workers.values())


def _resolve(spec: RunnerSpec | str | None) -> RunnerSpec:
    if isinstance(spec, RunnerSpec):
        return spec
    if isinstance(spec, str):
        return RunnerSpec.parse(spec)
    if spec is not None:
        raise ConfigError(
            f"a runner must be a RunnerSpec, a string or None, not {type(spec).__name__}",
            where="runner",
            fix="pass e.g. 'local', 'threads' or 'tcp://host:8786'",
        )
    from_env = os.environ.get(RUNNER_ENV, "").strip()
    if not from_env:
        return RunnerSpec()
    try:
        return RunnerSpec.parse(from_env)
    except ConfigError as exc:
        raise ConfigError(
            exc.what, where=f"environment variable {RUNNER_ENV}", fix=exc.fix
        ) from exc


def _import_cluster(kind: str) -> Any:
    module_name, class_name, extra = _OPTIONAL_CLUSTERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {kind!r} task runner needs {module_name.split('.')[0]}, which is not installed",
            where="runner",
            fix=f"pip install 'spectraflow[{extra}]'",
        ) from exc
    return getattr(module, class_name)


def _sized(spec: RunnerSpec, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if spec.n_workers is not None:
        kwargs["n_workers"] = spec.n_workers
    if spec.threads_per_worker is not None:
        kwargs["threads_per_worker"] = spec.threads_per_worker
    return {**kwargs, **options}


def _cluster_kwargs(spec: RunnerSpec, options: dict[str, Any]) -> dict[str, Any]:
    if spec.kind == "kubernetes":
        # connects to the DaskCluster of this name if it exists (infra/kubernetes/), else creates it
        kwargs: dict[str, Any] = {"name": "spectraflow"}
        if spec.n_workers is not None:
            kwargs["n_workers"] = spec.n_workers
        return {**kwargs, **options}
    if spec.kind == "gateway":
        # the gateway decides worker sizes; scale with options.adapt
        return {**({"address": spec.address} if spec.address else {}), **options}
    if spec.kind == "coiled":
        kwargs = {"name": "spectraflow"}
        if spec.n_workers is not None:
            kwargs["n_workers"] = spec.n_workers
        return {**kwargs, **options}
    if spec.kind == "slurm":
        # one worker process per job, `threads_per_worker` cores each
        kwargs = {"processes": 1, "cores": spec.threads_per_worker or 1, "memory": "8GB"}
        if spec.n_workers is not None:
            kwargs["n_workers"] = spec.n_workers
        return {**kwargs, **options}
    # cuda: one worker per visible GPU, each advertising one GPU resource
    kwargs = _sized(spec, {})
    kwargs.setdefault("threads_per_worker", 1)
    kwargs["resources"] = {GPU_RESOURCE: 1}
    return {**kwargs, **options}


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'runner'}: {err['msg']}"
        for err in exc.errors()
    )
