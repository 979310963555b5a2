"""Mosaic benchmark: spectraflow's mosaic against ``gdalwarp`` on the same inputs and grid.

Inputs: four overlapping class-map predictions stores (the layout ``predict_cube`` writes:
``class`` uint8 with 0 = no data, ``confidence``) of 4000 × 4000 pixels at 30 m, two in UTM
zone 13 and two in zone 14 around the zone boundary, each with no-data corners like a tilted
swath and land-cover-like patches of nine classes. Their class layers are also exported as
GeoTIFFs (uncompressed, tiled 512; not timed) for ``gdalwarp``.

Target grid: :func:`spectraflow.mosaic.target_grid` of the inputs (the UTM zone of the centre,
30 m, the union snapped to 30 m), given to ``gdalwarp`` as ``-t_srs``/``-tr``/``-te``.

Measured in one run, interleaved, best of :data:`REPEATS`:

- ``gdalwarp -r near -srcnodata 0 -dstnodata 0 -multi -wo NUM_THREADS=2`` with the inputs
  ordered oldest → newest, so that the newest valid pixel wins: the "latest" policy. Output: a
  tiled, uncompressed GeoTIFF. Twice: with its default approximate transformer (error
  threshold 0.125 px) and exact (``-et 0``).
- spectraflow: ``mosaic_layers(..., policy="latest")`` on the same grid (opening the stores
  included; dask threaded scheduler, 2 workers), the class layer computed block by block and
  written to a tiled, uncompressed GeoTIFF with rasterio.

``speedup_vs_gdalwarp`` = default gdalwarp seconds ÷ spectraflow seconds (goal ≥ 1). gdalwarp
runs as a process (start-up included) while spectraflow runs in this warm process, so the
start-up of ``gdalwarp --version`` (loading GDAL and registering its drivers) is measured each
repeat too, and ``speedup_vs_gdalwarp_minus_startup`` = (best gdalwarp − best start-up) ÷ best
spectraflow.
``identical_fraction_nearest`` = the fraction of pixels where either output has data on which
spectraflow and exact gdalwarp agree (goal ≥ 0.9999). spectraflow's nearest picks are those of
the exact transform (:mod:`spectraflow.mosaic.resample`); default gdalwarp's are not (it
interpolates the transform over its own chunks), so its agreement with either is reported
too, as ``identical_fraction_vs_gdalwarp_default`` and ``gdalwarp_default_vs_exact``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer
from scipy import ndimage

from bench.report import work_dir, write_result
from spectraflow.cube import write_cube
from spectraflow.mosaic import TargetGrid, mosaic_layers, target_grid

SIZE = 4000
RES = 30.0
REPEATS = 5
THREADS = 2
BLOCK = 1024
LABELS = list(range(1, 10))
# (lon, lat) of the upper-left corner, UTM EPSG code, acquisition day (June 2024).
SCENES = (
    (-102.55, 32.45, 32613, 3),
    (-102.20, 32.30, 32613, 11),
    (-101.95, 32.40, 32614, 7),
    (-101.75, 32.25, 32614, 15),
)


def _classes(seed: int) -> np.ndarray:
    """Land-cover-like classes: smoothed noise cut into nine classes, with no-data corners."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)).astype(np.float32), 12)
    edges = np.quantile(field, np.linspace(0, 1, len(LABELS) + 1)[1:-1])
    classes = (np.searchsorted(edges, field) + 1).astype(np.uint8)
    r, c = np.mgrid[0:SIZE, 0:SIZE]
    tilt = SIZE // 8  # a swath tilted by ~7°: triangles of no data at two corners
    classes[(c < tilt - r * tilt // SIZE) | (c > SIZE - r * tilt // SIZE)] = 0
    return classes


def footprint(index: int) -> TargetGrid:
    """The grid of scene ``index``: its UTM zone, 30 m, upper-left corner on the 30-m lattice."""
    lon, lat, epsg, _ = SCENES[index]
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    transform = Affine(RES, 0, round(x / RES) * RES, 0, -RES, round(y / RES) * RES)
    return TargetGrid(CRS.from_epsg(epsg), transform, (SIZE, SIZE))


def make_store(work: Path, index: int) -> tuple[str, Path]:
    """One predictions store and the GeoTIFF of its class layer (reused when present)."""
    _, _, epsg, day = SCENES[index]
    url, tif = work / f"scene{index}_{SIZE}.zarr", work / f"scene{index}_{SIZE}.tif"
    if url.exists() and tif.exists():
        return str(url), tif
    transform = footprint(index).transform
    classes = _classes(index)
    confidence = np.where(classes > 0, 0.5 + 0.05 * classes, np.nan).astype(np.float32)
    ds = xr.Dataset(
        {"class": (("y", "x"), classes), "confidence": (("y", "x"), confidence)},
        coords={
            "x": transform.c + (np.arange(SIZE) + 0.5) * RES,
            "y": transform.f - (np.arange(SIZE) + 0.5) * RES,
        },
    )
    ds["class"].attrs.update(
        flag_values=LABELS,
        flag_meanings=" ".join(f"class{v}" for v in LABELS),
        flag_colors=[f"#{v * 25:02x}{255 - v * 25:02x}80" for v in LABELS],
    )
    ds.attrs.update(
        sensor="sentinel2",
        scene_id=f"BENCH_{index}",
        datetime=f"2024-06-{day:02d}T17:00:00+00:00",
        model="bench",
    )
    ds = ds.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(transform)
    write_cube(ds, url, overwrite=True)
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "width": SIZE,
        "height": SIZE,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(tif, "w", **profile) as dst:
        dst.write(classes, 1)
    return str(url), tif


def run_gdalwarp(tifs: list[Path], grid: TargetGrid, out: Path, *, exact: bool = False) -> float:
    """Seconds of one ``gdalwarp`` of ``tifs`` (oldest first) onto ``grid``."""
    out.unlink(missing_ok=True)
    minx, miny, maxx, maxy = grid.bounds
    epsg = grid.crs.to_epsg()
    cmd = [
        "gdalwarp", "-q", "-overwrite", "-t_srs", f"EPSG:{epsg}",
        "-tr", str(RES), str(RES), "-te", str(minx), str(miny), str(maxx), str(maxy),
        "-r", "near", "-srcnodata", "0", "-dstnodata", "0",
        "-multi", "-wo", f"NUM_THREADS={THREADS}", "-co", "TILED=YES",
        *(["-et", "0"] if exact else []), *map(str, tifs), str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def gdalwarp_startup() -> float:
    """Seconds of ``gdalwarp --version``: process start, GDAL loaded, drivers registered."""
    start = time.perf_counter()
    subprocess.run(["gdalwarp", "--version"], check=True, capture_output=True)
    return time.perf_counter() - start


def run_spectraflow(urls: list[str], grid: TargetGrid, out: Path) -> tuple[float, float]:
    """Seconds to compute the class layer, and to compute it and write it as a GeoTIFF."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        layers = mosaic_layers(urls, grid=grid, policy="latest", block=BLOCK)
        classes = layers["class"].values
    computed = time.perf_counter() - start
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs.to_wkt(),
        "transform": grid.transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(classes, 1)
    return computed, time.perf_counter() - start


def _identical(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the pixels where either map has data on which both agree."""
    either = (a > 0) | (b > 0)
    return float(((a == b) & either).sum() / either.sum())


def main() -> None:
    """Run the mosaic benchmark and write bench/results/mosaic.json."""
    if shutil.which("gdalwarp") is None:
        raise SystemExit("gdalwarp not found: install gdal-bin (apt-get install gdal-bin)")
    work = work_dir() / "mosaic"
    work.mkdir(parents=True, exist_ok=True)
    print(f"  inputs: {len(SCENES)} stores of {SIZE} × {SIZE} px under {work}", flush=True)
    made = [make_store(work, i) for i in range(len(SCENES))]
    order = sorted(range(len(SCENES)), key=lambda i: SCENES[i][3])  # oldest first
    urls = [made[i][0] for i in order]
    tifs = [made[i][1] for i in order]
    grid = target_grid([footprint(i) for i in range(len(SCENES))])
    print(f"  target grid: EPSG:{grid.crs.to_epsg()} {grid.shape} at {RES} m", flush=True)
    gdal_out, exact_out = work / "gdalwarp.tif", work / "gdalwarp_exact.tif"
    ours_out = work / "spectraflow.tif"
    gdal_s, exact_s, ours_s, ours_compute_s, startup_s = [], [], [], [], []
    for _ in range(REPEATS):
        startup_s.append(gdalwarp_startup())
        gdal_s.append(run_gdalwarp(tifs, grid, gdal_out))
        exact_s.append(run_gdalwarp(tifs, grid, exact_out, exact=True))
        computed, total = run_spectraflow(urls, grid, ours_out)
        ours_compute_s.append(computed)
        ours_s.append(total)
        print(
            f"    gdalwarp {gdal_s[-1]:.2f} s, gdalwarp -et 0 {exact_s[-1]:.2f} s, "
            f"spectraflow {total:.2f} s (gdalwarp start-up {startup_s[-1]:.3f} s)",
            flush=True,
        )
    maps = {}
    for key, path in (("default", gdal_out), ("exact", exact_out), ("ours", ours_out)):
        with rasterio.open(path) as src:
            assert src.transform == grid.transform and src.shape == grid.shape
            maps[key] = src.read(1)
    agree = {
        pair: _identical(maps[pair[0]], maps[pair[1]])
        for pair in (("ours", "exact"), ("ours", "default"), ("default", "exact"))
    }
    ours, ref = maps["ours"], maps["exact"]
    either = (ref > 0) | (ours > 0)
    same = (ref == ours) & either
    params: dict[str, Any] = {
        "inputs": [
            {"crs": f"EPSG:{s[2]}", "shape": [SIZE, SIZE], "resolution_m": RES} for s in SCENES
        ],
        "target": {
            "crs": f"EPSG:{grid.crs.to_epsg()}",
            "shape": list(grid.shape),
            "bounds": list(grid.bounds),
        },
        "policy": "latest (gdalwarp: inputs oldest → newest, newest valid pixel wins)",
        "threads": THREADS,
        "block": BLOCK,
        "repeats": REPEATS,
        "spectraflow_timed": "mosaic_layers (open stores, plan the graph) + class layer computed "
        "to numpy (2 threads) + written as a tiled uncompressed GeoTIFF",
        "gdalwarp_timed": "gdalwarp -r near -multi -wo NUM_THREADS=2 to a tiled uncompressed "
        "GeoTIFF (process start included; gdalwarp_startup_s: gdalwarp --version); default "
        "error threshold, and -et 0",
        "reference_for_identical_fraction": "gdalwarp -et 0 (exact transforms)",
        "gdalwarp_s": gdal_s,
        "gdalwarp_exact_s": exact_s,
        "gdalwarp_startup_s": startup_s,
        "spectraflow_s": ours_s,
        "spectraflow_compute_only_s": ours_compute_s,
        "pixels_with_data": int(either.sum()),
        "pixels_differing": int(either.sum() - same.sum()),
        "gdalwarp_version": subprocess.run(
            ["gdalwarp", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "rasterio_gdal_version": rasterio.__gdal_version__,
    }
    write_result(
        "mosaic",
        params=params,
        metrics={
            "speedup_vs_gdalwarp": min(gdal_s) / min(ours_s),
            "speedup_vs_gdalwarp_minus_startup": (min(gdal_s) - min(startup_s)) / min(ours_s),
            "identical_fraction_nearest": agree[("ours", "exact")],
            "speedup_vs_gdalwarp_exact": min(exact_s) / min(ours_s),
            "identical_fraction_vs_gdalwarp_default": agree[("ours", "default")],
            "gdalwarp_default_vs_exact": agree[("default", "exact")],
        },
        goals={"speedup_vs_gdalwarp": ">= 1.0", "identical_fraction_nearest": ">= 0.9999"},
    )


if __name__ == "__main__":
    main()
