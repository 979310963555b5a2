"""Synthetic predictions stores in the layout predict_cube writes, written with write_cube."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pyproj
import pytest
import xarray as xr
from affine import Affine

from spectraflow.cube import write_cube

LABELS = [1, 2, 3, 4, 5]
NAMES = "water forest grassland cropland built-up"
COLOURS = ["#1f78b4", "#33a02c", "#b2df8a", "#ffff99", "#e31a1c"]


def probabilities_for(classes: np.ndarray, confidence: np.ndarray, labels=LABELS) -> np.ndarray:
    """(label, rows, cols): the chosen class gets its confidence, the others share the rest."""
    k = len(labels)
    rest = (1.0 - confidence) / (k - 1)
    probs = np.repeat(rest[None], k, axis=0).astype(np.float32)
    for i, v in enumerate(labels):
        probs[i][classes == v] = confidence[classes == v]
    probs[:, classes == 0] = np.nan
    return probs


def _attrs(scene_id: str, datetime: str, sensor: str, model: str) -> dict:
    return {
        "sensor": sensor,
        "scene_id": scene_id,
        "collection": "test",
        "provider": "local",
        "datetime": datetime,
        "source_item": f"https://example.test/items/{scene_id}.json?sig=secret&se=2030",
        "model": model,
        "model_version": "1.0.0",
        "model_sha256": model_sha256(model),
    }


def model_sha256(model: str) -> str:
    """The weights hash the test stores of ``model`` carry (predict_cube writes the real one)."""
    return hashlib.sha256(model.encode()).hexdigest()


def _class_vars(classes, confidence, probabilities, dims, labels, meanings):
    confidence = np.where(classes > 0, confidence, np.nan).astype(np.float32)
    if probabilities is None:
        probabilities = probabilities_for(classes, confidence, labels)
    ds = xr.Dataset(
        {
            "probabilities": (("label", *dims), probabilities.astype(np.float32)),
            "class": (dims, classes.astype(np.uint8)),
            "confidence": (dims, confidence),
        },
        coords={"label": list(labels)},
    )
    ds["class"].attrs.update(
        long_name="class value (0 = no data)",
        flag_values=list(labels),
        flag_meanings=meanings,
        flag_colors=COLOURS[: len(labels)],
    )
    ds["confidence"].attrs.update(long_name="probability of the chosen class", units="1")
    return ds


def _on_map(ds: xr.Dataset, crs, transform: Affine) -> xr.Dataset:
    rows, cols = ds.sizes["y"], ds.sizes["x"]
    ds = ds.assign_coords(
        x=transform.c + (np.arange(cols) + 0.5) * transform.a,
        y=transform.f + (np.arange(rows) + 0.5) * transform.e,
    )
    return ds.rio.write_crs(crs).rio.write_transform(transform)


@pytest.fixture
def stores(tmp_path):
    """Factory of predictions stores under tmp_path: ``stores.classes(...)`` etc."""
    counter = itertools.count()

    class Factory:
        def classes(
            self,
            classes,
            *,
            crs,
            transform,
            datetime,
            confidence=None,
            probabilities=None,
            labels=LABELS,
            meanings=NAMES,
            model="lc-test",
            sensor="enmap",
            without=(),
            attrs=None,
        ) -> str:
            """A class-map store; ``without``: variables left out, ``attrs``: extra attributes."""
            classes = np.asarray(classes, dtype=np.uint8)
            if confidence is None:
                confidence = np.full(classes.shape, 0.8, dtype=np.float32)
            ds = _class_vars(
                classes, np.asarray(confidence), probabilities, ("y", "x"), labels, meanings
            )
            ds = _on_map(ds.drop_vars(list(without)), crs, transform)
            return self._write(ds, datetime, sensor, model, attrs)

        def continuous(
            self,
            values,
            *,
            crs,
            transform,
            datetime,
            uncertainty=None,
            units="ppm m",
            sensor="enmap",
        ) -> str:
            values = np.asarray(values, dtype=np.float32)
            if uncertainty is None:
                uncertainty = np.full(values.shape, 100.0, dtype=np.float32)
            uncertainty = np.where(np.isfinite(values), uncertainty, np.nan).astype(np.float32)
            ds = xr.Dataset(
                {
                    "ch4_enhancement": (("y", "x"), values),
                    "uncertainty": (("y", "x"), uncertainty),
                    "sensitivity": (("y", "x"), np.ones_like(values)),
                }
            )
            for name in ds.data_vars:
                ds[name].attrs["units"] = units if name != "sensitivity" else "1"
            return self._write(_on_map(ds, crs, transform), datetime, sensor, "ch4-mf")

        def emit(self, raw_classes, *, glt_x, glt_y, geotransform, datetime, confidence=None):
            """EMIT-like class predictions in sensor geometry with a GLT on EPSG:4326."""
            raw_classes = np.asarray(raw_classes, dtype=np.uint8)
            if confidence is None:
                confidence = np.full(raw_classes.shape, 0.9, dtype=np.float32)
            ds = _class_vars(
                raw_classes, np.asarray(confidence), None, ("line", "sample"), LABELS, NAMES
            )
            ds["glt_x"] = (("ortho_y", "ortho_x"), np.asarray(glt_x, dtype=np.int32))
            ds["glt_y"] = (("ortho_y", "ortho_x"), np.asarray(glt_y, dtype=np.int32))
            ds.attrs.update(geotransform=list(geotransform), ortho_crs="EPSG:4326")
            return self._write(ds, datetime, "emit", "lc-test")

        utm_of = staticmethod(utm_of)
        model_sha256 = staticmethod(model_sha256)
        patches = staticmethod(patches)

        def _write(self, ds, datetime, sensor, model, attrs=None) -> str:
            n = next(counter)
            ds.attrs.update(_attrs(f"SCENE_{n}", datetime, sensor, model), **(attrs or {}))
            return write_cube(ds, tmp_path / f"pred{n}.zarr", attrs={"source_cube": "c.zarr"})

    return Factory()


def utm_of(lon: float, lat: float, epsg: int) -> tuple[float, float]:
    """Map coordinates of (lon, lat) in ``epsg``."""
    tr = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    x, y = tr.transform(lon, lat)
    return float(x), float(y)


def patches(shape, *, seed: int, size: int = 6, labels=LABELS) -> np.ndarray:
    """A class map of square patches (like land cover), values from ``labels``."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    coarse = rng.choice(labels, size=(-(-rows // size), -(-cols // size)))
    return np.kron(coarse, np.ones((size, size), dtype=int))[:rows, :cols].astype(np.uint8)
