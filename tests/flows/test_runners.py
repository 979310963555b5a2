"""Task-runner factory, cluster_compute on a real multi-process Dask cluster, deployment files."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import cloudpickle
import dask.array as da
import numpy as np
import pytest
import yaml
from distributed import LocalCluster, get_worker
from prefect import flow, task
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from spectraflow.errors import ConfigError
from spectraflow.flows.runners import (
    GPU_RESOURCE,
    RUNNER_ENV,
    RunnerSpec,
    cluster_compute,
    gpu_resources,
    local_compute,
    make_task_runner,
    share_prefect_server,
)

ROOT = Path(__file__).resolve().parents[2]

# The tasks below run in separate `dask worker` processes, which cannot import this test module
# by its pytest name: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "address"),
    [
        ("threads", "threads", None),
        ("local", "local", None),
        (" LOCAL ", "local", None),
        ("tcp://127.0.0.1:8786", "address", "tcp://127.0.0.1:8786"),
        ("tls://scheduler.example:8786", "address", "tls://scheduler.example:8786"),
        ("kubernetes", "kubernetes", None),
        ("gateway", "gateway", None),
        ("coiled", "coiled", None),
        ("slurm", "slurm", None),
        ("cuda", "cuda", None),
    ],
)
def test_parse_kinds_and_addresses(text: str, kind: str, address: str | None) -> None:
    spec = RunnerSpec.parse(text)
    assert (spec.kind, spec.address) == (kind, address)


def test_parse_json_spec() -> None:
    spec = RunnerSpec.parse('{"kind": "local", "n_workers": 3, "options": {"memory_limit": "2GB"}}')
    assert spec == RunnerSpec(kind="local", n_workers=3, options={"memory_limit": "2GB"})


@pytest.mark.parametrize("text", ["spark", "", '{"kind": "mpi"}', '{"n_workers": 0}'])
def test_parse_rejects_unknown(text: str) -> None:
    with pytest.raises(ConfigError, match="runner"):
        RunnerSpec.parse(text)


def test_spec_is_frozen() -> None:
    spec = RunnerSpec()
    with pytest.raises(ValueError, match="frozen"):
        spec.kind = "threads"  # type: ignore[misc]


def test_none_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNNER_ENV, raising=False)
    default = make_task_runner()
    assert isinstance(default, DaskTaskRunner)
    assert default.resolved_cluster_class is LocalCluster

    monkeypatch.setenv(RUNNER_ENV, "threads")
    assert isinstance(make_task_runner(None), ThreadPoolTaskRunner)

    monkeypatch.setenv(RUNNER_ENV, "tcp://10.0.0.5:8786")
    from_env = make_task_runner()
    assert isinstance(from_env, DaskTaskRunner)
    assert from_env.address == "tcp://10.0.0.5:8786"

    monkeypatch.setenv(RUNNER_ENV, "hadoop")
    with pytest.raises(ConfigError, match=RUNNER_ENV):
        make_task_runner()


# --- mapping -------------------------------------------------------------------------------


def test_threads_runner_size() -> None:
    runner = make_task_runner(RunnerSpec(kind="threads", n_workers=3))
    assert isinstance(runner, ThreadPoolTaskRunner)
    assert runner._max_workers == 3


def test_local_runner_passes_size_and_options() -> None:
    spec = RunnerSpec(
        n_workers=2,
        threads_per_worker=1,
        options={"memory_limit": "1GB", "adapt": {"minimum": 1, "maximum": 4}},
    )
    runner = make_task_runner(spec)
    assert isinstance(runner, DaskTaskRunner)
    assert runner.resolved_cluster_class is LocalCluster
    assert runner.cluster_kwargs == {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "1GB"}
    assert runner.adapt_kwargs == {"minimum": 1, "maximum": 4}


def test_address_runner() -> None:
    runner = make_task_runner("tcp://127.0.0.1:9999")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address == "tcp://127.0.0.1:9999"
    with pytest.raises(ConfigError, match="address"):
        make_task_runner(RunnerSpec(kind="address"))


def test_bad_adapt_option() -> None:
    with pytest.raises(ConfigError, match="adapt"):
        make_task_runner(RunnerSpec(options={"adapt": 4}))


OPTIONAL = [
    ("kubernetes", "dask_kubernetes.operator", "KubeCluster", "kubernetes"),
    ("gateway", "dask_gateway", "GatewayCluster", "gateway"),
    ("coiled", "coiled", "Cluster", "coiled"),
    ("slurm", "dask_jobqueue", "SLURMCluster", "slurm"),
    ("cuda", "dask_cuda", "LocalCUDACluster", "cuda"),
]


def _fake_backend(monkeypatch: pytest.MonkeyPatch, module: str, cls: str) -> type:
    """Stand in for an optional backend that is not installed here (only its class name counts)."""
    fake = types.ModuleType(module)
    cluster_class = type(cls, (), {})
    setattr(fake, cls, cluster_class)
    parent = module.split(".")[0]
    if parent != module:
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, module, fake)
    return cluster_class


@pytest.mark.parametrize(("kind", "module", "cls", "extra"), OPTIONAL)
def test_optional_backend_cluster_class(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, cls: str, extra: str
) -> None:
    cluster_class = _fake_backend(monkeypatch, module, cls)
    runner = make_task_runner(RunnerSpec(kind=kind, n_workers=2))  # type: ignore[arg-type]
    assert isinstance(runner, DaskTaskRunner)
    assert runner.cluster_class is cluster_class
    kwargs = runner.cluster_kwargs
    if kind == "gateway":
        assert "n_workers" not in kwargs
    else:
        assert kwargs["n_workers"] == 2
    if kind == "cuda":
        assert kwargs["resources"] == {GPU_RESOURCE: 1}
        assert not isinstance(gpu_resources(runner), nullcontext)
    if kind == "slurm":
        assert kwargs["processes"] == 1 and kwargs["cores"] == 1


@pytest.mark.parametrize(("kind", "module", "cls", "extra"), OPTIONAL)
def test_missing_backend_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, cls: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=rf"spectraflow\[{extra}\]"):
        make_task_runner(kind)


def test_options_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_backend(monkeypatch, "dask_kubernetes.operator", "KubeCluster")
    spec = RunnerSpec(kind="kubernetes", options={"name": "gpu-pool", "namespace": "maps"})
    runner = make_task_runner(spec)
    assert runner.cluster_kwargs == {"name": "gpu-pool", "namespace": "maps"}


def test_gpu_resources_only_for_gpu_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    with gpu_resources(make_task_runner("threads")):
        assert dask.get_annotations() == {}
    with gpu_resources(make_task_runner("local")):
        assert dask.get_annotations() == {}
    _fake_backend(monkeypatch, "dask_cuda", "LocalCUDACluster")
    with gpu_resources(make_task_runner("cuda"), gpus=2):
        assert dask.get_annotations() == {"resources": {GPU_RESOURCE: 2}}


def test_local_cluster_workers_are_sent_to_the_flows_temporary_server() -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    local, threads = make_task_runner("local"), make_task_runner("threads")
    share_prefect_server(local)  # the API URL is set (the test server): workers inherit it
    assert "env" not in local.cluster_kwargs
    running = SubprocessASGIServer()  # the test harness's server: a temporary one
    assert running.running
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as `python flow.py` runs
        share_prefect_server(local)
        share_prefect_server(threads)
    assert local.cluster_kwargs["env"] == {"PREFECT_API_URL": running.api_url}
    assert not hasattr(threads, "cluster_kwargs")


def test_cluster_compute_outside_a_worker_does_nothing() -> None:
    with cluster_compute() as client:
        assert client is None
        assert int(da.ones(10, chunks=5).sum().compute()) == 10


# --- a real multi-process cluster ------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster(
    dask_processes: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A `dask scheduler` and two one-thread `dask worker` processes; one has a GPU resource."""
    workers = {"cpu": [], "gpu": ["--resources", f"{GPU_RESOURCE}=1"]}
    with dask_processes(tmp_path_factory.mktemp("dask-logs"), workers) as cluster:
        yield cluster


def _block_worker(block: np.ndarray) -> np.ndarray:
    from distributed.worker import thread_state  # imported here: this module is pickled by value

    # a task of the distributed worker has a key; a thread of dask's local scheduler has none
    where = get_worker().address if getattr(thread_state, "key", None) else "local"
    return np.array([where], dtype=object)


@task
def where_computed(n_blocks: int, *, local: bool = False) -> dict[str, Any]:
    with local_compute() if local else cluster_compute() as client:
        values = da.arange(n_blocks * 4, chunks=4)
        total = int(values.sum().compute())
        blocks = values.map_blocks(_block_worker, chunks=(1,), dtype=object).compute()
    return {
        "task": get_worker().address,
        "blocks": sorted(set(blocks.tolist())),
        "total": total,
        "client": client is not None,
    }


@flow
def spread(n_tasks: int, *, gpu: bool = False) -> list[dict[str, Any]]:
    context = FlowRunContext.get()
    assert context is not None
    with gpu_resources(context.task_runner) if gpu else nullcontext():
        futures = [where_computed.submit(8, local=gpu) for _ in range(n_tasks)]
    return [future.result() for future in futures]


# `prefect_server` (a session-wide prefect_test_harness) comes from tests/flows/conftest.py
def test_flow_runs_on_separate_dask_processes(
    prefect_server: None, dask_cluster: dict[str, str]
) -> None:
    workers = {dask_cluster["cpu"], dask_cluster["gpu"]}
    runner = make_task_runner(dask_cluster["address"])
    # four tasks on two one-thread workers, each waiting for its own dask graph, which runs on
    # the cluster while the waiting task's thread has left the worker's pool
    results = spread.with_options(task_runner=runner)(4)
    assert len(results) == 4
    for result in results:
        assert result["client"] is True
        assert result["total"] == sum(range(32))
        assert result["task"] in workers
        assert set(result["blocks"]) <= workers
    assert {result["task"] for result in results} | {
        block for result in results for block in result["blocks"]
    } == workers, "the work should use both worker processes"


def test_gpu_tasks_go_to_gpu_workers(prefect_server: None, dask_cluster: dict[str, str]) -> None:
    runner = make_task_runner(dask_cluster["address"])
    results = spread.with_options(task_runner=runner)(3, gpu=True)
    # placed on the GPU worker, and their dask work (local_compute) stayed there
    assert [result["task"] for result in results] == [dask_cluster["gpu"]] * 3
    assert [result["blocks"] for result in results] == [["local"]] * 3
    assert all(result["total"] == sum(range(32)) for result in results)


# --- deployment and infrastructure files ---------------------------------------------------


def _entrypoint_exists(entrypoint: str) -> None:
    path, name = entrypoint.split(":")
    assert (ROOT / path).is_file(), f"{path} does not exist"
    module = path.removesuffix(".py").replace("/", ".")
    if importlib.util.find_spec(module) is not None:
        flow_object = getattr(importlib.import_module(module), name)
        assert hasattr(flow_object, "deploy"), f"{entrypoint} is not a Prefect flow"
    else:
        assert f"def {name}(" in (ROOT / path).read_text()


def test_prefect_yaml_deployments() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert {"watch-catalog", "map-region"} <= set(deployments)
    pools = {d["work_pool"]["name"] for d in config["deployments"]}
    assert pools == {"spectraflow-process", "spectraflow-k8s"}
    for deployment in config["deployments"]:
        _entrypoint_exists(deployment["entrypoint"])
    watch = deployments["watch-catalog"]
    assert watch["entrypoint"].endswith("watch.py:watch_catalog")
    assert {"aoi", "sensors", "models", "out"} <= set(watch["parameters"])
    assert watch["schedules"][0]["cron"] == "0 */6 * * *"
    assert deployments["map-region"]["entrypoint"].endswith("region.py:map_region")
    assert not deployments["map-region"].get("schedules")
    k8s = [d for d in config["deployments"] if d["work_pool"]["name"] == "spectraflow-k8s"]
    assert all("image" in d["work_pool"]["job_variables"] for d in k8s)


def test_infra_yaml_parses() -> None:
    files = sorted((ROOT / "infra").rglob("*.yaml"))
    assert len(files) >= 4
    kinds: list[str] = []
    for path in files:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert docs, f"{path} is empty"
        kinds += [doc.get("kind", "") for doc in docs if isinstance(doc, dict)]
    assert "DaskCluster" in kinds
    cluster = next(
        doc
        for path in files
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "DaskCluster"
    )
    assert "nvidia.com/gpu" in str(cluster) or "DaskWorkerGroup" in kinds
    compose = yaml.safe_load((ROOT / "infra" / "compose.yaml").read_text())
    assert {"prefect-server", "worker", "stac"} <= set(compose["services"])
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        assert "torch" in (ROOT / "infra" / "docker" / dockerfile).read_text()


def test_k8s_job_variables_are_in_the_base_job_template() -> None:
    import json

    template = json.loads((ROOT / "infra" / "kubernetes" / "base-job-template.json").read_text())
    known = set(template["variables"]["properties"])
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert container["containers"][0]["resources"] == "{{ resources }}"
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        if deployment["work_pool"]["name"] == "spectraflow-k8s":
            variables = set(deployment["work_pool"]["job_variables"])
            assert variables <= known, variables - known
