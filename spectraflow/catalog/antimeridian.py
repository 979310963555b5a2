"""Lon/lat geometries that cross the antimeridian (pure shapely, no I/O).

Conventions:

- A bbox with ``lon_min > lon_max`` crosses the antimeridian (RFC 7946 §5.2, STAC).
- A polygon or line whose longitude jumps more than 180° between consecutive vertices crosses it
  the short way (how unsplit footprints are written in the wild) and is split into parts within
  [-180, 180] (RFC 7946 §3.1.9).

:func:`split` does the splitting, :func:`lon_extent` finds the narrowest longitude span of
parts on both sides, :func:`parts` flattens multi-part geometries.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, MultiLineString, MultiPoint, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

__all__ = ["lon_extent", "parts", "split"]


def split(geometry: BaseGeometry) -> tuple[BaseGeometry, list[str]]:
    """Unwrap, repair and cut every part of ``geometry`` into [-180, 180].

    Returns
    -------
    tuple of (BaseGeometry, list of str)
        The geometry (``geometry`` itself when nothing changed) and the validity problems
        repaired on the way.
    """
    pieces: list[BaseGeometry] = []
    repairs: list[str] = []
    changed = False
    for part in parts(geometry):
        unwrapped = _unwrap(part)
        if isinstance(unwrapped, Polygon) and not unwrapped.is_valid:
            repairs.append(explain_validity(unwrapped))
            unwrapped = shapely.make_valid(unwrapped, method="structure", keep_collapsed=False)
        lon_min, _, lon_max, _ = unwrapped.bounds
        outside = lon_min < -180 or lon_max > 180
        changed = changed or outside or unwrapped is not part
        pieces.extend(_cut(unwrapped) if outside else parts(unwrapped))
    if not changed:
        return geometry, repairs
    dimension = _dimension(geometry)
    kept = [piece for piece in pieces if _dimension(piece) == dimension and not piece.is_empty]
    if dimension == 2:
        return (shapely.union_all(kept) if kept else Polygon()), repairs
    if dimension == 1:
        return (kept[0] if len(kept) == 1 else MultiLineString(kept)), repairs
    return (kept[0] if len(kept) == 1 else MultiPoint(kept)), repairs


def lon_extent(geometry: BaseGeometry) -> tuple[float, float, bool]:
    """``(lon_min, lon_max, crosses)``: the narrowest longitude span, wrapping at ±180°.

    The span is the complement of the widest longitude gap between parts; when that gap is not
    the one across ±180°, the span crosses the antimeridian (RFC 7946 §5.2, the Fiji example).
    """
    merged: list[list[float]] = []
    for west, east in sorted((float(p.bounds[0]), float(p.bounds[2])) for p in parts(geometry)):
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


def parts(geometry: BaseGeometry) -> list[BaseGeometry]:
    """The single-part members of ``geometry``, collections flattened."""
    if hasattr(geometry, "geoms"):
        return [part for member in geometry.geoms for part in parts(member)]
    return [geometry]


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
            pieces.extend(parts(affinity.translate(piece, xoff=-360.0 * turn)))
    return pieces


def _dimension(geometry: BaseGeometry) -> int:
    return int(shapely.get_dimensions(geometry))
