"""Predictions stores as georeferenced, lazy inputs of a mosaic.

:func:`open_prediction` opens a predictions store (written by
:func:`spectraflow.inference.predict_cube`) on a north-up map grid ``(y, x)`` with its CRS:
EnMAP and Sentinel-2 predictions are on their UTM grid already; EMIT's, in sensor geometry
``(line, sample)``, are orthorectified lazily with their GLT
(:func:`spectraflow.sensors.glt.orthorectify`) onto the scene's ortho grid (EPSG:4326, the
``geotransform`` attribute).

:func:`load_source` adds what compositing needs to know of a store (:class:`PredictionSource`:
its grid, kind, main variable and datetime), and :func:`check_compatible` refuses inputs that
cannot be composited together.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyproj
import xarray as xr

from spectraflow.catalog.redaction import redact
from spectraflow.cube import open_cube
from spectraflow.cube.georef import transform_from_gdal
from spectraflow.errors import ConfigError, ProductError, SceneFormatError
from spectraflow.mosaic.grid import TargetGrid
from spectraflow.sensors.glt import ortho_coords, orthorectify

__all__ = [
    "AUXILIARY",
    "CLASS_VARIABLE",
    "ORTHO_CHUNK",
    "Kind",
    "PredictionSource",
    "check_compatible",
    "load_source",
    "open_prediction",
]

Kind = Literal["class", "continuous"]
CLASS_VARIABLE = "class"
"""Main variable of class-map predictions (uint8, 0 = no data)."""
AUXILIARY = ("confidence", "probabilities", "uncertainty", "sensitivity", "glt_x", "glt_y")
"""Variables that are never the main layer of a store."""
ORTHO_CHUNK = 512
"""Ortho block edge (pixels) of orthorectified EMIT predictions."""

_RAW_DIMS = ("line", "sample")
_REPREDICT = "re-run spectraflow predict on a cube written by spectraflow ingest"


def _where(url: str | os.PathLike[str]) -> str:
    """``url`` as it may appear in messages: signatures and logins masked."""
    return redact(os.fspath(url))


def _orthorectified(ds: xr.Dataset, url: str, chunks: int) -> xr.Dataset:
    """EMIT predictions moved from sensor geometry onto their ortho grid as ``(y, x)``."""
    gt, crs = ds.attrs.get("geotransform"), ds.attrs.get("ortho_crs")
    if gt is None or crs is None or "glt_x" not in ds or "glt_y" not in ds:
        raise ProductError(
            "predictions in sensor geometry need glt_x, glt_y and the geotransform and "
            "ortho_crs attributes to be placed on a map",
            where=url,
            fix=_REPREDICT,
        )
    try:
        transform = transform_from_gdal(list(np.asarray(gt, dtype=float)))
        raw = ds.drop_vars([n for n in ds.data_vars if not set(_RAW_DIMS) <= set(ds[n].dims)])
        ortho = orthorectify(raw, ds["glt_x"], ds["glt_y"], chunks=chunks)
        shape = (ds.sizes["ortho_y"], ds.sizes["ortho_x"])
        lon, lat = ortho_coords(gt, shape)
    except (SceneFormatError, ValueError, TypeError) as err:
        raise ProductError(
            f"cannot orthorectify the predictions: {err}", where=url, fix=_REPREDICT
        ) from err
    ortho = ortho.drop_vars([c for c in ("ortho_y", "ortho_x") if c in ortho.coords])
    ortho = ortho.rename({"ortho_y": "y", "ortho_x": "x"}).assign_coords(y=lat, x=lon)
    ortho.attrs = dict(ds.attrs)
    return ortho.rio.write_crs(crs).rio.write_transform(transform)


def open_prediction(url: str | os.PathLike[str], *, chunks: int = ORTHO_CHUNK) -> xr.Dataset:
    """Open a predictions store as a lazy Dataset on a north-up map grid ``(y, x)``.

    Parameters
    ----------
    url
        Local path or fsspec URL of a store written by ``predict_cube``.
    chunks
        Ortho block edge (pixels) of EMIT predictions orthorectified lazily.

    Returns
    -------
    xarray.Dataset
        The store's variables on ``(y, x)`` (``probabilities`` on ``(label, y, x)``) with
        ``.rio.crs`` and ``.rio.transform()`` set and the store's attributes. EMIT: the ortho
        grid in EPSG:4326 (attribute ``geotransform``); pixels the GLT leaves empty are no
        data (class 0, NaN); ``glt_x``/``glt_y`` are dropped.

    Raises
    ------
    CubeError
        Nothing, an incomplete store or not a spectraflow store at ``url``.
    ProductError
        The store has no georeferenced grid.
    """
    where = _where(url)
    ds = open_cube(url)
    if set(_RAW_DIMS) <= set(ds.dims):
        return _orthorectified(ds, where, chunks)
    if not {"y", "x"} <= set(ds.dims) or ds.rio.crs is None:
        raise ProductError(
            "the predictions store has no georeferenced (y, x) grid with a CRS",
            where=where,
            fix=_REPREDICT,
        )
    return ds


@dataclass(frozen=True)
class PredictionSource:
    """One input of a mosaic: a store opened on its map grid, and what compositing needs.

    Attributes
    ----------
    url
        The store's URL as given, signatures and logins masked (for messages).
    data
        :func:`open_prediction`'s Dataset.
    grid
        Its map grid (CRS, transform, shape).
    kind
        ``"class"`` (class map) or ``"continuous"``.
    main
        Name of the main variable (``class``, ``ch4_enhancement`` …).
    datetime
        Acquisition time (UTC), from the ``datetime`` attribute.
    """

    url: str
    data: xr.Dataset
    grid: TargetGrid
    kind: Kind
    main: str
    datetime: _dt.datetime

    @property
    def scene_id(self) -> str:
        """The scene id (attribute ``scene_id``), or the store's name."""
        return str(self.data.attrs.get("scene_id") or os.path.basename(self.url.rstrip("/")))

    @property
    def labels(self) -> list[int]:
        """Class values of the probability layers (class maps), in order."""
        if "label" in self.data.coords:
            return [int(v) for v in self.data["label"].values]
        return [int(v) for v in self.data[self.main].attrs.get("flag_values", [])]


def _main_variable(ds: xr.Dataset, url: str) -> tuple[Kind, str]:
    if CLASS_VARIABLE in ds.data_vars:
        return "class", CLASS_VARIABLE
    for name, var in ds.data_vars.items():
        if str(name) not in AUXILIARY and var.dims == ("y", "x") and var.dtype.kind == "f":
            return "continuous", str(name)
    raise ProductError(
        "the predictions store has neither a class map nor a continuous map on its grid",
        where=url,
        fix="pass stores written by spectraflow predict (class or e.g. ch4_enhancement)",
    )


def _datetime(attrs: dict[Hashable, Any], url: str) -> _dt.datetime:
    raw = attrs.get("datetime")
    try:
        when = _dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError as err:
        raise ProductError(
            f"the predictions store has no valid datetime attribute (got {raw!r})",
            where=url,
            fix=_REPREDICT + " (its cube records the scene's datetime)",
        ) from err
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def load_source(url: str | os.PathLike[str], *, chunks: int = ORTHO_CHUNK) -> PredictionSource:
    """Open one input of a mosaic (see :func:`open_prediction`) and describe it.

    Raises
    ------
    CubeError
        No complete store at ``url``.
    ProductError
        No georeferenced grid, no main layer or no datetime.
    """
    where = _where(url)
    ds = open_prediction(url, chunks=chunks)
    kind, main = _main_variable(ds, where)
    try:
        crs = pyproj.CRS.from_wkt(ds.rio.crs.to_wkt())
        grid = TargetGrid(crs, ds.rio.transform(), (ds.sizes["y"], ds.sizes["x"]))
    except ConfigError as err:
        raise ProductError(
            f"the predictions store's grid cannot be used: {err.what}", where=where, fix=err.fix
        ) from err
    return PredictionSource(where, ds, grid, kind, main, _datetime(dict(ds.attrs), where))


def _class_signature(src: PredictionSource) -> tuple[list[int], str]:
    attrs = src.data[src.main].attrs
    values = [int(v) for v in np.atleast_1d(attrs.get("flag_values", []))]
    return values, str(attrs.get("flag_meanings", ""))


def check_compatible(sources: Sequence[PredictionSource], *, policy: str) -> None:
    """Refuse inputs that cannot be composited together.

    All inputs must be of one kind with the same main variable; class maps must share class
    values and names (and, for ``mean``, have probabilities with the same labels); continuous
    maps must share units.

    Raises
    ------
    ProductError
        Naming the first store that differs from the first one.
    """
    first = sources[0]
    for src in sources:
        if src.kind != first.kind or src.main != first.main:
            raise ProductError(
                f"this store holds a {src.kind} map ({src.main}) but {first.url} holds a "
                f"{first.kind} map ({first.main})",
                where=src.url,
                fix="mosaic predictions of one model (class maps or continuous maps, not both)",
            )
        if src.kind == "class" and _class_signature(src) != _class_signature(first):
            values, names = _class_signature(src)
            raise ProductError(
                f"this store's classes ({values}: {names!r}) differ from those of {first.url} "
                f"({_class_signature(first)[0]}: {_class_signature(first)[1]!r})",
                where=src.url,
                fix="mosaic predictions of one model, or of models with the same classes",
            )
        mean_ready = "probabilities" in src.data and src.labels == first.labels
        if src.kind == "class" and policy == "mean" and not mean_ready:
            raise ProductError(
                "the mean policy needs class probabilities with the same labels in every store",
                where=src.url,
                fix="use policy 'latest' or 'best-confidence', or re-run predict",
            )
        units = (src.data[src.main].attrs.get("units"), first.data[first.main].attrs.get("units"))
        if src.kind == "continuous" and units[0] != units[1]:
            raise ProductError(
                f"this store's {src.main} is in {units[0]!r} but {first.url}'s in {units[1]!r}",
                where=src.url,
                fix="mosaic predictions in the same units",
            )
