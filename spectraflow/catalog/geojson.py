"""GeoJSON objects to shapely geometries and back, in lon/lat degrees (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from spectraflow.catalog import antimeridian
from spectraflow.errors import QueryError, SceneFormatError

__all__ = ["SHAPE_ERRORS", "footprint", "plain", "read_geometries"]

SHAPE_ERRORS = (ShapelyError, ValueError, TypeError, KeyError, IndexError, AttributeError)
"""What shapely raises on malformed input."""

_GEOJSON_TYPES = {"Point", "LineString", "Polygon", "GeometryCollection"}
_GEOJSON_TYPES |= {f"Multi{kind}" for kind in ("Point", "LineString", "Polygon")}


def read_geometries(obj: Mapping[str, Any], *, where: str, fix: str) -> list[BaseGeometry]:
    """The geometries of a GeoJSON geometry, Feature or FeatureCollection (one per feature).

    Parameters
    ----------
    obj
        The GeoJSON object, lon/lat degrees.
    where
        What errors name as the place, e.g. ``"aoi"``.
    fix
        The advice when ``obj`` is no GeoJSON object at all.

    Raises
    ------
    QueryError
        A feature without geometry, malformed coordinates, or no GeoJSON object at all.
    """
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            advice = "add at least one feature with a geometry"
            raise QueryError("GeoJSON FeatureCollection has no features", where=where, fix=advice)
        geometries: list[BaseGeometry] = []
        for feature in features:
            if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
                what = "GeoJSON FeatureCollection holds a non-Feature"
                advice = "make every member of 'features' a GeoJSON Feature"
                raise QueryError(what, where=where, fix=advice)
            geometries.extend(read_geometries(feature, where=where, fix=fix))
        return geometries
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not isinstance(geometry, Mapping):
            name = f" {obj['id']!r}" if "id" in obj else ""
            advice = "give the feature a geometry, or remove it"
            raise QueryError(f"GeoJSON Feature{name} has no geometry", where=where, fix=advice)
        return read_geometries(geometry, where=where, fix=fix)
    if kind in _GEOJSON_TYPES:
        try:
            return [shape(obj)]
        except SHAPE_ERRORS as exc:
            advice = "give 'coordinates' as [lon, lat] positions; close rings, 4 positions or more"
            raise QueryError(f"invalid GeoJSON {kind}: {exc}", where=where, fix=advice) from None
    what = f"not a GeoJSON geometry, Feature or FeatureCollection (type {kind!r})"
    raise QueryError(what, where=where, fix=fix)


def footprint(value: Mapping[str, Any] | BaseGeometry) -> BaseGeometry:
    """An item footprint as a valid geometry split at the antimeridian; empty when null.

    Parameters
    ----------
    value
        GeoJSON geometry, Feature (e.g. a STAC item) or shapely geometry.

    Raises
    ------
    SceneFormatError
        When ``value`` is not a readable geometry (``where="footprint"``).
    """
    geometry: object = value
    what = f"footprint is a {type(value).__name__}, not a geometry"
    if isinstance(value, Mapping):
        geometry = value.get("geometry") if value.get("type") == "Feature" else value
        try:
            geometry = Polygon() if geometry is None else shape(geometry)
        except SHAPE_ERRORS as exc:
            what = f"footprint is not a valid GeoJSON geometry: {exc}"
    if not isinstance(geometry, BaseGeometry):
        fix = "give the item's GeoJSON geometry (or a shapely geometry) in lon/lat degrees"
        raise SceneFormatError(what, where="footprint", fix=fix)
    if geometry.is_empty:
        return geometry
    split, _ = antimeridian.split(shapely.force_2d(geometry))
    return split if split.is_valid else shapely.make_valid(split)


def plain(value: Any) -> Any:
    """``value`` (e.g. :func:`shapely.geometry.mapping` output) with tuples made lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
