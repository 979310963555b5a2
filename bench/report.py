"""What every benchmark shares: machine facts, measurements, full-size scenes, result files.

A result is ``bench/results/<name>.json`` with the keys fixed by the design notes: ``name``,
``date``, ``machine`` (``cpu``, ``cores``, ``gpu``), ``params``, ``metrics`` (key → number) and
``goals`` (key → ``">= 0.8"``). :func:`update_docs` rewrites the results table of
docs/benchmarks.md from those files, so the page never disagrees with them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from spectraflow.catalog import Scene, find_scene
from spectraflow.simulate import simulate_scene

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_START, _END = "<!-- results:start -->", "<!-- results:end -->"


def machine() -> dict[str, Any]:
    """CPU model, usable cores and GPU (None without one) of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "gpu": _gpu()}


def _gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@dataclass(frozen=True)
class Measured:
    """What :func:`in_child` measured of one call."""

    seconds: float
    peak_rss_bytes: int
    start_rss_bytes: int
    value: Any


def _rss_now() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _measure(fn: Callable[..., Any], args: tuple[Any, ...]) -> Measured:
    start_rss = _rss_now()
    start = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return Measured(seconds, peak, start_rss, value)


def in_child(fn: Callable[..., Any], *args: Any) -> Measured:
    """Run ``fn(*args)`` in a fresh process: its own time, peak memory and return value.

    A fresh (spawned) process per measurement keeps one run's caches, threads and memory
    high-water mark out of the next one's figures. ``fn`` must be importable (module level).
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_measure, fn, args).result()


def _files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named by ``paths``, or found under them when they are folders."""
    return [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]


def evict(*paths: Path) -> None:
    """Drop the files under ``paths`` from the page cache, so the next read comes from disk."""
    for path in _files(paths):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(*paths: Path) -> None:
    """Read the files under ``paths`` once, so that the next reads come from the page cache."""
    for path in _files(paths):
        with path.open("rb") as file:
            while file.read(64 * 2**20):
                pass


def work_dir() -> Path:
    """Where benchmarks keep their full-size scenes: ``$SPECTRAFLOW_BENCH_DIR`` or a temp folder."""
    default = Path(tempfile.gettempdir()) / "spectraflow-bench"
    path = Path(os.environ.get("SPECTRAFLOW_BENCH_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def full_scene(sensor: str, work: Path) -> Scene:
    """The full-size simulated scene of ``sensor`` under ``work``, simulated on first use."""
    for folder in sorted(p for p in work.iterdir() if p.is_dir() and not p.name.startswith(".")):
        item = folder / f"{folder.name}.json"
        if item.exists() and (scene := find_scene(item)).sensor == sensor:
            return scene
    print(f"  simulating a full-size {sensor} scene into {work} (minutes, once)", flush=True)
    return find_scene(simulate_scene(sensor, out=work, size="full").item_path)


def write_result(
    name: str,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    goals: Mapping[str, str],
) -> Path:
    """Write ``bench/results/<name>.json``, print the metrics and refresh the docs table."""
    result: dict[str, Any] = {
        "name": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "params": dict(params),
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "goals": dict(goals),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result["metrics"].items():
        goal = goals.get(key, "")
        print(f"  {key:40s} {value:>12.4g}  {goal}")
    update_docs()
    return path


def _meets(value: float, goal: str) -> str:
    op, _, target = goal.partition(" ")
    if not target:
        return ""
    ok = value >= float(target) if op == ">=" else value <= float(target)
    return "yes" if ok else "**no**"


def update_docs(docs: Path = DOCS) -> None:
    """Rewrite the table between the results markers of docs/benchmarks.md from the JSON files."""
    rows = [
        "| benchmark | metric | value | goal | met | machine | date |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        result = json.loads(path.read_text())
        where = f"{result['machine']['cores']} cores" + (
            f", {result['machine']['gpu']}" if result["machine"].get("gpu") else ""
        )
        for key, value in result["metrics"].items():
            goal = result["goals"].get(key, "")
            rows.append(
                f"| {result['name']} | `{key}` | {value:.4g} | {goal} | {_meets(value, goal)} "
                f"| {where} | {result['date'][:10]} |"
            )
    text = docs.read_text()
    head, _, rest = text.partition(_START)
    _, _, tail = rest.partition(_END)
    docs.write_text(f"{head}{_START}\n" + "\n".join(rows) + f"\n{_END}{tail}")
