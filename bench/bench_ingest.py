"""Ingest benchmark: full-size simulated EMIT and EnMAP scenes into cubes.

Measured in one run, on the same machine, files and threads:

- **Throughput against the raw limit.** The raw limit is what a plain copy costs: read the
  source arrays whole (h5py for EMIT's netCDF, rasterio for EnMAP's GeoTIFF) and write them with
  zarr as the cube stores them (same dtype, chunks, shards and codec), with no decoding,
  masking, transposing or safety records. ``<sensor>_ratio_to_raw`` = raw time ÷ ingest time
  (1.0: ingest is as fast as the copy; goal ≥ 0.8). The arrays are reflectance (and EMIT's
  reflectance uncertainty), over 98 % of a cube's bytes. Sources are in the page cache for
  both, so the figure compares the work done, not the disk.
- **Peak memory** (``peak_rss_gb``): the larger of the two ingest processes' peak RSS, which
  includes the ~0.3 GB of imported libraries and GDAL's block cache (EnMAP; GDAL caps it at
  5 % of RAM unless ``GDAL_CACHEMAX`` says otherwise). The source arrays are 1.3–3.4 GiB.
- **Tile reads**: 256 × 256 × all-bands windows at random positions, read from the cube
  (``open_cube``, decoded float32) and from the source file (raw values), each from disk (the
  files' pages dropped from the cache before every read) and from the page cache.
  ``tile_read_speedup_vs_source`` is the smaller of the two sensors' cold speedups.
- **Layout sweep**: EMIT reflectance written with other chunk/shard edges and as int16: write
  time, size and cold tile reads, the evidence for :mod:`spectraflow.cube.layout`'s choices.

Scenes are simulated once into ``$SPECTRAFLOW_BENCH_DIR`` (default: a folder in the temporary
directory) and reused by later runs.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import rasterio
import zarr
from rasterio.windows import Window

from bench.report import evict, full_scene, in_child, warm, work_dir, write_result
from spectraflow.catalog import Scene, find_scene
from spectraflow.cube import ingest, open_cube
from spectraflow.cube.layout import compressors_for

SENSORS = ("emit", "enmap")
REPEATS = 2
TILE = 256
N_TILES = 12
SWEEP = ((128, 256, "float32"), (64, 256, "float32"), (256, 256, "float32"), (128, 512, "float32"))
SWEEP_INT16 = (128, 256, "int16")


def _sources(scene: Scene) -> list[tuple[str, Path]]:
    """(role, file) of the heavy arrays the cube stores from ``scene``."""
    roles = ("data", "uncertainty") if scene.sensor == "emit" else ("data",)
    return [(role, Path(scene.href(role))) for role in roles if role in scene.assets]


def _read_source(sensor: str, path: Path) -> np.ndarray:
    """A whole source array, plainly: one hyperslab or one GDAL read, no decoding."""
    if sensor == "emit":
        with h5py.File(path, "r") as f:
            name = next(k for k in ("reflectance", "reflectance_uncertainty") if k in f)
            return np.asarray(f[name][...])
    with rasterio.open(path) as ds:
        return ds.read()


def _layout(cube: Path, variable: str) -> dict[str, Any]:
    array = zarr.open_array(cube / variable, mode="r")
    return {"chunks": array.chunks, "shards": array.shards, "dtype": str(array.dtype)}


def _native(sensor: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A cube (band, row, col) shape in the source's axis order (EMIT is BIP: row, col, band)."""
    return (shape[1], shape[2], shape[0]) if sensor == "emit" else shape


def raw_copy(sensor: str, jobs: list[tuple[Path, dict[str, Any]]], out: Path) -> int:
    """The raw limit: read each source array whole, write it with the cube's layout and codec."""
    written = 0
    for i, (source, layout) in enumerate(jobs):
        data = _read_source(sensor, source).astype(layout["dtype"], copy=False)
        array = zarr.create_array(
            out / f"copy{i}",
            shape=data.shape,
            dtype=data.dtype,
            chunks=_native(sensor, layout["chunks"]),
            shards=_native(sensor, layout["shards"]),
            compressors=compressors_for(data.dtype),
            overwrite=True,
        )
        array[...] = data
        written += data.nbytes
        del data
    return written


def run_ingest(item: str, out: Path) -> str:
    """One ingest from the item file, as a user runs it (default threads and layout)."""
    return ingest(find_scene(item), out=out)


def _tile_origins(rows: int, cols: int, n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(0, rows - TILE + 1)), int(rng.integers(0, cols - TILE + 1)))
        for _ in range(n)
    ]


def _time_tiles(read: Any, origins: list[tuple[int, int]], cold: list[Path] | None) -> float:
    """Median seconds of ``read(row, col)`` over ``origins``; caches dropped first if ``cold``."""
    times = []
    for row, col in origins:
        if cold is not None:
            evict(*cold)
        start = time.perf_counter()
        read(row, col)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tile_reads(scene: Scene, cube: Path) -> dict[str, float]:
    """Median 256 × 256 × all-bands read time from the cube and the source, cold and warm."""
    source = Path(scene.href("data"))
    reflectance = open_cube(cube).reflectance
    rows, cols = reflectance.shape[1:]
    origins = _tile_origins(rows, cols, N_TILES, seed=1)

    def from_cube(r: int, c: int) -> np.ndarray:
        return np.asarray(reflectance[:, r : r + TILE, c : c + TILE].values)

    # The source is opened for every read: GDAL's block cache would otherwise serve decoded
    # tiles of earlier reads, which the cube (zarr keeps no decoded chunks) does not get.
    def from_source(r: int, c: int) -> np.ndarray:
        if scene.sensor == "emit":
            with h5py.File(source, "r") as f:
                return np.asarray(f["reflectance"][r : r + TILE, c : c + TILE, :])
        with rasterio.open(source) as ds:
            return ds.read(window=Window(c, r, TILE, TILE))

    out = {}
    for state, cold in (("cold", True), ("warm", False)):
        if not cold:
            warm(cube, source)
        out[f"cube_{state}_s"] = _time_tiles(from_cube, origins, [cube] if cold else None)
        out[f"source_{state}_s"] = _time_tiles(from_source, origins, [source] if cold else None)
    return out


def sweep_layouts(scene: Scene, out: Path) -> list[dict[str, Any]]:
    """EMIT reflectance stored with other chunk/shard edges and dtypes: write, size, tile read."""
    with h5py.File(scene.href("data"), "r") as f:
        data = np.ascontiguousarray(np.moveaxis(f["reflectance"][...], 2, 0))  # band, line, sample
    origins = _tile_origins(data.shape[1], data.shape[2], N_TILES // 2, seed=2)
    rows = []
    for chunk, shard, dtype in (*SWEEP, SWEEP_INT16):
        stored = data if dtype == "float32" else np.round(data * 1e4).astype(np.int16)
        path = out / f"sweep-{chunk}-{shard}-{dtype}"
        start = time.perf_counter()
        array = zarr.create_array(
            path,
            shape=stored.shape,
            dtype=stored.dtype,
            chunks=(stored.shape[0], chunk, chunk),
            shards=(stored.shape[0], shard, shard),
            compressors=compressors_for(stored.dtype),
            overwrite=True,
        )
        array[...] = stored
        write_s = time.perf_counter() - start
        reader = zarr.open_array(path, mode="r")
        read_s = _time_tiles(
            lambda r, c, a=reader: a[:, r : r + TILE, c : c + TILE], origins, [path]
        )
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        rows.append(
            {
                "chunk": chunk,
                "shard": shard,
                "dtype": dtype,
                "write_mb_per_s": data.nbytes / 2**20 / write_s,
                "compression": data.nbytes / size * (stored.itemsize / 4),
                "cold_tile_read_ms": read_s * 1e3,
            }
        )
        shutil.rmtree(path)
    return rows


def _bench_sensor(scene: Scene, work: Path) -> dict[str, Any]:
    item = str(scene.item_href)
    out = work / f"cubes-{scene.sensor}"
    shutil.rmtree(out, ignore_errors=True)
    sources = _sources(scene)
    warm(*(p for _, p in sources))

    # The first ingest fixes the layout that the raw copy reproduces.
    ingests = [in_child(run_ingest, item, out)]
    cube = Path(ingests[0].value)
    variables = {"data": "reflectance", "uncertainty": "reflectance_uncertainty"}
    jobs = [(path, _layout(cube, variables[role])) for role, path in sources]
    raws = []
    for repeat in range(REPEATS):
        raws.append(in_child(raw_copy, scene.sensor, jobs, work / "raw"))
        shutil.rmtree(work / "raw", ignore_errors=True)
        if repeat:
            shutil.rmtree(out)
            ingests.append(in_child(run_ingest, item, out))
    ingest_s = min(m.seconds for m in ingests)
    raw_s = min(m.seconds for m in raws)
    nbytes = raws[0].value
    peak = max(m.peak_rss_bytes for m in ingests)
    print(
        f"  {scene.sensor}: {nbytes / 2**30:.2f} GiB; ingest {ingest_s:.1f} s "
        f"({nbytes / 2**20 / ingest_s:.0f} MiB/s), raw copy {raw_s:.1f} s "
        f"({nbytes / 2**20 / raw_s:.0f} MiB/s), ingest peak RSS "
        f"{peak / 2**30:.2f} GiB",
        flush=True,
    )
    tiles = tile_reads(scene, cube)
    print(f"  {scene.sensor} tile reads (median s): {tiles}", flush=True)
    return {
        "ratio_to_raw": raw_s / ingest_s,
        "ingest_s": ingest_s,
        "raw_s": raw_s,
        "gib": nbytes / 2**30,
        "peak_rss_gb": peak / 1e9,
        "start_rss_gb": min(m.start_rss_bytes for m in ingests) / 1e9,
        "layout": jobs[0][1],
        **tiles,
    }


def main() -> None:
    """Run the ingest benchmark and write bench/results/ingest.json."""
    work = work_dir()
    scenes = {sensor: full_scene(sensor, work) for sensor in SENSORS}
    results = {sensor: _bench_sensor(scene, work) for sensor, scene in scenes.items()}
    print("  layout sweep (EMIT reflectance)", flush=True)
    sweep = in_child(sweep_layouts, scenes["emit"], work).value
    for row in sweep:
        print(f"    {row}", flush=True)

    metrics: dict[str, float] = {
        "emit_ratio_to_raw": results["emit"]["ratio_to_raw"],
        "enmap_ratio_to_raw": results["enmap"]["ratio_to_raw"],
        "peak_rss_gb": max(r["peak_rss_gb"] for r in results.values()),
    }
    for sensor, r in results.items():
        metrics[f"{sensor}_ingest_mib_per_s"] = r["gib"] * 1024 / r["ingest_s"]
        metrics[f"{sensor}_tile_read_speedup_cold"] = r["source_cold_s"] / r["cube_cold_s"]
        metrics[f"{sensor}_tile_read_speedup_warm"] = r["source_warm_s"] / r["cube_warm_s"]
    metrics["tile_read_speedup_vs_source"] = min(
        metrics[f"{s}_tile_read_speedup_cold"] for s in SENSORS
    )
    write_result(
        "ingest",
        params={
            "scenes": {s: scenes[s].id for s in SENSORS},
            "repeats": REPEATS,
            "tile": TILE,
            "tiles": N_TILES,
            "per_sensor": {
                s: {k: v for k, v in r.items() if not isinstance(v, float) or math.isfinite(v)}
                for s, r in results.items()
            },
            "layout_sweep": sweep,
        },
        metrics=metrics,
        goals={"emit_ratio_to_raw": ">= 0.8", "enmap_ratio_to_raw": ">= 0.8"},
    )
