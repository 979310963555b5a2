"""Discover ``bench/bench_*.py`` modules and run each one's ``main()``.

Usage: ``python -m bench [NAME ...]`` where ``NAME`` is ``ingest`` or ``bench_ingest``; with no
name every benchmark runs. The exit status is 1 if any benchmark failed or a name is unknown.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

PREFIX = "bench_"


def discover() -> list[str]:
    """Return the names of the benchmark modules (``bench_*``), sorted."""
    here = [str(Path(__file__).parent)]
    return sorted(info.name for info in pkgutil.iter_modules(here) if info.name.startswith(PREFIX))


def run(names: Sequence[str]) -> int:
    """Run the benchmarks ``names`` (all of them when empty); return the exit status."""
    available = discover()
    if not available:
        print("no benchmarks yet")
        return 0
    wanted = [n if n.startswith(PREFIX) else PREFIX + n for n in names] or available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 1
    failed: list[str] = []
    for name in wanted:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            module.main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"== {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
