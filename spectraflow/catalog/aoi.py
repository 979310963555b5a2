"""Areas of interest for catalog searches (pure).

:func:`parse_aoi` turns the forms users give an area in (bbox, GeoJSON object, text or file, WKT,
shapely geometry) into one :class:`AOI` in longitude/latitude degrees (EPSG:4326), split at the
antimeridian (conventions in :mod:`spectraflow.catalog.antimeridian`). AOI edges are cut to at most
90° so that an AOI round-trips through GeoJSON (a box from -100° to 100° gains vertices in between).

Nothing here touches the network; the only I/O is reading an AOI file when given a path.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import shapely
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    box,
    mapping,
)
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from spectraflow.catalog import antimeridian, geojson
from spectraflow.errors import QueryError

__all__ = [
    "AOI",
    "AOIGeometry",
    "AOILike",
    "BBox",
    "parse_aoi",
    "split_antimeridian",
]

log = logging.getLogger(__name__)

BBox: TypeAlias = tuple[float, float, float, float]
"""``(lon_min, lat_min, lon_max, lat_max)`` in EPSG:4326 degrees."""

AOIGeometry: TypeAlias = Polygon | MultiPolygon | Point | MultiPoint | LineString | MultiLineString
"""Geometry types an :class:`AOI` holds (points and lines search by location)."""

_AOI_TYPES = (Polygon, MultiPolygon, Point, MultiPoint, LineString, MultiLineString)
_ORDER = "lon_min,lat_min,lon_max,lat_max"
_AOI_FORMATS = (
    f"give a bbox '{_ORDER}' in degrees, a GeoJSON geometry, Feature or FeatureCollection "
    "(object, JSON text or .geojson file), WKT such as 'POLYGON ((lon lat, ...))', "
    "or a shapely geometry"
)
_MAX_EDGE_DEG = 90.0  # longest AOI edge: consecutive vertices never look like a ±180° jump
_WKT = re.compile(r"\s*((MULTI)?(POINT|LINESTRING|POLYGON)|GEOMETRYCOLLECTION)\b", re.IGNORECASE)


@dataclass(frozen=True)
class AOI:
    """An area of interest in longitude/latitude degrees (EPSG:4326).

    Build one with :func:`parse_aoi`, which validates the input and splits it at the antimeridian.

    Attributes
    ----------
    geometry
        Polygon or MultiPolygon (Point, LineString and their multi forms search by location),
        lon/lat degrees; every part lies within [-180, 180]: an AOI crossing the antimeridian has
        parts on both sides.
    """

    geometry: AOIGeometry

    def __post_init__(self) -> None:
        geometry = self.geometry
        if not isinstance(geometry, _AOI_TYPES) or geometry.is_empty:
            raise _error(f"an AOI needs a polygon, point or line, not {_describe(geometry)}")
        lon_min, lat_min, lon_max, lat_max = geometry.bounds
        if lon_min < -180 or lon_max > 180 or lat_min < -90 or lat_max > 90:
            raise _error(
                "AOI geometry lies outside longitude [-180, 180] or latitude [-90, 90]",
                fix="build the AOI with parse_aoi(), which splits it at the antimeridian",
            )

    @property
    def crosses_antimeridian(self) -> bool:
        """Whether the AOI's bbox crosses the antimeridian (its parts lie on both sides)."""
        return antimeridian.lon_extent(self.geometry)[2]

    @property
    def bbox(self) -> BBox:
        """The GeoJSON/STAC bbox; ``lon_min > lon_max`` when the AOI crosses the antimeridian."""
        lon_min, lon_max, _ = antimeridian.lon_extent(self.geometry)
        _, lat_min, _, lat_max = self.geometry.bounds
        return (lon_min, float(lat_min), lon_max, float(lat_max))

    @property
    def bboxes(self) -> list[BBox]:
        """One bbox per side of the antimeridian (1 or 2), each with ``lon_min <= lon_max``.

        This is what to send to STAC APIs, many of which mishandle ``lon_min > lon_max``.
        """
        lon_min, lon_max, crosses = antimeridian.lon_extent(self.geometry)
        if not crosses:
            return [self.bbox]
        parts = antimeridian.parts(self.geometry)
        east = [part for part in parts if part.bounds[0] >= lon_min]
        west = [part for part in parts if part.bounds[2] <= lon_max]
        return [_bounds(east), _bounds(west)]

    def intersects(self, footprint: Mapping[str, Any] | BaseGeometry) -> bool:
        """Whether an item footprint intersects (or touches) the AOI.

        Parameters
        ----------
        footprint
            GeoJSON geometry (or Feature, e.g. a STAC item) or shapely geometry, lon/lat degrees.
            Footprints crossing the antimeridian unsplit (longitudes jumping 179 → -179) are
            split first; invalid polygons are repaired. A null geometry intersects nothing.

        Raises
        ------
        SceneFormatError
            When the footprint is not a readable geometry (``where="footprint"``).
        """
        geometry = geojson.footprint(footprint)
        if geometry.is_empty:
            return False
        shapely.prepare(self.geometry)  # idempotent; speeds up filtering many items
        return bool(self.geometry.intersects(geometry))

    def to_geojson(self) -> dict[str, Any]:
        """The geometry as a GeoJSON dict of plain lists, rings oriented per RFC 7946."""
        geometry = self.geometry
        if isinstance(geometry, Polygon | MultiPolygon):
            geometry = shapely.orient_polygons(geometry)
        result: dict[str, Any] = geojson.plain(mapping(geometry))
        return result

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        return self.to_geojson()


AOILike: TypeAlias = (
    BBox | Sequence[float] | str | os.PathLike[str] | Mapping[str, Any] | BaseGeometry | AOI
)
"""Anything :func:`parse_aoi` accepts."""


def parse_aoi(aoi: AOILike) -> AOI:
    """Normalise an area of interest.

    Parameters
    ----------
    aoi
        A bbox of 4 numbers ``(lon_min, lat_min, lon_max, lat_max)`` in degrees, as a sequence or
        a string ``"lon_min,lat_min,lon_max,lat_max"`` (``lon_min > lon_max`` crosses the
        antimeridian); a GeoJSON geometry, Feature or FeatureCollection (the union of its
        features) as a mapping, JSON text or path to a ``.json``/``.geojson`` file; WKT text; a
        shapely geometry; or an :class:`AOI`. Positions are longitude, latitude (EPSG:4326).

    Returns
    -------
    AOI
        Split at the antimeridian; invalid polygons repaired with :func:`shapely.make_valid`.

    Raises
    ------
    QueryError
        With ``where="aoi"``: unreadable input, lon/lat swapped or out of range, NaN, a bbox of
        zero area, an empty geometry or a polygon without area.
    """
    if isinstance(aoi, AOI):
        return aoi
    if isinstance(aoi, BaseGeometry):
        return AOI(_normalise([aoi]))
    if isinstance(aoi, os.PathLike):
        return _parse_file(Path(aoi))
    if isinstance(aoi, str):
        return _parse_text(aoi, source=None)
    if isinstance(aoi, Mapping):
        return AOI(_normalise(_geojson(aoi)))
    if isinstance(aoi, Iterable) and not isinstance(aoi, bytes | bytearray):
        return AOI(_bbox_geometry(_bbox_numbers(aoi)))
    raise _error(f"cannot use {_describe(aoi)} as an AOI")


def split_antimeridian(geometry: Mapping[str, Any] | BaseGeometry) -> BaseGeometry:
    """Split a lon/lat polygon or line that crosses ±180° into parts within [-180, 180].

    A crossing is a longitude jump of more than 180° between consecutive vertices (the geometry
    goes the short way round); a ring that turns a net 360° encloses a pole and is closed along
    it. Longitudes beyond ±180 (0–360 convention) are wrapped as well, and polygons made invalid
    by the jump are repaired. Anything else (points included) is returned unchanged.

    Parameters
    ----------
    geometry
        GeoJSON geometry mapping or shapely geometry, lon/lat degrees.

    Returns
    -------
    BaseGeometry
        The geometry itself, or a (Multi)Polygon / (Multi)LineString within [-180, 180].
    """
    if isinstance(geometry, BaseGeometry):
        return antimeridian.split(geometry)[0]
    parts = geojson.read_geometries(geometry, where="geometry", fix=_AOI_FORMATS)
    return antimeridian.split(parts[0] if len(parts) == 1 else GeometryCollection(parts))[0]


# --- AOI input forms -----------------------------------------------------------------------------


def _error(what: str, *, fix: str = _AOI_FORMATS, where: str = "aoi") -> QueryError:
    return QueryError(what, where=where, fix=fix)


def _geojson(obj: Mapping[str, Any]) -> list[BaseGeometry]:
    return geojson.read_geometries(obj, where="aoi", fix=_AOI_FORMATS)


def _parse_text(text: str, *, source: Path | None) -> AOI:
    origin = "AOI" if source is None else f"AOI file {source}"
    stripped = text.strip()
    if not stripped:
        raise _error(f"{origin} is empty")
    if stripped[0] in "{[":
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _error(
                f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if isinstance(value, Mapping):
            return AOI(_normalise(_geojson(value)))
        return AOI(_bbox_geometry(_bbox_numbers(value if isinstance(value, list) else [value])))
    numbers = _number_tokens(stripped)
    if numbers is not None:
        return AOI(_bbox_geometry(_bbox_numbers(numbers)))
    if _WKT.match(stripped):
        try:
            geometry = shapely.from_wkt(stripped)
        except geojson.SHAPE_ERRORS as exc:
            fix = "write it like 'POLYGON ((lon lat, lon lat, ...))', rings closed"
            raise _error(f"{origin} is not valid WKT: {exc}", fix=fix) from None
        return AOI(_normalise([geometry]))
    if source is None and "://" not in stripped:
        path = Path(stripped).expanduser()
        if path.suffix.lower() in {".json", ".geojson"} or _is_file(path):
            return _parse_file(path)
    raise _error(f"cannot read {origin} {_short(stripped)}")


def _parse_file(path: Path) -> AOI:
    try:
        return _parse_text(_read_file(path), source=path)
    except QueryError as exc:  # name the file in errors about its contents
        if str(path) in exc.what:
            raise
        raise _error(f"AOI file {path}: {exc.what}", fix=exc.fix or _AOI_FORMATS) from None


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except FileNotFoundError:
        what, fix = f"AOI file {path} does not exist", "check the path"
    except IsADirectoryError:
        what, fix = f"AOI path {path} is a directory", "give the GeoJSON file inside it"
    except UnicodeDecodeError:
        what = f"AOI file {path} is not UTF-8 text"
        fix = (
            f"convert it to GeoJSON, e.g. `ogr2ogr -f GeoJSON -t_srs EPSG:4326 aoi.geojson {path}`"
        )
    except OSError as exc:
        what, fix = f"cannot read AOI file {path}: {exc.strerror or exc}", "check its permissions"
    raise _error(what, fix=fix)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # name too long, NUL byte: not a path
        return False


def _number_tokens(text: str) -> list[float] | None:
    tokens = [token for token in re.split(r"[\s,]+", text.strip("()[] ")) if token]
    try:
        return [float(token) for token in tokens]
    except ValueError:
        return None


# --- bbox ----------------------------------------------------------------------------------------


def _bbox_numbers(values: Iterable[Any]) -> BBox:
    items = list(values)
    numbers: list[float] = []
    for value in items:
        if isinstance(value, Real) and not isinstance(value, bool):
            numbers.append(float(value))
        elif isinstance(value, str) and (parsed := _number_tokens(value)) and len(parsed) == 1:
            numbers.append(parsed[0])
        else:
            what = f"bbox values must be numbers, got {_short(repr(items))}"
            raise _error(what, fix=f"give 4 numbers {_ORDER} in degrees")
    if len(numbers) != 4:
        what = f"a bbox needs 4 numbers, got {len(numbers)}: {_short(repr(numbers))}"
        raise _error(what, fix=f"give {_ORDER} in degrees, e.g. -103.7,31.9,-103.5,32.1")
    lon_min, lat_min, lon_max, lat_max = numbers
    shown = f"bbox ({', '.join(f'{v:g}' for v in numbers)})"
    fix = f"give {_ORDER} in EPSG:4326 degrees"
    if not all(math.isfinite(v) for v in numbers):
        raise _error(f"{shown} has a NaN or infinite value", fix=fix)
    if max(abs(lat_min), abs(lat_max)) > 90:
        bad = lat_min if abs(lat_min) > 90 else lat_max
        what = f"{shown} has latitude {bad:g} outside [-90, 90]"
        if max(abs(lon_min), abs(lon_max)) <= 90 and max(abs(lat_min), abs(lat_max)) <= 180:
            swapped = f"{lat_min:g},{lon_min:g},{lat_max:g},{lon_max:g}"
            what += "; longitude and latitude look swapped"
            fix = f"give {_ORDER} (longitude first), here probably {swapped}"
        raise _error(what, fix=fix)
    if max(abs(lon_min), abs(lon_max)) > 180:
        bad = lon_min if abs(lon_min) > 180 else lon_max
        fix += " (subtract 360 from longitudes above 180)"
        raise _error(f"{shown} has longitude {bad:g} outside [-180, 180]", fix=fix)
    if lat_min > lat_max:
        what = f"{shown} has lat_min {lat_min:g} greater than lat_max {lat_max:g}"
        raise _error(what, fix=f"give {_ORDER}, south before north")
    # lon_min > lon_max is no error: the bbox crosses the antimeridian.
    if lat_min == lat_max or lon_min == lon_max or (lon_min == 180 and lon_max == -180):
        fix = f"give {_ORDER} with an extent, or a GeoJSON/WKT Point to search by location"
        raise _error(f"{shown} has zero area", fix=fix)
    return (lon_min, lat_min, lon_max, lat_max)


def _bbox_geometry(bbox: BBox) -> AOIGeometry:
    lon_min, lat_min, lon_max, lat_max = bbox
    if lon_min < lon_max:
        return _segmentize(box(lon_min, lat_min, lon_max, lat_max))
    sides = [(lon_min, 180.0), (-180.0, lon_max)]
    parts = [box(west, lat_min, east, lat_max) for west, east in sides if west < east]
    return _segmentize(parts[0] if len(parts) == 1 else MultiPolygon(parts))


# --- geometry normalisation ----------------------------------------------------------------------


def _normalise(geometries: list[BaseGeometry]) -> AOIGeometry:
    normalised = [_normalise_one(geometry) for geometry in geometries]
    geometry = normalised[0] if len(normalised) == 1 else shapely.union_all(normalised)
    if not isinstance(geometry, _AOI_TYPES):
        fix = "give polygons only (or only points, or only lines)"
        raise _error(f"AOI mixes geometry types ({_describe(geometry)})", fix=fix)
    return _segmentize(geometry)


def _normalise_one(geometry: BaseGeometry) -> BaseGeometry:
    if geometry.is_empty:
        raise _error(f"AOI geometry is empty ({geometry.geom_type})")
    if isinstance(geometry, GeometryCollection):
        members = [_normalise_one(member) for member in geometry.geoms]
        return members[0] if len(members) == 1 else shapely.union_all(members)
    geometry = shapely.force_2d(geometry)
    _check_coordinates(geometry)
    split, repairs = antimeridian.split(geometry)
    if isinstance(geometry, Polygon | MultiPolygon):
        if not split.is_empty and not split.is_valid:  # e.g. a MultiPolygon's parts overlap
            repairs.append(explain_validity(split))
            split = shapely.make_valid(split, method="structure", keep_collapsed=False)
        if split.is_empty or split.area == 0:
            invalid = f" is invalid ({'; '.join(repairs)}) and" if repairs else ""
            fix = "give a polygon whose rings enclose an area and do not cross themselves"
            raise _error(f"AOI polygon{invalid} has no area", fix=fix)
        if repairs:
            log.warning("AOI polygon was invalid (%s); repaired it", "; ".join(repairs))
    elif isinstance(geometry, LineString | MultiLineString) and split.length == 0:
        raise _error("AOI line has zero length", fix="give a Point instead")
    return split


def _check_coordinates(geometry: BaseGeometry) -> None:
    xy = shapely.get_coordinates(geometry)
    if not np.isfinite(xy).all():
        raise _error("AOI coordinates contain NaN or infinity", fix="give finite lon/lat degrees")
    lon, lat = np.abs(xy[:, 0]), np.abs(xy[:, 1])
    if lat.max() > 90:
        x, y = xy[int(np.argmax(lat))]
        what = f"AOI position ({x:g}, {y:g}) has latitude {y:g} outside [-90, 90]"
        if lon.max() <= 90 and lat.max() <= 180:
            what += "; longitude and latitude look swapped"
            fix = "write positions longitude first: [lon, lat] in GeoJSON, (lon lat) in WKT"
        else:
            fix = "give the AOI in EPSG:4326 longitude/latitude degrees (reproject it)"
        raise _error(what, fix=fix)
    if lon.max() > 180:
        x, y = xy[int(np.argmax(lon))]
        fix = (
            "give longitudes in [-180, 180] (subtract 360 from those above 180); a polygon may "
            "cross the antimeridian by jumping from 179 to -179"
        )
        raise _error(f"AOI position ({x:g}, {y:g}) has longitude outside [-180, 180]", fix=fix)


def _segmentize(geometry: AOIGeometry) -> AOIGeometry:
    if isinstance(geometry, Point | MultiPoint):
        return geometry
    result: AOIGeometry = shapely.segmentize(geometry, _MAX_EDGE_DEG)
    return result


# --- small helpers -------------------------------------------------------------------------------


def _bounds(parts: list[BaseGeometry]) -> BBox:
    west, south, east, north = np.array([part.bounds for part in parts]).T
    return (float(west.min()), float(south.min()), float(east.max()), float(north.max()))


def _describe(value: object) -> str:
    return f"a {value.geom_type if isinstance(value, BaseGeometry) else type(value).__name__}"


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")
