"""Fixtures of the flow tests: a Prefect test server, a tiny simulated region, and real
``dask scheduler`` / ``dask worker`` processes on 127.0.0.1 (:func:`dask_processes`).

The region: EnMAP and Sentinel-2 scenes (``tiny`` size) on 2024-06-10 and 2024-06-12, a third
Sentinel-2 scene on 2024-06-14 held back for watch tests, and an EnMAP scene on 2024-06-11 whose
spectral image is truncated after simulating (the corrupt scene).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from distributed import Client
from prefect.testing.utilities import prefect_test_harness

from spectraflow.simulate import simulate_scene
from spectraflow.simulate.world import resolve_region


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (and database) for every flow test."""
    with prefect_test_harness(server_startup_timeout=60):
        yield


DASK = Path(sys.executable).with_name("dask")

StartDask = Callable[..., AbstractContextManager[dict[str, str]]]


@pytest.fixture(scope="session")
def dask_processes() -> StartDask:
    """Start a ``dask scheduler`` and one one-thread ``dask worker`` process per name.

    ``start(logs, {"w1": [extra worker args], ...}, env={...})`` is a context manager that
    yields ``{"address": <scheduler>, <name>: <worker address>, ...}`` and kills them all at
    the end; their output goes to ``logs/<name>.log``.
    """
    return _dask_processes


@contextmanager
def _dask_processes(
    logs: Path, workers: dict[str, list[str]], *, env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False", **(env or {})}
    commands = {"scheduler": [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port)]}
    for name, extra in workers.items():
        commands[name] = [
            str(DASK), "worker", address, "--name", name, "--host", "127.0.0.1",
            "--nworkers", "1", "--nthreads", "1", *extra,
        ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [*command, "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=environ
                )
            )
            if name == "scheduler":
                _wait_for_port(port, procs[0], timeout=30)
        with Client(address, timeout=30) as client:
            client.wait_for_workers(len(workers), timeout=60)
            info = client.scheduler_info(n_workers=-1)["workers"]
        yield {"address": address, **{w["name"]: addr for addr, w in info.items()}}
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dask scheduler exited early"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"dask scheduler did not listen on {port} within {timeout} s")


@dataclass(frozen=True)
class Region:
    """Simulated STAC item files of the test region, by role."""

    aoi: tuple[float, float, float, float]
    good: list[Path]  # enmap + sentinel2 on 2024-06-10 and 2024-06-12
    later: Path  # sentinel2 on 2024-06-14
    corrupt: Path  # enmap on 2024-06-11, spectral image truncated
    corrupt_id: str
    later_id: str


@pytest.fixture(scope="session")
def region(tmp_path_factory: pytest.TempPathFactory) -> Region:
    root = tmp_path_factory.mktemp("flows-region") / "scenes"
    plan = [
        ("enmap", "2024-06-10", 1),
        ("sentinel2", "2024-06-10", 2),
        ("enmap", "2024-06-12", 3),
        ("sentinel2", "2024-06-12", 4),
    ]
    good = [
        simulate_scene(sensor, out=root, size="tiny", date=date, seed=seed).item_path
        for sensor, date, seed in plan
    ]
    later = simulate_scene("sentinel2", out=root, size="tiny", date="2024-06-14", seed=5)
    bad = simulate_scene("enmap", out=root, size="tiny", date="2024-06-11", seed=6)
    (image,) = bad.item_path.parent.glob("*SPECTRAL_IMAGE*")
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])  # a download cut short
    centre = resolve_region(None)
    aoi = (centre.lon - 0.05, centre.lat - 0.05, centre.lon + 0.05, centre.lat + 0.05)
    return Region(
        aoi=aoi,
        good=good,
        later=later.item_path,
        corrupt=bad.item_path,
        corrupt_id=bad.item_path.stem,
        later_id=later.item_path.stem,
    )
