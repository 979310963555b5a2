"""GeoTIFF writers shared by the simulated products and their ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS as RioCRS
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
) -> Path:
    """Write ``data`` (bands, rows, cols) as a Cloud-Optimized GeoTIFF at ``path``.

    The raster is built in memory (the simulator's products fit) and copied with GDAL's COG
    driver: tiled ``blocksize``, internal overviews when the raster is larger than a block.
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
        with mem.open() as src:
            rio_copy(
                src,
                str(path),
                driver="COG",
                COMPRESS=compress,
                BLOCKSIZE=blocksize,
                OVERVIEWS="AUTO" if overviews else "NONE",
                RESAMPLING="NEAREST",
                NUM_THREADS="1",
            )
    return path


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
