from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, box, shape

from spectraflow.catalog.aoi import AOI, parse_aoi, split_antimeridian
from spectraflow.errors import QueryError, SceneFormatError

BBOX = (-103.7, 31.9, -103.5, 32.1)  # Permian Basin, lon/lat
RING = [[-103.7, 31.9], [-103.5, 31.9], [-103.5, 32.1], [-103.7, 32.1], [-103.7, 31.9]]
POLYGON = {"type": "Polygon", "coordinates": [RING]}
WKT = "POLYGON ((-103.7 31.9, -103.5 31.9, -103.5 32.1, -103.7 32.1, -103.7 31.9))"

# A polygon crossing the antimeridian unsplit: longitudes jump 170 → -170.
ACROSS = {
    "type": "Polygon",
    "coordinates": [[[170, -20], [-170, -20], [-170, -10], [170, -10], [170, -20]]],
}


def _square(lon: float, lat: float, size: float = 1.0) -> dict[str, object]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(geometry: dict[str, object]) -> dict[str, object]:
    return {"type": "Feature", "geometry": geometry, "properties": {}}


# An item footprint crossing unsplit, 179 → -179, around lat -15.
FOOTPRINT_ACROSS = {
    "type": "Polygon",
    "coordinates": [[[179, -16], [-179, -16], [-179, -14], [179, -14], [179, -16]]],
}


@pytest.mark.parametrize(
    "aoi",
    [
        BBOX,
        list(BBOX),
        np.array(BBOX),
        "-103.7,31.9,-103.5,32.1",
        " -103.7, 31.9 , -103.5,32.1 ",
        "-103.7 31.9 -103.5 32.1",
        "[-103.7, 31.9, -103.5, 32.1]",
        POLYGON,
        _feature(POLYGON),
        {"type": "FeatureCollection", "features": [_feature(POLYGON)]},
        json.dumps(POLYGON),
        WKT,
        WKT.lower(),
        box(*BBOX),
        shapely.Polygon(RING),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_input_kind_gives_the_same_aoi(aoi: object) -> None:
    result = parse_aoi(aoi)  # type: ignore[arg-type]
    assert result.bbox == pytest.approx(BBOX)
    assert result.bboxes == [result.bbox]
    assert result.geometry.equals(box(*BBOX))
    assert not result.crosses_antimeridian
    assert parse_aoi(result) is result


@pytest.mark.parametrize("suffix", [".geojson", ".json"])
def test_feature_collection_file_is_the_union_of_its_features(tmp_path, suffix: str) -> None:
    path = tmp_path / f"aoi{suffix}"
    collection = {
        "type": "FeatureCollection",
        "features": [_feature(_square(10, 40)), _feature(_square(12, 41))],
    }
    path.write_text(json.dumps(collection), encoding="utf-8")
    for given in (path, str(path)):
        aoi = parse_aoi(given)
        assert isinstance(aoi.geometry, MultiPolygon)
        assert aoi.geometry.area == pytest.approx(2.0)
        assert aoi.bbox == (10, 40, 13, 42)
        assert aoi.intersects(_square(12.5, 41.5, 0.1))
        assert not aoi.intersects(_square(11.2, 41.2, 0.5))  # in the bbox, between the features


@pytest.mark.parametrize(
    "aoi",
    [
        (170, -20, -170, -10),
        "170,-20,-170,-10",
        ACROSS,
        json.dumps(_feature(ACROSS)),
        "POLYGON ((170 -20, -170 -20, -170 -10, 170 -10, 170 -20))",
        shape(ACROSS),
    ],
    ids=["bbox", "bbox-text", "geojson", "feature-text", "wkt", "shapely"],
)
def test_antimeridian_aoi_is_split_in_two(aoi: object) -> None:
    result = parse_aoi(aoi)  # type: ignore[arg-type]
    assert result.crosses_antimeridian
    assert isinstance(result.geometry, MultiPolygon)
    assert len(result.geometry.geoms) == 2
    assert result.geometry.area == pytest.approx(200.0)  # 2 x 10° x 10°, not 340° x 10°
    assert result.bbox == (170, -20, -170, -10)
    assert result.bboxes == [(170, -20, 180, -10), (-180, -20, -170, -10)]
    assert result.intersects(_square(175, -15))  # east side
    assert result.intersects(_square(-176, -15))  # west side
    assert result.intersects(FOOTPRINT_ACROSS)
    assert not result.intersects(_square(0, -15))  # between the sides, the wrong way round
    assert not result.intersects(_square(175, 40))
    assert result.to_geojson()["type"] == "MultiPolygon"


def test_unsplit_footprint_does_not_span_the_globe() -> None:
    aoi = parse_aoi((-10, -20, 10, -10))
    # Read naively, the footprint spans -179..179 and would cover lon 0.
    assert shape(FOOTPRINT_ACROSS).intersects(aoi.geometry)
    assert not aoi.intersects(FOOTPRINT_ACROSS)
    assert not aoi.intersects(_feature(FOOTPRINT_ACROSS))
    assert parse_aoi((178, -20, -178, -10)).intersects(FOOTPRINT_ACROSS)


def test_intersects_takes_items_shapely_and_null_geometry() -> None:
    aoi = parse_aoi(BBOX)
    item = {"type": "Feature", "id": "x", "geometry": _square(-103.65, 31.95, 0.1), "bbox": []}
    assert aoi.intersects(item)
    assert aoi.intersects(Point(-103.6, 32.0))
    assert not aoi.intersects(Point(0, 0))
    assert not aoi.intersects({"type": "Feature", "geometry": None})
    bowtie = {"type": "Polygon", "coordinates": [[[-104, 31], [-103, 33], [-103, 31], [-104, 33]]]}
    assert aoi.intersects(bowtie)  # invalid footprints are repaired, not fatal
    for bad in ({"type": "Polygon", "coordinates": "x"}, 42):
        with pytest.raises(SceneFormatError) as info:
            aoi.intersects(bad)  # type: ignore[arg-type]
        assert info.value.where == "footprint"


def test_points_and_lines_are_kept() -> None:
    point = parse_aoi("POINT (-103.6 32)")
    assert isinstance(point.geometry, Point)
    assert point.bbox == (-103.6, 32, -103.6, 32)
    assert point.intersects(POLYGON)
    line = parse_aoi({"type": "LineString", "coordinates": [[-104, 32], [-103, 32]]})
    assert isinstance(line.geometry, LineString)
    assert line.intersects(POLYGON)
    across = parse_aoi({"type": "LineString", "coordinates": [[175, 0], [-175, 0]]})
    assert isinstance(across.geometry, MultiLineString)
    assert across.geometry.length == pytest.approx(10.0)
    assert across.bboxes == [(175, 0, 180, 0), (-180, 0, -175, 0)]


@pytest.mark.parametrize(
    ("wkt", "area"),
    [
        ("POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))", 0.5),  # bow tie
        ("MULTIPOLYGON (((0 0, 2 0, 2 2, 0 2, 0 0)), ((1 1, 3 1, 3 3, 1 3, 1 1)))", 7.0),
    ],
)
def test_invalid_polygons_are_repaired(wkt: str, area: float) -> None:
    aoi = parse_aoi(wkt)
    assert aoi.geometry.is_valid
    assert aoi.geometry.area == pytest.approx(area)


@pytest.mark.parametrize(
    "bbox", [(-100, 0, 100, 10), (170, -20, -170, -10), (-180, -90, 180, 90), (10, 0, 5, 1)]
)
def test_to_geojson_round_trips(bbox: tuple[float, float, float, float]) -> None:
    aoi = parse_aoi(bbox)
    geojson = aoi.to_geojson()
    assert json.loads(json.dumps(geojson)) == geojson  # plain JSON types
    again = parse_aoi(geojson)
    assert again.bbox == pytest.approx(bbox)
    assert again.geometry.area == pytest.approx(aoi.geometry.area)
    assert aoi.__geo_interface__ == geojson
    exteriors = [shape(p).exterior for p in _polygons(geojson)]
    assert all(ring.is_ccw for ring in exteriors)  # RFC 7946 right-hand rule


def _polygons(geojson: dict[str, object]) -> list[dict[str, object]]:
    if geojson["type"] == "Polygon":
        return [geojson]
    return [{"type": "Polygon", "coordinates": c} for c in geojson["coordinates"]]  # type: ignore[attr-defined]


def test_bbox_of_parts_on_both_sides_wraps_like_rfc7946_fiji() -> None:
    islands = {
        "type": "MultiPolygon",
        "coordinates": [_square(177, -20)["coordinates"], _square(-179, -17)["coordinates"]],
    }
    aoi = parse_aoi(islands)
    assert aoi.crosses_antimeridian
    assert aoi.bbox == (177, -20, -178, -16)
    assert aoi.bboxes == [(177, -20, 178, -19), (-179, -17, -178, -16)]
    assert not parse_aoi(_square(-179, -17)).crosses_antimeridian


def test_wide_lon_min_greater_than_lon_max_wraps_the_long_way() -> None:
    aoi = parse_aoi((10, 0, 5, 1))  # STAC rule: crossing the antimeridian, 355° wide
    assert aoi.crosses_antimeridian
    assert aoi.geometry.area == pytest.approx(355.0)
    assert aoi.bboxes == [(10, 0, 180, 1), (-180, 0, 5, 1)]


@pytest.mark.parametrize(
    ("geometry", "parts", "area"),
    [
        (ACROSS, 2, 200.0),
        (_square(170, 0, 20), 2, 400.0),  # 0-360 longitudes
        (
            {
                "type": "Polygon",
                "coordinates": [[[0, 80], [90, 80], [180, 80], [-90, 80], [0, 80]]],
            },
            1,
            3600.0,  # around the north pole: lat 80..90, all longitudes
        ),
    ],
)
def test_split_antimeridian(geometry: dict[str, object], parts: int, area: float) -> None:
    split = split_antimeridian(geometry)
    assert split.is_valid
    assert len(getattr(split, "geoms", [split])) == parts
    assert split.area == pytest.approx(area)
    lon_min, _, lon_max, _ = split.bounds
    assert lon_min >= -180 and lon_max <= 180


def test_split_antimeridian_leaves_others_unchanged() -> None:
    polygon = shapely.segmentize(box(-100, 0, 100, 10), 90)  # wide, but no edge jumps 180°
    assert split_antimeridian(polygon) is polygon
    # The plain box has an edge from 100 to -100: the short way round, across the antimeridian.
    assert split_antimeridian(box(-100, 0, 100, 10)).area == pytest.approx(1600.0)
    line = split_antimeridian(LineString([(179, 1), (-179, 2)]))
    assert isinstance(line, MultiLineString)
    assert line.bounds == (-180, 1, 180, 2)


@pytest.mark.parametrize(
    ("aoi", "fragment"),
    [
        ((31.9, -103.7, 32.1, -103.5), "look swapped"),
        ("31.9,-103.7,32.1,-103.5", "look swapped"),
        ((100, -95, 120, 10), "latitude -95 outside [-90, 90]"),
        ((-190, 0, 10, 10), "longitude -190 outside [-180, 180]"),
        ((0, 0, 0, 10), "zero area"),
        ((0, 5, 10, 5), "zero area"),
        ((180, 0, -180, 10), "zero area"),
        ((0, 10, 10, 5), "lat_min 10 greater than lat_max 5"),
        ((float("nan"), 0, 1, 1), "NaN or infinite"),
        ("0,0,inf,1", "NaN or infinite"),
        ((1, 2, 3), "needs 4 numbers, got 3"),
        ("1,2,3,4,5", "needs 4 numbers, got 5"),
        ((1, 2, "x", 4), "must be numbers"),
        ((True, 2, 3, 4), "must be numbers"),
        ("POLYGON ((0 0, 1 1", "not valid WKT"),
        ("POLYGON EMPTY", "empty"),
        ("{bad json", "not valid JSON"),
        ("", "empty"),
        ("no such thing", "cannot read AOI 'no such thing'"),
        ("missing.geojson", "does not exist"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}, "Too few points"),
        ({"type": "Polygon", "coordinates": [[0, 0]]}, "invalid GeoJSON Polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "no area"),
        ({"type": "Point", "coordinates": [31.9, -103.7]}, "look swapped"),
        ({"type": "Point", "coordinates": [500000.0, 3500000.0]}, "reproject"),
        ({"type": "Point", "coordinates": [190.0, 10.0]}, "longitude outside [-180, 180]"),
        ({"type": "Point", "coordinates": [float("nan"), 10.0]}, "NaN"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        ({"type": "Feature", "id": "a", "geometry": None}, "Feature 'a' has no geometry"),
        ({"type": "Topology"}, "not a GeoJSON geometry"),
        (
            {
                "type": "GeometryCollection",
                "geometries": [{"type": "Point", "coordinates": [5, 5]}, _square(0, 0)],
            },
            "mixes geometry types",
        ),
        (12, "cannot use a int"),
    ],
)
def test_bad_aoi_names_the_problem_and_the_fix(aoi: object, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_aoi(aoi)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.where == "aoi"
    assert fragment in str(info.value)
    assert info.value.fix


def test_swapped_bbox_fix_gives_the_order_and_the_corrected_bbox() -> None:
    with pytest.raises(QueryError) as info:
        parse_aoi((31.9, -103.7, 32.1, -103.5))
    assert "lon_min,lat_min,lon_max,lat_max" in str(info.value.fix)
    assert "-103.7,31.9,-103.5,32.1" in str(info.value.fix)


def test_unreadable_files(tmp_path) -> None:
    cases = {
        tmp_path / "missing.geojson": "does not exist",
        tmp_path: "is a directory",
        tmp_path / "aoi.shp": "not UTF-8",
        tmp_path / "bad.geojson": "not valid JSON",
        tmp_path / "list.json": "needs 4 numbers",
    }
    (tmp_path / "aoi.shp").write_bytes(b"\x00\x00'\n\xff\xfe\x80")
    (tmp_path / "bad.geojson").write_text('{"type": "Polygon",', encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    for path, fragment in cases.items():
        with pytest.raises(QueryError) as info:
            parse_aoi(path)
        assert info.value.where == "aoi"
        assert fragment in str(info.value)
        assert str(path) in str(info.value)


def test_aoi_refuses_geometry_outside_lon_lat() -> None:
    with pytest.raises(QueryError):
        AOI(box(170, 0, 190, 10))
    with pytest.raises(QueryError):
        AOI(Polygon())
