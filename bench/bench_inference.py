"""Pipeline efficiency of ``predict_cube``: end to end against the model's pure compute.

For each model, in one run on a full-size simulated scene:

- end to end: ``predict_cube`` from the Zarr cube to a complete predictions store (reading,
  tiling, batching, forward, Hann blending, writing), wall time;
- pure compute, same device and batch: a learned model's forward on batches of tile inputs of
  the grid's input shape, times the number of tiles the scene needs (tiles with a valid pixel);
  the matched filter's statistics and tiles on the cube already in memory.

``pipeline_efficiency_<model>`` = pure compute time ÷ end-to-end time (the same as end-to-end
pixels/s ÷ pure pixels/s); 1.0 means the glue costs nothing. Best of ``REPEATS`` interleaved.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.report import full_scene, work_dir, write_result
from spectraflow.cube import ingest, open_cube
from spectraflow.inference.grid import TileGrid
from spectraflow.inference.predict import predict_cube
from spectraflow.inference.runtime import default_batch, runtime_for
from spectraflow.models import load_model
from spectraflow.models.learned import band_subset
from spectraflow.models.matched_filter import cube_bands

THREADS = 2
REPEATS = 3
LEARNED = ("lc-any-wavelength", "enmap")
FILTER = ("ch4-mf", "emit")


def _end_to_end(cube: str, model: str, out: Path, device: str) -> tuple[float, Any]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    url = predict_cube(cube, model, out=out, device=device)
    return time.perf_counter() - start, open_cube(url)


def _forward_per_tile(name: str, cube: Any, device: str, pred: Any) -> tuple[float, int, int]:
    """Seconds per tile of the pure forward, the batch, and the tiles the scene needs."""
    runtime = runtime_for(name, device)
    model = runtime.model
    table = cube_bands(cube)
    picked = model.bands(table)
    sub = band_subset(table, picked) if model.conditioned else None
    halo = model.card.input.halo
    grid = TileGrid.plan(
        (cube.sizes["y"], cube.sizes["x"]),
        tile=int(pred.attrs["tile_core"]),
        halo=halo,
        size_multiple=model.size_multiple,
    )
    tiles = len(grid.tiles(valid=cube["valid"].values))
    batch = default_batch(runtime.device.type, len(picked), grid.input_shape)  # as predict_cube
    rng = np.random.default_rng(0)
    x = rng.uniform(0.02, 0.5, (batch, len(picked), *grid.input_shape)).astype(np.float32)
    runtime(x, sub)  # warm-up (allocations, autotuning)
    best = min(_timed(runtime, x, sub) for _ in range(REPEATS))
    return best / batch, batch, tiles


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _learned(work: Path, device: str) -> dict[str, float]:
    name, sensor = LEARNED
    url = ingest(full_scene(sensor, work), out=work / f"cubes-{sensor}")
    cube = open_cube(url)
    out = work / "inference" / f"{name}.zarr"
    e2e, pred = min(
        (_end_to_end(url, name, out, device) for _ in range(REPEATS)), key=lambda r: r[0]
    )
    per_tile, batch, tiles = _forward_per_tile(name, cube, device, pred)
    pixels = cube.sizes["y"] * cube.sizes["x"]
    print(
        f"  {name} {device}: end to end {e2e:.1f} s, forward {per_tile * tiles:.1f} s "
        f"({tiles} tiles of {pred.attrs['tile']} px, batch {batch})",
        flush=True,
    )
    return {
        "efficiency": per_tile * tiles / e2e,
        "end_to_end_pixels_per_s": pixels / e2e,
        "forward_pixels_per_s": pixels / (per_tile * tiles),
    }


def _matched_filter(work: Path, device: str) -> dict[str, float]:
    name, sensor = FILTER
    url = ingest(full_scene(sensor, work), out=work / f"cubes-{sensor}")
    model = load_model(name, device=device)
    needed = ["reflectance", "valid", "glt_x", "glt_y", "cloud", "water"]
    memory = open_cube(url)
    memory = memory[[v for v in needed if v in memory]].persist()  # dask, blocks in memory
    out = work / "inference" / f"{name}.zarr"
    pure, e2e = [], []
    for _ in range(REPEATS):
        pure.append(_timed(lambda: model.retrieve(memory).compute()))
        e2e.append(_end_to_end(url, name, out, device)[0])
    pixels = memory.sizes["line"] * memory.sizes["sample"]
    print(f"  {name} {device}: end to end {min(e2e):.1f} s, in memory {min(pure):.1f} s")
    return {
        "efficiency": min(pure) / min(e2e),
        "end_to_end_pixels_per_s": pixels / min(e2e),
        "forward_pixels_per_s": pixels / min(pure),
    }


def main() -> None:
    """Run the inference benchmark and write bench/results/inference.json."""
    torch.set_num_threads(THREADS)
    work = work_dir()
    metrics: dict[str, float] = {}
    goals: dict[str, str] = {}
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        suffix = "" if device == "cpu" else "_gpu"
        for (name, _), measure in ((LEARNED, _learned), (FILTER, _matched_filter)):
            figures = measure(work, device)
            key = name.replace("-", "_")
            metrics[f"pipeline_efficiency_{key}{suffix}"] = figures["efficiency"]
            goals[f"pipeline_efficiency_{key}{suffix}"] = ">= 0.9"
            for figure in ("end_to_end_pixels_per_s", "forward_pixels_per_s"):
                metrics[f"{key}_{figure}{suffix}"] = figures[figure]
    write_result(
        "inference",
        params={
            "scenes": "full-size simulated EnMAP (learned) and EMIT (matched filter)",
            "threads": THREADS,
            "repeats": REPEATS,
            "batch": "runtime default per device",
        },
        metrics=metrics,
        goals=goals,
    )
