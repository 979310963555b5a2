"""Training and evaluation scenes: a cube's bands and its label raster as aligned arrays.

A *labelled scene* pairs a cube with a label raster on the cube's own grid: a GeoTIFF on the
product grid (EnMAP, Sentinel-2, ortho EMIT) or, for EMIT cubes in sensor geometry, the
simulator's ``truth_sensor_geometry.nc``. Land-cover models read class values (0 = no data);
plume models read a methane raster (ppm·m) and label pixels above a threshold as plume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5netcdf
import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from spectraflow.cube import open_cube
from spectraflow.errors import ModelError, SceneFormatError
from spectraflow.models.card import ModelCard
from spectraflow.models.matched_filter import cube_bands
from spectraflow.sensors.bands import BandTable

__all__ = ["LabelledScene", "load_labelled_scene", "parse_scene_pair", "read_labels"]

PLUME, BACKGROUND = 2, 1  # class values of the plume segmentation models (0 = no data)


@dataclass(frozen=True)
class LabelledScene:
    """A cube's reflectance (bands, rows, cols), its band table, labels and valid mask."""

    name: str
    cube: str
    reflectance: np.ndarray
    bands: BandTable
    labels: np.ndarray
    valid: np.ndarray


def parse_scene_pair(text: str) -> tuple[str, str]:
    """``CUBE:LABELS`` (as the CLI takes scenes) as a pair of paths.

    Raises
    ------
    ModelError
        No ``:`` separates the two paths.
    """
    cube, sep, labels = text.rpartition(":")
    if not sep or not cube or not labels:
        raise ModelError(
            f"scene {text!r} is not CUBE:LABELS",
            where="--scene",
            fix="give the cube directory and its label raster separated by ':'",
        )
    return cube, labels


def read_labels(path: str | os.PathLike[str], *, variable: str) -> np.ndarray:
    """The 2-D raster ``variable`` (``classes`` or ``ch4_ppm_m``) from a GeoTIFF or truth file.

    Raises
    ------
    SceneFormatError
        The file is missing or unreadable, or lacks the variable.
    """
    path = Path(path)
    try:
        if path.suffix == ".nc":
            with h5netcdf.File(path, "r") as f:
                if variable not in f.variables:
                    raise SceneFormatError(
                        f"no variable {variable!r} in the label file",
                        where=str(path),
                        fix=f"use a file with {variable!r} (e.g. truth_sensor_geometry.nc)",
                    )
                return np.asarray(f.variables[variable][...])
        with rasterio.open(path) as src:
            return src.read(1)
    except (OSError, RasterioIOError) as err:
        raise SceneFormatError(
            f"cannot read the label raster: {err}",
            where=str(path),
            fix="give an existing GeoTIFF or netCDF label file",
        ) from err


def _plume_labels(ch4: np.ndarray, threshold: float) -> np.ndarray:
    labels = np.where(ch4 >= threshold, PLUME, BACKGROUND).astype(np.uint8)
    return np.where(np.isfinite(ch4), labels, 0).astype(np.uint8)


def load_labelled_scene(
    cube_path: str | os.PathLike[str], labels_path: str | os.PathLike[str], card: ModelCard
) -> LabelledScene:
    """Read a cube and its labels into memory for training or evaluating ``card``'s model.

    Plume models (option ``labels = "plume"``) label pixels with at least
    ``plume_threshold_ppm_m`` (default 200) of methane as plume.

    Raises
    ------
    ModelError
        The labels are not on the cube's grid.
    SceneFormatError, CubeError
        A file is missing or unreadable.
    """
    cube = open_cube(cube_path)
    refl = cube["reflectance"]
    if card.options.get("labels", "classes") == "plume":
        threshold = float(card.options.get("plume_threshold_ppm_m", 200.0))
        labels = _plume_labels(read_labels(labels_path, variable="ch4_ppm_m"), threshold)
    else:
        labels = read_labels(labels_path, variable="classes").astype(np.uint8)
    if labels.shape != refl.shape[1:]:
        raise ModelError(
            f"labels {labels.shape[0]} × {labels.shape[1]} are not on the cube's grid "
            f"({refl.shape[1]} × {refl.shape[2]})",
            where=str(labels_path),
            fix="give the label raster of this scene (same grid as the cube)",
        )
    reflectance = np.asarray(refl.values, dtype=np.float32)
    valid = np.asarray(np.isfinite(reflectance).any(axis=0), dtype=bool)
    if "valid" in cube:
        valid &= cube["valid"].values.astype(bool)
    return LabelledScene(
        str(cube.attrs.get("scene_id", Path(cube_path).name)),
        str(cube_path),
        reflectance,
        cube_bands(cube),
        np.where(valid, labels, 0).astype(np.uint8),
        valid,
    )
