"""Areas of interest and time ranges for catalog searches (pure).

:func:`parse_aoi` turns the forms users give an area in (bbox, GeoJSON object, text or file, WKT,
shapely geometry) into one :class:`AOI` in longitude/latitude degrees (EPSG:4326);
:func:`parse_time_range` turns dates and times into UTC datetimes, and :func:`stac_datetime`
writes them as the RFC 3339 interval STAC APIs take.

Antimeridian conventions:

- A bbox with ``lon_min > lon_max`` crosses the antimeridian (RFC 7946 §5.2, STAC).
- A polygon or line whose longitude jumps more than 180° between consecutive vertices crosses it
  the short way (how unsplit footprints are written in the wild) and is split into parts within
  [-180, 180] (RFC 7946 §3.1.9). AOI edges are cut to at most 90° so that an AOI round-trips
  through GeoJSON (a box from -100° to 100° gains vertices in between).

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
from datetime import UTC, date, datetime, time
from numbers import Real
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import shapely
from shapely import affinity
from shapely.errors import ShapelyError
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
    shape,
)
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from spectraflow.errors import QueryError, SceneFormatError

__all__ = [
    "AOI",
    "AOIGeometry",
    "AOILike",
    "BBox",
    "parse_aoi",
    "parse_time_range",
    "split_antimeridian",
    "stac_datetime",
]

log = logging.getLogger(__name__)

BBox: TypeAlias = tuple[float, float, float, float]
"""``(lon_min, lat_min, lon_max, lat_max)`` in EPSG:4326 degrees."""

AOIGeometry: TypeAlias = Polygon | MultiPolygon | Point | MultiPoint | LineString | MultiLineString
"""Geometry types an :class:`AOI` holds (points and lines search by location)."""

_AOI_TYPES = (Polygon, MultiPolygon, Point, MultiPoint, LineString, MultiLineString)
_GEOJSON_TYPES = {"Point", "LineString", "Polygon", "GeometryCollection"}
_GEOJSON_TYPES |= {f"Multi{kind}" for kind in ("Point", "LineString", "Polygon")}
_SHAPE_ERRORS = (ShapelyError, ValueError, TypeError, KeyError, IndexError, AttributeError)
_ORDER = "lon_min,lat_min,lon_max,lat_max"
_AOI_FORMATS = (
    f"give a bbox '{_ORDER}' in degrees, a GeoJSON geometry, Feature or FeatureCollection "
    "(object, JSON text or .geojson file), WKT such as 'POLYGON ((lon lat, ...))', "
    "or a shapely geometry"
)
_TIME_FORMATS = (
    "give an ISO 8601 date or date-time, e.g. 2024-06-01, 2024-06-01T10:00:00Z or "
    "2024-06-01T10:00:00+02:00 (naive times are UTC, a date-only end includes its whole day), "
    "or None / '..' for an open end"
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
        return _lon_extent(self.geometry)[2]

    @property
    def bbox(self) -> BBox:
        """The GeoJSON/STAC bbox; ``lon_min > lon_max`` when the AOI crosses the antimeridian."""
        lon_min, lon_max, _ = _lon_extent(self.geometry)
        _, lat_min, _, lat_max = self.geometry.bounds
        return (lon_min, float(lat_min), lon_max, float(lat_max))

    @property
    def bboxes(self) -> list[BBox]:
        """One bbox per side of the antimeridian (1 or 2), each with ``lon_min <= lon_max``.

        This is what to send to STAC APIs, many of which mishandle ``lon_min > lon_max``.
        """
        lon_min, lon_max, crosses = _lon_extent(self.geometry)
        if not crosses:
            return [self.bbox]
        parts = _parts(self.geometry)
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
        geometry = _footprint(footprint)
        if geometry.is_empty:
            return False
        shapely.prepare(self.geometry)  # idempotent; speeds up filtering many items
        return bool(self.geometry.intersects(geometry))

    def to_geojson(self) -> dict[str, Any]:
        """The geometry as a GeoJSON dict of plain lists, rings oriented per RFC 7946."""
        geometry = self.geometry
        if isinstance(geometry, Polygon | MultiPolygon):
            geometry = shapely.orient_polygons(geometry)
        result: dict[str, Any] = _plain(mapping(geometry))
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
        return AOI(_normalise(_geojson_geometries(aoi)))
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
        return _split(geometry)[0]
    parts = _geojson_geometries(geometry, where="geometry")
    return _split(parts[0] if len(parts) == 1 else GeometryCollection(parts))[0]


def parse_time_range(
    start: date | datetime | str | None, end: date | datetime | str | None
) -> tuple[datetime | None, datetime | None]:
    """Normalise a search time range to UTC datetimes.

    Parameters
    ----------
    start, end
        ``date``, ``datetime`` or ISO 8601 string (``2024-06-01``, ``2024-06-01T10:00:00Z``,
        ``2024-06-01T10:00:00+02:00``); naive times are UTC. A date-only start is 00:00 of that
        day; a date-only end includes the whole day (23:59:59.999999). ``None``, ``""`` or
        ``".."`` leave that end open.

    Returns
    -------
    tuple of (datetime or None, datetime or None)
        Timezone-aware UTC datetimes; ``None`` for an open end.

    Raises
    ------
    QueryError
        With ``where="start"`` or ``"end"``: an unreadable value, or an end before the start.
    """
    start_utc = _parse_time(start, where="start", is_end=False)
    end_utc = _parse_time(end, where="end", is_end=True)
    _check_order(start_utc, end_utc)
    return start_utc, end_utc


def stac_datetime(start: datetime | None, end: datetime | None) -> str | None:
    """The STAC API ``datetime`` parameter for a time range.

    Parameters
    ----------
    start, end
        Datetimes (naive ones are UTC), or ``None`` for an open end, as from
        :func:`parse_time_range`.

    Returns
    -------
    str or None
        RFC 3339 interval in UTC, e.g. ``"2024-06-01T00:00:00Z/2024-06-30T23:59:59.999999Z"``,
        with ``..`` for one open end; ``None`` when both ends are open: omit the parameter, as
        the OGC API / STAC grammar has no ``../..``.
    """
    start_utc = None if start is None else _as_utc(start, where="start")
    end_utc = None if end is None else _as_utc(end, where="end")
    _check_order(start_utc, end_utc)
    if start_utc is None and end_utc is None:
        return None
    return f"{_rfc3339(start_utc)}/{_rfc3339(end_utc)}"


# --- AOI input forms -----------------------------------------------------------------------------


def _error(what: str, *, fix: str = _AOI_FORMATS, where: str = "aoi") -> QueryError:
    return QueryError(what, where=where, fix=fix)


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
            return AOI(_normalise(_geojson_geometries(value)))
        return AOI(_bbox_geometry(_bbox_numbers(value if isinstance(value, list) else [value])))
    numbers = _number_tokens(stripped)
    if numbers is not None:
        return AOI(_bbox_geometry(_bbox_numbers(numbers)))
    if _WKT.match(stripped):
        try:
            geometry = shapely.from_wkt(stripped)
        except _SHAPE_ERRORS as exc:
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


def _geojson_geometries(obj: Mapping[str, Any], *, where: str = "aoi") -> list[BaseGeometry]:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            fix = "add at least one feature with a geometry"
            raise _error("GeoJSON FeatureCollection has no features", fix=fix, where=where)
        geometries: list[BaseGeometry] = []
        for feature in features:
            if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
                fix = "make every member of 'features' a GeoJSON Feature"
                raise _error("GeoJSON FeatureCollection holds a non-Feature", fix=fix, where=where)
            geometries.extend(_geojson_geometries(feature, where=where))
        return geometries
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not isinstance(geometry, Mapping):
            name = f" {obj['id']!r}" if "id" in obj else ""
            fix = "give the feature a geometry, or remove it"
            raise _error(f"GeoJSON Feature{name} has no geometry", fix=fix, where=where)
        return _geojson_geometries(geometry, where=where)
    if kind in _GEOJSON_TYPES:
        try:
            return [shape(obj)]
        except _SHAPE_ERRORS as exc:
            fix = "give 'coordinates' as [lon, lat] positions; close rings, 4 positions or more"
            raise _error(f"invalid GeoJSON {kind}: {exc}", fix=fix, where=where) from None
    what = f"not a GeoJSON geometry, Feature or FeatureCollection (type {kind!r})"
    raise _error(what, where=where)


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
    split, repairs = _split(geometry)
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


def _split(geometry: BaseGeometry) -> tuple[BaseGeometry, list[str]]:
    """Unwrap, repair and cut every part: ``(geometry, validity problems repaired)``."""
    pieces: list[BaseGeometry] = []
    repairs: list[str] = []
    changed = False
    for part in _parts(geometry):
        unwrapped = _unwrap(part)
        if isinstance(unwrapped, Polygon) and not unwrapped.is_valid:
            repairs.append(explain_validity(unwrapped))
            unwrapped = shapely.make_valid(unwrapped, method="structure", keep_collapsed=False)
        lon_min, _, lon_max, _ = unwrapped.bounds
        outside = lon_min < -180 or lon_max > 180
        changed = changed or outside or unwrapped is not part
        pieces.extend(_cut(unwrapped) if outside else _parts(unwrapped))
    if not changed:
        return geometry, repairs
    dimension = _dimension(geometry)
    kept = [piece for piece in pieces if _dimension(piece) == dimension and not piece.is_empty]
    if dimension == 2:
        return (shapely.union_all(kept) if kept else Polygon()), repairs
    if dimension == 1:
        return (kept[0] if len(kept) == 1 else MultiLineString(kept)), repairs
    return (kept[0] if len(kept) == 1 else MultiPoint(kept)), repairs


def _unwrap(part: BaseGeometry) -> BaseGeometry:
    """The part with longitudes made continuous; ``part`` itself when nothing jumps."""
    if isinstance(part, LineString):
        coords = _unwrap_ring(np.asarray(part.coords)[:, :2])
        return part if coords is None else LineString(coords)
    if not isinstance(part, Polygon):
        return part
    rings = [np.asarray(ring.coords)[:, :2] for ring in (part.exterior, *part.interiors)]
    unwrapped = [_unwrap_ring(ring) for ring in rings]
    if all(ring is None for ring in unwrapped):
        return part
    shell, *holes = (old if new is None else new for old, new in zip(rings, unwrapped, strict=True))
    first, last = shell[0], shell[-1]
    if abs(last[0] - first[0]) >= 180:
        # A net 360° turn goes round a pole: close the ring along that pole.
        pole = 90.0 if shell[:, 1].mean() >= 0 else -90.0
        shell = np.vstack([shell, [[last[0], pole], [first[0], pole], first]])
    # Holes unwrap on their own; move each by whole turns next to the shell.
    centre = shell[:, 0].mean()
    turns = [360.0 * round((centre - hole[:, 0].mean()) / 360.0) for hole in holes]
    return Polygon(
        shell, [hole + np.array([turn, 0.0]) for hole, turn in zip(holes, turns, strict=True)]
    )


def _unwrap_ring(xy: np.ndarray) -> np.ndarray | None:
    step = np.diff(xy[:, 0])
    turns = np.where(step > 180, -360.0, np.where(step < -180, 360.0, 0.0))
    if not turns.any():
        return None
    out = xy.astype(float, copy=True)
    out[1:, 0] += np.cumsum(turns)
    return out


def _cut(geometry: BaseGeometry) -> list[BaseGeometry]:
    """Pieces of an unwrapped geometry in each 360° window, moved into [-180, 180]."""
    lon_min, _, lon_max, _ = geometry.bounds
    pieces: list[BaseGeometry] = []
    for turn in range(math.floor((lon_min + 180) / 360), math.ceil((lon_max - 180) / 360) + 1):
        piece = geometry.intersection(box(-180 + 360.0 * turn, -90, 180 + 360.0 * turn, 90))
        if not piece.is_empty:
            pieces.extend(_parts(affinity.translate(piece, xoff=-360.0 * turn)))
    return pieces


def _segmentize(geometry: AOIGeometry) -> AOIGeometry:
    if isinstance(geometry, Point | MultiPoint):
        return geometry
    result: AOIGeometry = shapely.segmentize(geometry, _MAX_EDGE_DEG)
    return result


def _footprint(footprint: Mapping[str, Any] | BaseGeometry) -> BaseGeometry:
    geometry: object = footprint
    what = f"footprint is {_describe(footprint)}, not a geometry"
    if isinstance(footprint, Mapping):
        geometry = footprint.get("geometry") if footprint.get("type") == "Feature" else footprint
        try:
            geometry = Polygon() if geometry is None else shape(geometry)
        except _SHAPE_ERRORS as exc:
            what = f"footprint is not a valid GeoJSON geometry: {exc}"
    if not isinstance(geometry, BaseGeometry):
        fix = "give the item's GeoJSON geometry (or a shapely geometry) in lon/lat degrees"
        raise SceneFormatError(what, where="footprint", fix=fix)
    if geometry.is_empty:
        return geometry
    split, _ = _split(shapely.force_2d(geometry))
    return split if split.is_valid else shapely.make_valid(split)


# --- small helpers -------------------------------------------------------------------------------


def _parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    if hasattr(geometry, "geoms"):
        return [part for member in geometry.geoms for part in _parts(member)]
    return [geometry]


def _dimension(geometry: BaseGeometry) -> int:
    return int(shapely.get_dimensions(geometry))


def _bounds(parts: list[BaseGeometry]) -> BBox:
    west, south, east, north = np.array([part.bounds for part in parts]).T
    return (float(west.min()), float(south.min()), float(east.max()), float(north.max()))


def _lon_extent(geometry: BaseGeometry) -> tuple[float, float, bool]:
    """``(lon_min, lon_max, crosses)``: the narrowest longitude span, wrapping at ±180°.

    The span is the complement of the widest longitude gap between parts; when that gap is not
    the one across ±180°, the span crosses the antimeridian (RFC 7946 §5.2, the Fiji example).
    """
    merged: list[list[float]] = []
    for west, east in sorted((float(p.bounds[0]), float(p.bounds[2])) for p in _parts(geometry)):
        if merged and west <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], east)
        else:
            merged.append([west, east])
    lon_min, lon_max = merged[0][0], merged[-1][1]
    gaps = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    if not gaps:
        return lon_min, lon_max, False
    gap_west, gap_east = max(gaps, key=lambda gap: gap[1] - gap[0])
    if gap_east - gap_west <= lon_min + 360 - lon_max:
        return lon_min, lon_max, False
    return gap_east, gap_west, True


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _describe(value: object) -> str:
    return f"a {value.geom_type if isinstance(value, BaseGeometry) else type(value).__name__}"


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


# --- time ----------------------------------------------------------------------------------------


def _parse_time(value: object, *, where: str, is_end: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _as_utc(value, where=where)
    if isinstance(value, date):
        return datetime.combine(value, time.max if is_end else time.min, tzinfo=UTC)
    if not isinstance(value, str):
        what = f"{where} must be a date, datetime or ISO 8601 string, not {_describe(value)}"
        raise _error(what, where=where, fix=_TIME_FORMATS)
    text = value.strip().upper()  # fromisoformat wants "T" and "Z" upper case
    if text in {"", ".."}:
        return None
    try:
        return _parse_time(date.fromisoformat(text), where=where, is_end=is_end)
    except ValueError:
        pass
    try:
        return _as_utc(datetime.fromisoformat(text), where=where)
    except ValueError:
        raise _error(f"cannot read {where} {value!r}", where=where, fix=_TIME_FORMATS) from None


def _as_utc(value: datetime, *, where: str) -> datetime:
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        what = f"{where} {value.isoformat()} is out of range in UTC"
        raise _error(what, where=where, fix=_TIME_FORMATS) from None


def _check_order(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        what = f"end {_rfc3339(end)} is before start {_rfc3339(start)}"
        fix = "give an end on or after the start (a date-only end includes its whole day)"
        raise _error(what, where="end", fix=fix)


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return ".."
    utc = _as_utc(value, where="time").replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"
