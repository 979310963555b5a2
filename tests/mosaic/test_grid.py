"""Target grids: defaults from the inputs' footprints, overrides, validation (pure)."""

import math

import numpy as np
import pyproj
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from spectraflow.errors import ConfigError
from spectraflow.mosaic import TargetGrid, target_grid


def utm_grid(lon, lat, epsg, *, res=30.0, shape=(100, 100), offset=0.0):
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    left = math.floor(x / res) * res + offset
    top = math.floor(y / res) * res + offset
    return TargetGrid(f"EPSG:{epsg}", Affine(res, 0, left, 0, -res, top), shape)


def emit_grid(lon, lat, *, deg=0.000542232520256367, shape=(400, 500)):
    return TargetGrid("EPSG:4326", Affine(deg, 0, lon, 0, -deg, lat), shape)


def test_default_crs_is_the_utm_zone_of_the_centre_north_and_south():
    # Two inputs straddling the 13/14 boundary (-102°), centred in zone 14.
    a = utm_grid(-102.2, 32.0, 32613, shape=(50, 50))
    b = utm_grid(-101.0, 32.0, 32614, shape=(50, 50))
    assert target_grid([a, b]).crs.to_epsg() == 32614
    assert target_grid([a]).crs.to_epsg() == 32613
    south = utm_grid(20.5, -25.0, 32734)
    assert target_grid([south]).crs.to_epsg() == 32734


def test_default_resolution_is_the_coarsest_and_bounds_cover_the_union_snapped():
    a = utm_grid(-102.5, 32.0, 32613, res=20.0, offset=10.0)  # corner off the 30-m lattice
    b = utm_grid(-102.4, 32.1, 32613, res=30.0, shape=(80, 120), offset=15.0)
    g = target_grid([a, b])
    assert g.resolution == (30.0, 30.0)
    minx, miny, maxx, maxy = g.bounds
    for v in g.bounds:
        assert v % 30.0 == 0.0  # snapped to whole multiples of the resolution
    for fp in (a, b):
        f = fp.bounds
        assert minx <= f[0] and miny <= f[1] and maxx >= f[2] and maxy >= f[3]
        assert f[0] - minx < 30 or f[2] - maxx > -30  # at most one pixel of slack per side
    union = (min(a.bounds[0], b.bounds[0]), max(a.bounds[2], b.bounds[2]))
    assert union[0] - minx < 30 and maxx - union[1] < 30
    assert g.shape == (round((maxy - miny) / 30), round((maxx - minx) / 30))


def test_inputs_in_another_zone_are_covered_by_the_target_grid():
    a = utm_grid(-102.2, 32.0, 32613)
    b = utm_grid(-101.9, 32.0, 32614)
    g = target_grid([a, b], crs="EPSG:32614")
    box = a.bounds_in("EPSG:32614")
    assert box is not None
    assert g.bounds[0] <= box[0] and g.bounds[2] >= box[2]
    assert g.bounds[1] <= box[1] and g.bounds[3] >= box[3]


def test_emit_degrees_become_metres_at_the_centre_latitude():
    g = target_grid([emit_grid(-103.64, 31.95)])
    assert g.crs.to_epsg() == 32613
    assert g.resolution == (60.0, 60.0)  # 0.000542° of latitude ≈ 60.1 m, rounded to the metre
    # A geographic target keeps the input's degrees.
    geo = target_grid([emit_grid(-103.64, 31.95)], crs="EPSG:4326")
    assert geo.resolution[0] == pytest.approx(0.000542232520256367)


def test_overrides_are_used_as_given():
    a = utm_grid(-102.5, 32.0, 32613)
    box = (1000.0, 2000.0, 1950.0, 2500.0)
    g = target_grid([a], crs="EPSG:32614", resolution=100.0, bounds=box)
    assert g.crs == pyproj.CRS.from_epsg(32614)
    assert g.transform == Affine(100.0, 0, 1000.0, 0, -100.0, 2500.0)
    assert g.shape == (5, 10)  # 950 m of width grows to 10 whole pixels
    assert target_grid([], crs=32633, resolution=10, bounds=(0, 0, 100, 50)).shape == (5, 10)


@pytest.mark.parametrize(
    ("footprints", "kwargs", "where"),
    [
        ([], {}, "footprints"),
        ([], {"crs": "EPSG:32633", "resolution": 10.0}, "footprints"),
        (None, {"bounds": (10.0, 0.0, 5.0, 20.0)}, "bounds"),
        (None, {"bounds": (0.0, 0.0, 5.0)}, "bounds"),
        (None, {"resolution": 0.0}, "resolution"),
        (None, {"resolution": -30.0}, "resolution"),
        (None, {"crs": "EPSG:999999"}, "crs"),
        (None, {"crs": "not a crs"}, "crs"),
        (None, {"crs": "EPSG:32613", "resolution": 0.0003}, "resolution, bounds"),
    ],
)
def test_bad_arguments_fail_with_what_where_and_fix(footprints, kwargs, where):
    fps = [utm_grid(-102.5, 32.0, 32613)] if footprints is None else footprints
    with pytest.raises(ConfigError) as err:
        target_grid(fps, **kwargs)
    assert err.value.where == where and err.value.fix


def test_grids_must_be_north_up_and_non_empty():
    with pytest.raises(ConfigError, match="north-up"):
        TargetGrid("EPSG:32613", Affine(30, 0, 0, 0, 30, 0), (10, 10))
    with pytest.raises(ConfigError, match="north-up"):
        TargetGrid("EPSG:32613", Affine(30, 1, 0, 0, -30, 0), (10, 10))
    with pytest.raises(ConfigError, match="shape"):
        TargetGrid("EPSG:32613", Affine(30, 0, 0, 0, -30, 0), (0, 10))
    with pytest.raises(ConfigError, match="footprints"):
        target_grid(["EPSG:32613"])


def test_geobox_round_trip_and_blocks():
    g = utm_grid(-102.5, 32.0, 32613, shape=(70, 130))
    gb = g.geobox
    assert isinstance(gb, GeoBox) and gb.shape == (70, 130) and gb.affine == g.transform
    assert TargetGrid.from_geobox(gb) == g
    assert target_grid([gb]).resolution == (30.0, 30.0)
    blocks = g.blocks(64)
    assert blocks[0] == ((0, 64), (0, 64)) and blocks[-1] == ((64, 70), (128, 130))
    assert len(blocks) == 2 * 3
    sub = g.window((64, 70), (128, 130))
    assert sub.shape == (6, 2) and sub.transform @ (0, 0) == g.transform @ (128, 64)


def test_window_covering_a_block_in_another_crs():
    src = utm_grid(-102.1, 32.0, 32613, shape=(400, 400))
    dst = utm_grid(-102.0, 31.98, 32614, shape=(40, 50))
    win = src.window_covering(dst, margin=1)
    assert win is not None
    r0, r1, c0, c1 = win
    # Every corner of the block lies inside the window, within the margin.
    tr = pyproj.Transformer.from_crs(32614, 32613, always_xy=True)
    for col, row in ((0, 0), (50, 0), (0, 40), (50, 40)):
        x, y = tr.transform(*(dst.transform @ (col, row)))
        c, r = ~src.transform @ (x, y)
        assert r0 <= r <= r1 and c0 <= c <= c1
    assert (r1 - r0) < 60 and (c1 - c0) < 70  # about the block's size, not the scene's
    far = utm_grid(-99.0, 35.0, 32614, shape=(10, 10))
    assert src.window_covering(far) is None


@pytest.mark.parametrize(
    ("dst_epsg", "src_epsg", "dst_res", "src_res", "src_px"),
    [
        (32614, 32613, 30.0, 30.0, 280),
        (32613, 4326, 30.0, 0.0005, 150),
        (32614, 32613, 100.0, 10.0, 2600),
    ],
)
def test_nearest_picks_are_those_of_the_exact_transform(
    dst_epsg, src_epsg, dst_res, src_res, src_px
):
    from spectraflow.mosaic.resample import source_pixel_coords, source_pixel_index

    to_src = pyproj.Transformer.from_crs(dst_epsg, src_epsg, always_xy=True).transform
    x, y = pyproj.Transformer.from_crs(4326, dst_epsg, always_xy=True).transform(-102.1, 32.0)
    dst = TargetGrid(f"EPSG:{dst_epsg}", Affine(dst_res, 0, x, 0, -dst_res, y), (300, 340))
    sx, sy = to_src(x, y)
    src_t = Affine(src_res, 0, sx - 40 * src_res, 0, -src_res, sy + 30 * src_res)
    src_shape = (src_px, src_px)
    flat = source_pixel_index(dst, src_t, src_shape, to_src=to_src, step=16)
    # Every pixel centre transformed exactly, one by one.
    cols, rows = np.meshgrid(np.arange(340) + 0.5, np.arange(300) + 0.5)
    ex, ey = to_src(x + cols * dst_res, y - rows * dst_res)
    c, r = (
        np.floor((np.asarray(ex) - src_t.c) / src_res),
        np.floor((src_t.f - np.asarray(ey)) / src_res),
    )
    inside = (r >= 0) & (r < src_shape[0]) & (c >= 0) & (c < src_shape[1])
    expected = np.where(inside, r * src_shape[1] + c, -1)
    assert 0.3 < inside.mean() < 1.0  # some pixels fall outside the source
    np.testing.assert_array_equal(flat, expected)
    fc, fr = source_pixel_coords(dst, src_t, to_src=to_src, step=16)
    np.testing.assert_array_equal(np.floor(fc)[inside], c[inside])
    np.testing.assert_allclose(fr, (src_t.f - np.asarray(ey)) / src_res, atol=1e-3)


def test_pixels_of_a_grid_in_the_same_crs_map_without_transforms():
    from spectraflow.mosaic.resample import NearestMap, source_pixel_index

    dst = TargetGrid("EPSG:32613", Affine(30.0, 0, 600_000, 0, -30.0, 3_500_000), (40, 50))
    src_t = Affine(20.0, 0, 599_990, 0, -20.0, 3_500_100)
    flat = source_pixel_index(dst, src_t, (30, 70))
    cols = np.floor((600_000 + (np.arange(50) + 0.5) * 30 - 599_990) / 20)
    rows = np.floor((3_500_100 - (3_500_000 - (np.arange(40) + 0.5) * 30)) / 20)
    ok = (rows[:, None] < 30) & (cols[None, :] < 70)
    np.testing.assert_array_equal(flat, np.where(ok, rows[:, None] * 70 + cols[None, :], -1))
    window = np.arange(30 * 70, dtype=np.float32).reshape(30, 70)
    taken = NearestMap((40, 50), flat, None).take(window, np.nan)
    np.testing.assert_array_equal(taken[ok], flat[ok].astype(np.float32))
    assert np.isnan(taken[~ok]).all() and (~ok).any()
    shifted = NearestMap((3, 4), None, (-1, 68)).take(window, -1.0)
    assert shifted[0].tolist() == [-1.0] * 4 and shifted[1, :2].tolist() == [68.0, 69.0]
    assert shifted[1, 2:].tolist() == [-1.0, -1.0]
