"""predict_cube: learned models and the matched filter over real cubes, written as stores."""

import subprocess
import sys

import numpy as np
import pytest
import zarr

from spectraflow.catalog import find_scene
from spectraflow.cube import ingest, open_cube
from spectraflow.cube.store import PROGRESS_DIR
from spectraflow.errors import BandMismatchError, CubeError
from spectraflow.inference.predict import predict_cube
from spectraflow.simulate import simulate_scene


@pytest.fixture(scope="module")
def enmap_cube(tmp_path_factory):
    """A demo-size EnMAP cube (320 × 320: several 128-px chunks)."""
    root = tmp_path_factory.mktemp("enmap")
    sim = simulate_scene("enmap", out=root, size="demo", seed=4)
    return ingest(find_scene(sim.item_path), out=root / "cubes")


@pytest.mark.parametrize("tile", [384, 1000])  # cores of 256 pixels, and the whole scene
def test_class_maps_do_not_depend_on_the_tiling(enmap_cube, tmp_path, tile):
    def run(tile):
        url = predict_cube(
            enmap_cube, "lc-any-wavelength", out=tmp_path / f"t{tile}.zarr", tile=tile,
            device="cpu",
        )  # fmt: skip
        return open_cube(url)

    a, b = run(256), run(tile)  # 128-pixel cores with a 64-pixel halo vs bigger tiles
    assert (a["class"].values == b["class"].values).mean() >= 0.999
    # Global attention sees the whole tile: confidences move a little with the tile's extent
    # (measured: mean 0.001), classes almost never.
    assert np.nanmean(np.abs(a["confidence"].values - b["confidence"].values)) < 0.005
    assert np.array_equal(np.isnan(a["confidence"].values), np.isnan(b["confidence"].values))


def test_regions_and_batches_do_not_change_the_predictions(enmap_cube, tmp_path):
    a = open_cube(predict_cube(enmap_cube, "lc-any-wavelength", out=tmp_path / "a.zarr"))
    b = open_cube(
        predict_cube(enmap_cube, "lc-any-wavelength", out=tmp_path / "b.zarr", region=128, batch=1)
    )
    np.testing.assert_allclose(a["probabilities"].values, b["probabilities"].values, atol=1e-5)
    assert a.attrs["blend_margin"] == 32 and a.attrs["tile_core"] == 128
    # each region writes whole shards of its own (a resumed run redoes only missing regions)
    shards = zarr.open_array(tmp_path / "b.zarr" / "probabilities", mode="r").shards
    assert shards == (9, 128, 128)


def test_a_killed_prediction_resumes_to_the_uninterrupted_result(
    enmap_cube, tmp_path, kill_process_when
):
    def predict(out):
        return predict_cube(
            enmap_cube, "lc-any-wavelength", out=out, region=128, batch=1, device="cpu"
        )

    url = tmp_path / "killed.zarr"
    script = (
        "import sys; from spectraflow.inference import predict_cube; "
        "predict_cube(sys.argv[1], 'lc-any-wavelength', out=sys.argv[2], region=128, "
        "batch=1, device='cpu')"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(enmap_cube), str(url)])
    progress = url / PROGRESS_DIR

    def regions_written():
        return sum(p.is_file() for p in progress.rglob("*")) if progress.is_dir() else 0

    kill_process_when(proc, lambda: regions_written() >= 2, timeout=120)
    assert 2 <= regions_written() < 9  # 3 × 3 regions of 128 pixels
    with pytest.raises(CubeError, match="incomplete"):
        open_cube(url)
    resumed = open_cube(predict(url))
    reference = open_cube(predict(tmp_path / "reference.zarr"))
    for name in ("probabilities", "class", "confidence"):
        np.testing.assert_array_equal(resumed[name].values, reference[name].values)


def test_predictions_are_on_the_cube_grid_with_nodata(enmap_cube, tmp_path):
    cube = open_cube(enmap_cube)
    pred = open_cube(predict_cube(enmap_cube, "lc-any-wavelength", out=tmp_path / "p.zarr"))
    assert pred.rio.crs == cube.rio.crs
    assert pred.rio.transform() == cube.rio.transform()
    assert pred["class"].shape == cube["reflectance"].shape[1:]
    classes = pred["class"].values
    valid = cube["valid"].values.astype(bool)
    assert set(np.unique(classes[valid])) <= set(range(1, 10))
    assert (classes[~valid] == 0).all() and np.isnan(pred["confidence"].values[~valid]).all()
    probs = pred["probabilities"].values[:, valid]
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert pred.attrs["model"] == "lc-any-wavelength"


def test_the_matched_filter_writes_its_retrieval_and_a_rerun_is_a_no_op(tmp_path):
    sim = simulate_scene("emit", out=tmp_path / "src", size="demo")
    cube_url = ingest(find_scene(sim.item_path), out=tmp_path / "cubes")
    url = predict_cube(cube_url, "ch4-mf", out=tmp_path / "ch4.zarr", device="cpu")
    pred = open_cube(url)
    assert {"ch4_enhancement", "uncertainty", "glt_x"} <= set(pred.variables)
    assert np.isfinite(pred["ch4_enhancement"].values).any()
    marker = sorted(p.stat().st_mtime_ns for p in (tmp_path / "ch4.zarr").rglob("*"))
    assert predict_cube(cube_url, "ch4-mf", out=tmp_path / "ch4.zarr", device="cpu") == url
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "ch4.zarr").rglob("*")) == marker


def test_missing_bands_fail_before_anything_is_written(tmp_path):
    sim = simulate_scene("sentinel2", out=tmp_path / "src", size="tiny")
    cube_url = ingest(find_scene(sim.item_path), out=tmp_path / "cubes")
    with pytest.raises(BandMismatchError):
        predict_cube(cube_url, "ch4-mf", out=tmp_path / "ch4.zarr", device="cpu")
    assert not (tmp_path / "ch4.zarr").exists()


def test_cli_predict_writes_a_store_and_reports_it(enmap_cube, tmp_path):
    from typer.testing import CliRunner

    from spectraflow.cli import app

    out = tmp_path / "predictions"
    args = ["predict", enmap_cube, "--model", "lc-any-wavelength", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (store,) = out.iterdir()
    assert store.name.endswith(".lc-any-wavelength.zarr") and "Predictions" in result.output
    assert open_cube(store)["class"].dtype == np.uint8
    missing = CliRunner().invoke(
        app, ["predict", str(tmp_path / "nope"), "-m", "ch4-mf", "-o", str(out)]
    )
    assert missing.exit_code == 2
