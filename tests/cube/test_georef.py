from __future__ import annotations

import pyproj
import pytest
from affine import Affine

from spectraflow.cube.georef import (
    cf_grid_mapping_attrs,
    crs_code,
    geozarr_attrs,
    to_crs,
    transform_from_gdal,
    transform_from_geozarr,
)

T = Affine(30.0, 0.0, 500_000.123456789, 0.0, -30.0, 4_000_020.987654321)


def test_cf_attrs_carry_crs_and_exact_transform() -> None:
    attrs = cf_grid_mapping_attrs("EPSG:32613", T)
    assert pyproj.CRS.from_wkt(attrs["crs_wkt"]) == pyproj.CRS.from_epsg(32613)
    assert attrs["spatial_ref"] == attrs["crs_wkt"]
    assert attrs["grid_mapping_name"] == "transverse_mercator"
    gt = [float(v) for v in attrs["GeoTransform"].split()]
    assert Affine.from_gdal(*gt) == T  # every digit survives the text form


def test_geozarr_attrs() -> None:
    attrs = geozarr_attrs("EPSG:32613", T, dims=("y", "x"), shape=(100, 90))
    assert attrs["proj:code"] == "EPSG:32613"
    assert pyproj.CRS.from_wkt(attrs["proj:wkt2"]) == pyproj.CRS.from_epsg(32613)
    assert attrs["spatial:dimensions"] == ["y", "x"]
    assert attrs["spatial:transform"] == [30.0, 0.0, T.c, 0.0, -30.0, T.f]
    assert transform_from_geozarr(attrs) == T
    assert attrs["spatial:shape"] == [100, 90]
    assert attrs["spatial:bbox"] == [T.c, T.f - 3000.0, T.c + 2700.0, T.f]
    names = {c["name"] for c in attrs["zarr_conventions"]}
    assert names == {"proj:", "spatial:"}


def test_crs_without_code_gets_wkt_only() -> None:
    custom = pyproj.CRS.from_proj4(
        "+proj=tmerc +lat_0=10 +lon_0=3.3 +k=1 +x_0=7 +y_0=0 +ellps=WGS84"
    )
    assert crs_code(custom) is None
    attrs = geozarr_attrs(custom, T, dims=("y", "x"), shape=(2, 2))
    assert "proj:code" not in attrs
    assert pyproj.CRS.from_wkt(attrs["proj:wkt2"]).equals(custom)


def test_crs_inputs_and_gdal_order() -> None:
    rasterio_crs = pytest.importorskip("rasterio.crs").CRS.from_epsg(4326)
    assert to_crs(rasterio_crs) == pyproj.CRS.from_epsg(4326)
    assert to_crs(4326) == to_crs("EPSG:4326")
    assert transform_from_gdal([-103.75, 0.0005, 0.0, 32.05, 0.0, -0.0005]) == Affine(
        0.0005, 0.0, -103.75, 0.0, -0.0005, 32.05
    )
    with pytest.raises(ValueError, match="6 numbers"):
        transform_from_gdal([1.0, 2.0])
