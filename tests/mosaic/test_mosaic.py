"""Mosaics of synthetic predictions stores: geo-correctness, CRSs, EMIT, nodata, policies."""

import math
from pathlib import Path

import dask.array as da
import numpy as np
import pyproj
import pytest
from affine import Affine

from spectraflow.errors import ConfigError, CubeError, ProductError
from spectraflow.mosaic import (
    POLICIES,
    TargetGrid,
    mosaic,
    mosaic_layers,
    open_prediction,
    sources_of,
    target_grid,
)

LON, LAT = -102.05, 32.0  # zone 13, 5 km from zone 14
DAY = "2024-06-{:02d}T17:00:00Z"


def utm_transform(stores, lon, lat, epsg, res=30.0):
    x, y = stores.utm_of(lon, lat, epsg)
    return Affine(res, 0, math.floor(x / res) * res, 0, -res, math.floor(y / res) * res)


def source_pixels(grid, src_crs, src_transform, src_shape):
    """Per output pixel: the source pixel (row, col) its centre falls in, and which are safe.

    Safe: inside the source and not within 0.05 px of a source pixel edge, where nearest
    neighbour may round either way.
    """
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    t = grid.transform
    x, y = t.c + cols * t.a, t.f + rows * t.e
    tr = pyproj.Transformer.from_crs(grid.crs, src_crs, always_xy=True)
    sx, sy = tr.transform(x, y)
    inv = ~src_transform
    c, r = inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f
    inside = (r >= 0) & (r < src_shape[0]) & (c >= 0) & (c < src_shape[1])
    far = lambda v: np.abs(v - np.floor(v) - 0.5) < 0.45  # noqa: E731
    ri, ci = (
        np.clip(np.floor(r).astype(int), 0, src_shape[0] - 1),
        np.clip(np.floor(c).astype(int), 0, src_shape[1] - 1),
    )
    outside = (r < -1) | (r > src_shape[0] + 1) | (c < -1) | (c > src_shape[1] + 1)
    return ri, ci, inside & far(r) & far(c), outside


def test_output_is_on_the_requested_grid_and_pixels_come_from_the_right_source_pixel(stores):
    src_t = utm_transform(stores, LON, LAT, 32613)
    classes = stores.patches((90, 110), seed=1, size=3)
    url = stores.classes(classes, crs="EPSG:32613", transform=src_t, datetime=DAY.format(1))
    # Requested: UTM 14 at 25 m, partly beyond the scene (nodata there).
    x, y = stores.utm_of(LON + 0.005, LAT - 0.003, 32614)
    grid = TargetGrid("EPSG:32614", Affine(25.0, 0, x - 800, 0, -25.0, y + 600), (120, 130))
    layers = mosaic_layers([url], grid=grid, block=48)

    assert layers.rio.crs == grid.crs
    assert layers.rio.transform() == grid.transform
    assert layers["class"].shape == grid.shape and layers["class"].dims == ("y", "x")
    np.testing.assert_allclose(layers["x"].values, grid.x_coords())
    out = layers["class"].values
    ri, ci, safe, outside = source_pixels(grid, "EPSG:32613", src_t, classes.shape)
    assert safe.sum() > 5000 and outside.sum() > 500
    np.testing.assert_array_equal(out[safe], classes[ri, ci][safe])
    assert (out[outside] == 0).all()
    assert np.isnan(layers["confidence"].values[outside]).all()
    from_geobox = mosaic_layers([url], grid=grid.geobox, block=48)  # odc-geo grids work too
    assert from_geobox.rio.transform() == grid.transform
    np.testing.assert_array_equal(from_geobox["class"].values, out)
    assert layers["class"].attrs["flag_values"] == [1, 2, 3, 4, 5]
    assert layers["class"].attrs["flag_meanings"].split()[0] == "water"
    assert len(layers["class"].attrs["flag_colors"]) == 5


def test_inputs_in_two_utm_zones_land_in_place_and_the_newest_wins(stores):
    a_t = utm_transform(stores, LON - 0.01, LAT + 0.01, 32613)
    b_t = utm_transform(stores, LON + 0.02, LAT - 0.005, 32614, res=20.0)
    a_cls = stores.patches((80, 80), seed=2, size=4, labels=[1, 2])
    b_cls = stores.patches((90, 100), seed=3, size=4, labels=[4, 5])
    b = stores.classes(b_cls, crs="EPSG:32614", transform=b_t, datetime=DAY.format(9))
    a = stores.classes(a_cls, crs="EPSG:32613", transform=a_t, datetime=DAY.format(2))
    layers = mosaic_layers([b, a], block=64)  # given newest first: order comes from datetimes
    grid = target_grid(
        [
            TargetGrid("EPSG:32613", a_t, a_cls.shape),
            TargetGrid("EPSG:32614", b_t, b_cls.shape),
        ]
    )
    assert grid.resolution == (30.0, 30.0)  # the coarser input
    assert layers.rio.transform() == grid.transform and layers["class"].shape == grid.shape
    assert layers.rio.crs.to_epsg() == grid.crs.to_epsg()
    out = layers["class"].values
    ai, aj, a_safe, _ = source_pixels(grid, "EPSG:32613", a_t, a_cls.shape)
    bi, bj, b_safe, b_out = source_pixels(grid, "EPSG:32614", b_t, b_cls.shape)
    # B (newer, UTM 14 at 20 m) wherever it has data; A (UTM 13 at 30 m) elsewhere.
    np.testing.assert_array_equal(out[b_safe], b_cls[bi, bj][b_safe])
    only_a = a_safe & b_out
    assert only_a.sum() > 1000 and b_safe.sum() > 1000
    np.testing.assert_array_equal(out[only_a], a_cls[ai, aj][only_a])


def test_emit_predictions_are_orthorectified_with_their_glt(stores):
    lines, samples = 50, 40
    raw = stores.patches((lines, samples), seed=4, size=2)
    rows, cols = 60, 70
    r, c = np.mgrid[0:rows, 0:cols]
    glt_y = 1 + (r + c // 7) % lines  # a sheared, repeating lookup like a swath's
    glt_x = 1 + (c * samples) // cols
    glt_x[:6, :12] = 0  # ortho pixels without data
    gt = (-102.10, 0.0005, 0.0, 32.03, 0.0, -0.0005)
    url = stores.emit(raw, glt_x=glt_x, glt_y=glt_y, geotransform=gt, datetime=DAY.format(3))

    ds = open_prediction(url, chunks=32)
    assert ds.rio.crs.to_epsg() == 4326 and ds.rio.transform() == Affine.from_gdal(*gt)
    assert ds["class"].dims == ("y", "x") and ds["class"].shape == (rows, cols)
    assert "glt_x" not in ds and list(ds.attrs["geotransform"]) == list(gt)
    ortho = np.where(glt_x > 0, raw[glt_y - 1, np.maximum(glt_x, 1) - 1], 0)
    np.testing.assert_array_equal(ds["class"].values, ortho)
    assert np.isnan(ds["confidence"].values[:6, :12]).all()

    layers = mosaic_layers([url], block=40)
    # 0.0005° of latitude ≈ 55.4 m, rounded to the metre
    assert layers.rio.crs.to_epsg() == 32613 and layers.rio.resolution() == (55.0, -55.0)
    grid = TargetGrid(layers.rio.crs, layers.rio.transform(), layers["class"].shape)
    oi, oj, safe, outside = source_pixels(grid, "EPSG:4326", Affine.from_gdal(*gt), (rows, cols))
    np.testing.assert_array_equal(layers["class"].values[safe], ortho[oi, oj][safe])
    assert (layers["class"].values[outside] == 0).all()


def test_nodata_never_overwrites_data_and_gaps_stay_nodata(stores):
    a_t = utm_transform(stores, LON - 0.02, LAT, 32613)
    a_cls = np.full((60, 60), 1, dtype=np.uint8)
    a_cls[40:, 40:] = 0  # a gap in the older scene
    b_cls = np.full((60, 60), 4, dtype=np.uint8)
    b_cls[:, :30] = 0  # the newer scene has no data on its left half …
    b_cls[40:, 30:] = 0  # … nor over the older scene's gap
    conf_a, conf_b = np.full((60, 60), 0.6), np.full((60, 60), 0.95)
    a = stores.classes(
        a_cls, crs="EPSG:32613", transform=a_t, datetime=DAY.format(1), confidence=conf_a
    )
    b = stores.classes(
        b_cls, crs="EPSG:32613", transform=a_t, datetime=DAY.format(5), confidence=conf_b
    )
    for policy in ("latest", "best-confidence"):
        layers = mosaic_layers([a, b], policy=policy, block=32).compute()
        cls, conf = layers["class"].values, layers["confidence"].values
        assert cls.shape == (60, 60)
        assert (cls[:40, 30:] == 4).all() and np.allclose(conf[:40, 30:], 0.95)
        assert (cls[:, :30] == 1).all() and np.allclose(conf[:, :30], 0.6)
        assert (cls[40:, 40:] == 0).all() and np.isnan(conf[40:, 40:]).all()
        assert (cls[40:, 30:40] == 1).all()
    # The same scenes reprojected into another zone keep their gaps as no data.
    grid = target_grid([TargetGrid("EPSG:32613", a_t, (60, 60))], crs="EPSG:32614")
    cls = mosaic_layers([a, b], grid=grid, block=32)["class"].values
    assert set(np.unique(cls)) == {0, 1, 4}
    assert (cls == 0).sum() > 200  # the gap (20 × 20 px) and the corners of the rotated scene


def test_policies_on_a_hand_computed_overlap(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    shape = (16, 16)
    c1, c2, c3 = (np.full(shape, v, dtype=np.uint8) for v in (1, 2, 3))
    c1[:4] = 0  # oldest: no data in rows 0-3
    c2[:, :4] = 0  # middle: no data in columns 0-3
    c3[8:] = 0  # newest: no data in rows 8-15
    urls = [  # given newest first: the order comes from the datetimes
        stores.classes(
            c, crs="EPSG:32613", transform=t, datetime=DAY.format(day), confidence=np.full(shape, p)
        )
        for c, day, p in ((c3, 5, 0.7), (c1, 1, 0.9), (c2, 3, 0.6))
    ]
    latest = mosaic_layers(urls, policy="latest", block=8)["class"].values
    assert (latest[:8] == 3).all() and (latest[8:, 4:] == 2).all() and (latest[8:, :4] == 1).all()
    best = mosaic_layers(urls, policy="best-confidence", block=8)
    assert (best["class"].values[4:] == 1).all() and (best["class"].values[:4] == 3).all()
    np.testing.assert_allclose(best["confidence"].values[:4, :4], 0.7)
    mean = mosaic_layers(urls, policy="mean", block=8).compute()
    # Pixel (5, 5): all three scenes; probabilities (chosen = confidence, others share the
    # rest): class 1 (0.9 + 0.1 + 0.075) / 3, class 2 (0.025 + 0.6 + 0.075) / 3,
    # class 3 (0.025 + 0.1 + 0.7) / 3 → class 1 with 0.3583.
    assert mean["class"].values[5, 5] == 1
    assert mean["confidence"].values[5, 5] == pytest.approx(1.075 / 3, rel=1e-5)
    # Pixel (2, 2): only the newest → its class and confidence.
    assert mean["class"].values[2, 2] == 3
    assert mean["confidence"].values[2, 2] == pytest.approx(0.7)
    # Pixel (2, 10): the middle (0.6 for 2) and the newest (0.7 for 3): class 3 with
    # (0.1 + 0.7) / 2 = 0.4 against (0.6 + 0.075) / 2 = 0.3375.
    assert mean["class"].values[2, 10] == 3
    assert mean["confidence"].values[2, 10] == pytest.approx(0.4, rel=1e-5)


def test_continuous_policies_and_bilinear_reprojection(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    v1, v2 = np.full((20, 20), 100.0), np.full((20, 20), 300.0)
    v2[:, :5] = np.nan
    a = stores.continuous(
        v1,
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(1),
        uncertainty=np.full((20, 20), 30.0),
    )
    b = stores.continuous(
        v2,
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(2),
        uncertainty=np.full((20, 20), 40.0),
    )
    mean = mosaic_layers([a, b], policy="mean", block=16).compute()
    assert list(mean.data_vars) == ["ch4_enhancement", "uncertainty"]
    assert mean["ch4_enhancement"].attrs["units"] == "ppm m"
    np.testing.assert_allclose(mean["ch4_enhancement"].values[:, 5:], 200.0)
    np.testing.assert_allclose(mean["uncertainty"].values[:, 5:], 25.0)
    np.testing.assert_allclose(mean["ch4_enhancement"].values[:, :5], 100.0)
    np.testing.assert_allclose(mean["uncertainty"].values[:, :5], 30.0)
    latest = mosaic_layers([a, b], policy="latest", block=16)["ch4_enhancement"].values
    assert (latest[:, 5:] == 300.0).all() and (latest[:, :5] == 100.0).all()
    best = mosaic_layers([a, b], policy="best-confidence", block=16)["ch4_enhancement"].values
    assert (best == 100.0).all()
    # Bilinear into another zone: a constant field stays constant, no data outside stays NaN.
    grid = target_grid([TargetGrid("EPSG:32613", t, (20, 20))], crs="EPSG:32614", resolution=17)
    values = mosaic_layers([a], grid=grid, block=16)["ch4_enhancement"].values
    finite = np.isfinite(values)
    assert 0.5 < finite.mean() < 1.0
    np.testing.assert_allclose(values[finite], 100.0, rtol=1e-6)


def ramp(x, y, x0, y0):
    """A linear field of map coordinates: bilinear interpolation reproduces it exactly."""
    return 0.02 * (x - x0) - 0.013 * (y - y0)


def centres(grid):
    """Map coordinates (x, y) of the pixel centres of ``grid``."""
    t = grid.transform
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    return t.c + cols * t.a, t.f + rows * t.e


def test_bilinear_places_a_linear_ramp_at_the_target_pixel_centres(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    src = TargetGrid("EPSG:32613", t, (40, 50))
    x, y = centres(src)
    url = stores.continuous(
        ramp(x, y, t.c, t.f), crs="EPSG:32613", transform=t, datetime=DAY.format(1)
    )
    targets = [  # the same CRS at 20 m, off the source's lattice; another UTM zone at 25 m
        (TargetGrid("EPSG:32613", Affine(20.0, 0, t.c + 7, 0, -20.0, t.f - 3), (58, 73)), 1e-5),
        (target_grid([src], crs="EPSG:32614", resolution=25.0), 1e-3),
    ]
    for grid, tol in targets:
        out = mosaic_layers([url], grid=grid, block=16)["ch4_enhancement"].values
        gx, gy = centres(grid)
        sx, sy = pyproj.Transformer.from_crs(grid.crs, src.crs, always_xy=True).transform(gx, gy)
        c, r = ~t * (sx, sy)
        # Interior: all four neighbours of the pixel centre are source pixels.
        interior = (c > 0.55) & (c < 50 - 0.55) & (r > 0.55) & (r < 40 - 0.55)
        assert interior.sum() > 0.6 * interior.size
        # A half-pixel shift would be 0.5 px × 30 m × 0.02 = 0.3 off.
        np.testing.assert_allclose(out[interior], ramp(sx, sy, t.c, t.f)[interior], atol=tol)


def test_bilinear_no_data_follows_the_sources_valid_pixels(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    src = TargetGrid("EPSG:32613", t, (24, 24))
    x, y = centres(src)
    values = ramp(x, y, t.c, t.f)
    hole = np.zeros(src.shape, dtype=bool)
    hole[8:16, 8:16] = True
    values[hole] = np.nan
    url = stores.continuous(values, crs="EPSG:32613", transform=t, datetime=DAY.format(1))
    # 10 m on the source's lattice: three by three output pixels per source pixel, no ties.
    fine = TargetGrid("EPSG:32613", Affine(10.0, 0, t.c, 0, -10.0, t.f), (72, 72))
    out = mosaic_layers([url], grid=fine, block=32)
    expected = np.kron(hole, np.ones((3, 3), dtype=bool))
    np.testing.assert_array_equal(np.isnan(out["ch4_enhancement"].values), expected)
    np.testing.assert_array_equal(np.isnan(out["uncertainty"].values), expected)
    # Across zones: no data exactly where the nearest source pixel has none.
    grid = target_grid([src], crs="EPSG:32614", resolution=10.0)
    out = mosaic_layers([url], grid=grid, block=32)["ch4_enhancement"].values
    ri, ci, safe, outside = source_pixels(grid, "EPSG:32613", t, src.shape)
    assert safe.sum() > 2000 and hole[ri, ci][safe].sum() > 300
    np.testing.assert_array_equal(np.isnan(out[safe]), hole[ri, ci][safe])
    assert np.isnan(out[outside]).all()


def test_a_class_store_without_confidences_ranks_as_unknown_confidence(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    shape = (12, 12)
    newer = np.full(shape, 2, dtype=np.uint8)
    newer[:, :6] = 0
    old = stores.classes(
        np.ones(shape),
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(1),
        without=["confidence"],
    )
    new = stores.classes(  # a real confidence layer, unknown (NaN) everywhere
        newer,
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(2),
        confidence=np.full(shape, np.nan),
    )
    other_zone = target_grid([TargetGrid("EPSG:32613", t, shape)], crs="EPSG:32614")
    for policy in ("latest", "best-confidence"):
        layers = mosaic_layers([old, new], policy=policy, block=8).compute()
        cls, conf = layers["class"].values, layers["confidence"].values
        # Both confidences unknown: a tie under best-confidence, which the newer scene wins.
        assert (cls[:, 6:] == 2).all() and (cls[:, :6] == 1).all()
        assert conf.dtype == np.float32 and np.isnan(conf).all()
        reprojected = mosaic_layers([old, new], grid=other_zone, policy=policy, block=8)
        assert (reprojected["class"].values > 0).sum() > 100
        assert np.isnan(reprojected["confidence"].values).all()


def test_the_composite_is_lazy_in_blocks_and_reads_only_overlapping_stores(stores):
    a_t = utm_transform(stores, LON - 0.03, LAT, 32613)
    far_t = a_t @ Affine.translation(200, 0)  # 6 km east, same grid
    a = stores.classes(
        stores.patches((40, 40), seed=5), crs="EPSG:32613", transform=a_t, datetime=DAY.format(1)
    )
    b = stores.classes(
        stores.patches((40, 40), seed=6), crs="EPSG:32613", transform=far_t, datetime=DAY.format(2)
    )
    for policy in POLICIES:  # the hand-written graphs are consistent
        for layer in mosaic_layers([a, b], block=32, policy=policy).data_vars.values():
            layer.data.__dask_graph__().validate()
    layers = mosaic_layers([a, b], block=32)
    data = layers["class"].data
    assert isinstance(data, da.Array) and isinstance(layers["confidence"].data, da.Array)
    assert data.shape == (40, 240)
    assert all(c == 32 for c in data.chunks[1][:-1]) and data.chunks[0] == (32, 8)
    # Corrupt the far store's chunks: blocks away from it never read them.
    for var in ("class", "confidence", "probabilities"):
        for f in (Path(b) / var / "c").rglob("*"):
            if f.is_file():
                f.write_bytes(b"\x00garbage")
    first = data.blocks[0, 0].compute()
    np.testing.assert_array_equal(first, mosaic_layers([a], block=32)["class"].values[:32, :32])
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises on garbage
        data.blocks[0, 6].compute()


def test_the_composite_does_not_depend_on_the_block_size(stores):
    a_t = utm_transform(stores, LON, LAT + 0.01, 32613)
    b_t = utm_transform(stores, LON + 0.01, LAT, 32614, res=20.0)
    a = stores.classes(
        stores.patches((90, 90), seed=8, size=2),
        crs="EPSG:32613",
        transform=a_t,
        datetime=DAY.format(1),
    )
    b = stores.classes(
        stores.patches((90, 90), seed=9, size=2),
        crs="EPSG:32614",
        transform=b_t,
        datetime=DAY.format(2),
    )
    grid = target_grid(
        [TargetGrid("EPSG:32613", a_t, (90, 90))], crs="EPSG:32614", resolution=25.0, bounds=None
    )
    maps = [mosaic_layers([a, b], grid=grid, block=blk).compute() for blk in (17, 64, 512)]
    for other in maps[1:]:
        np.testing.assert_array_equal(other["class"].values, maps[0]["class"].values)
        np.testing.assert_array_equal(other["confidence"].values, maps[0]["confidence"].values)
    assert (maps[0]["class"].values > 0).mean() > 0.5


def test_the_class_layer_alone_never_reads_confidences(stores):
    t = utm_transform(stores, LON, LAT, 32613)
    url = stores.classes(
        stores.patches((40, 40), seed=10),
        crs="EPSG:32614",
        transform=utm_transform(stores, LON, LAT, 32614),
        datetime=DAY.format(1),
    )
    grid = target_grid(
        [], crs="EPSG:32613", resolution=30.0, bounds=(t.c, t.f - 900, t.c + 900, t.f)
    )
    expected = mosaic_layers([url], grid=grid, block=16)["class"].values
    for f in (Path(url) / "confidence" / "c").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    layers = mosaic_layers([url], grid=grid, block=16)
    np.testing.assert_array_equal(layers["class"].values, expected)
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises on garbage
        layers["confidence"].compute()


def test_bad_inputs_fail_with_typed_errors_before_anything_is_written(stores, tmp_path):
    t = utm_transform(stores, LON, LAT, 32613)
    cls = stores.classes(np.ones((8, 8)), crs="EPSG:32613", transform=t, datetime=DAY.format(1))
    ch4 = stores.continuous(np.ones((8, 8)), crs="EPSG:32613", transform=t, datetime=DAY.format(2))
    other = stores.classes(
        np.ones((8, 8)),
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(3),
        labels=[1, 2],
        meanings="plume background",
    )
    out = tmp_path / "out"
    with pytest.raises(ProductError) as err:
        mosaic([cls, ch4], out=out)
    assert err.value.where == ch4 and "class map" in err.value.what and err.value.fix
    with pytest.raises(ProductError, match="classes") as err:
        mosaic([cls, other], out=out)
    assert err.value.where == other
    with pytest.raises(ConfigError) as cerr:
        mosaic([cls], out=out, policy="median")
    assert "latest, best-confidence, mean" in cerr.value.fix
    with pytest.raises(CubeError):
        mosaic([cls, tmp_path / "missing.zarr"], out=out)
    with pytest.raises(ConfigError, match="both"):
        mosaic(
            [cls],
            out=out,
            grid=target_grid([], crs=32613, resolution=30, bounds=(0, 0, 9, 9)),
            crs="EPSG:32613",
        )
    with pytest.raises(ConfigError, match="block"):
        mosaic([cls], out=out, block=0)
    with pytest.raises(ConfigError, match="no predictions"):
        mosaic([], out=out)
    assert not out.exists()


def test_mosaic_writes_a_cog_on_the_target_grid_citing_its_sources(stores, tmp_path):
    import rasterio

    t = utm_transform(stores, LON, LAT, 32613)
    url = stores.classes(
        stores.patches((50, 70), seed=7),
        crs="EPSG:32613",
        transform=t,
        datetime=DAY.format(1),
        attrs={"source_item": "https://user:pw@example.test/items/SCENE_0.json?sig=secret"},
    )
    grid = target_grid([TargetGrid("EPSG:32613", t, (50, 70))], crs="EPSG:32614", resolution=40)
    product = mosaic([url], grid=grid, out=tmp_path / "products", name="lc", block=32)
    sha = stores.model_sha256("lc-test")
    assert mosaic_layers([url], grid=grid).attrs["model_sha256"] == sha
    assert sha[:16] in product.item.read_text()  # the weights hash reaches the lineage
    assert product.cog.exists()
    with rasterio.open(product.cog) as cog:
        assert cog.crs.to_epsg() == 32614 and cog.transform == grid.transform
        assert (cog.height, cog.width) == grid.shape and cog.nodata == 0
        expected = mosaic_layers([url], grid=grid, block=32)["class"].values
        np.testing.assert_array_equal(cog.read(1), expected)
    (ref,) = sources_of([url])
    assert ref.scene_id == "SCENE_0" and ref.datetime.startswith("2024-06-01T17:00:00")
    assert ref.item_href == "https://example.test/items/SCENE_0.json"
    assert "sig=" not in product.item.read_text() and "user:pw" not in product.item.read_text()
