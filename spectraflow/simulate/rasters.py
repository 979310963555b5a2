"""GeoTIFF writers shared by the simulated products and their ground truth."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS as RioCRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import DatasetWriter
from rasterio.shutil import copy as rio_copy

from spectraflow.simulate.world import CLASSES

# Fixed GDAL creation options: no timestamps or software tags, so the same input gives the same
# bytes.
_GDAL_ENV = {"GDAL_PAM_ENABLED": "NO", "GTIFF_WRITE_TOTAL_BYTES": "NO"}


def write_cog(
    path: Path,
    data: np.ndarray,
    *,
    crs: int | str,
    transform: Affine,
    nodata: float | None = None,
    compress: str = "DEFLATE",
    blocksize: int = 512,
    descriptions: Sequence[str] | None = None,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    tags: dict[str, str] | None = None,
    band_tags: Sequence[dict[str, str]] | None = None,
    overviews: bool = True,
    interleave: Literal["pixel", "band"] = "pixel",
    colorinterp: Sequence[ColorInterp] | None = None,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a Cloud-Optimized GeoTIFF at ``path``.

    The raster is built in memory (the simulator's products fit) and copied with GDAL's COG
    driver: tiled ``blocksize``, internal overviews when the raster is larger than a block.
    ``interleave="band"`` stores each band's tiles together (as EnMAP's GeoTIFFs do); GDAL's
    COG driver only learns that option in 3.11, so such files are written by the GTiff driver
    in the same layout (overviews copied from the source, IFDs first). ``colorinterp`` sets
    the bands' colour interpretation (e.g. RGBA quicklooks).
    """
    bands, rows, cols = data.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": bands,
        "dtype": data.dtype.name,
        "crs": RioCRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.Env(**_GDAL_ENV), rasterio.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
            if descriptions is not None:
                for i, text in enumerate(descriptions, start=1):
                    dst.set_band_description(i, text)
            if colormap is not None:
                dst.write_colormap(1, colormap)
            if tags:
                dst.update_tags(**tags)
            for i, btags in enumerate(band_tags or (), start=1):
                dst.update_tags(i, **btags)
            if colorinterp is not None:
                dst.colorinterp = list(colorinterp)
            if interleave == "band" and bands > 1:
                factors = _overview_factors(rows, cols, blocksize) if overviews else []
                if factors:
                    dst.build_overviews(factors, Resampling.nearest)
        if interleave == "band" and bands > 1:
            with mem.open() as src:
                rio_copy(
                    src,
                    str(path),
                    driver="GTiff",
                    TILED="YES",
                    BLOCKXSIZE=blocksize,
                    BLOCKYSIZE=blocksize,
                    COMPRESS=compress,
                    INTERLEAVE="BAND",
                    COPY_SRC_OVERVIEWS="YES",
                    NUM_THREADS="1",
                )
            return path
        with mem.open() as src:
            rio_copy(src, str(path), driver="COG", **cog_options(compress, blocksize, overviews))
    return path


def cog_options(compress: str = "DEFLATE", blocksize: int = 512, overviews: bool = True) -> dict:
    """Creation options of GDAL's COG driver used for every simulated COG."""
    return {
        "COMPRESS": compress,
        "BLOCKSIZE": str(blocksize),
        "OVERVIEWS": "AUTO" if overviews else "NONE",
        "RESAMPLING": "NEAREST",
        "NUM_THREADS": "1",
    }


def _overview_factors(rows: int, cols: int, blocksize: int) -> list[int]:
    """Overview levels of GDAL's COG driver (``OVERVIEWS=AUTO``): halve until within a block."""
    factors: list[int] = []
    factor = 1
    while max(rows, cols) / factor > blocksize:
        factor *= 2
        factors.append(factor)
    return factors


def class_colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table of the land-cover classes (0 = no data, transparent)."""
    table = {0: (0, 0, 0, 0)}
    table.update({c.value: (*c.colour, 255) for c in CLASSES})
    return table


def write_truth(
    stage_dir: Path,
    final_dir: Path,
    *,
    classes: np.ndarray,
    ch4_ppm_m: np.ndarray,
    cloud: np.ndarray,
    crs: int | str,
    transform: Affine,
) -> dict[str, Path]:
    """Write the ground truth rasters on a product grid; returns final paths by name.

    ``classes`` uint8 (0 = no data), ``ch4_ppm_m`` float32 (NaN = no data), ``cloud`` uint8
    (1 = cloud, 2 = cloud shadow, 255 = no data).
    """
    names = {
        "classes": "truth_classes.tif",
        "ch4": "truth_ch4_ppm_m.tif",
        "cloud": "truth_cloud.tif",
    }
    classes_desc = ";".join(f"{c.value}={c.name}" for c in CLASSES)
    write_cog(
        stage_dir / names["classes"],
        classes[None].astype(np.uint8),
        crs=crs,
        transform=transform,
        nodata=0,
        descriptions=["land cover"],
        colormap=class_colormap(),
        tags={"classes": classes_desc},
    )
    write_cog(
        stage_dir / names["ch4"],
        ch4_ppm_m[None].astype(np.float32),
        crs=crs,
        transform=transform,
        nodata=float("nan"),
        descriptions=["CH4 column enhancement"],
        tags={"units": "ppm m"},
    )
    write_cog(
        stage_dir / names["cloud"],
        cloud[None].astype(np.uint8),
        crs=crs,
        transform=transform,
        nodata=255,
        descriptions=["cloud mask"],
        tags={"values": "0=clear;1=cloud;2=cloud_shadow"},
    )
    return {key: final_dir / name for key, name in names.items()}


@contextmanager
def streamed_raster(
    path: Path,
    *,
    shape: tuple[int, int],
    count: int,
    dtype: str,
    crs: int | str,
    transform: Affine,
    nodata: float | None = None,
    driver: str = "COG",
    options: dict[str, str] | None = None,
    descriptions: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[DatasetWriter]:
    """Write a raster window by window, then copy it to ``path`` with ``driver``.

    For rasters too large to build in memory (:func:`write_cog` does that): yields an
    uncompressed tiled GeoTIFF beside ``path`` (so partial-tile windows cost nothing), and on a
    clean exit copies it with ``driver`` — ``"COG"`` with :func:`write_cog`'s options unless
    ``options`` are given, or e.g. ``"JP2OpenJPEG"`` — and removes it.
    """
    rows, cols = shape
    scratch = path.with_name(f".{path.name}.scratch.tif")
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": count,
        "dtype": dtype,
        "crs": RioCRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "BIGTIFF": "IF_SAFER",
    }
    if options is None:
        options = cog_options()
    try:
        with rasterio.Env(**_GDAL_ENV):
            with rasterio.open(scratch, "w", **profile) as dst:
                for i, text in enumerate(descriptions or (), start=1):
                    dst.set_band_description(i, text)
                if tags:
                    dst.update_tags(**tags)
                yield dst
            with rasterio.open(scratch) as src:
                rio_copy(src, str(path), driver=driver, **options)
    finally:
        scratch.unlink(missing_ok=True)
