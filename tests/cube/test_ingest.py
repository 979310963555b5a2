"""``ingest`` from the library and the CLI: scenes of every sensor into cubes read back right."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from spectraflow.catalog import find_scene
from spectraflow.cli import app
from spectraflow.cube import ingest, open_cube
from spectraflow.errors import AuthError, CubeError
from spectraflow.sensors.read import open_scene
from spectraflow.simulate import simulate_scene


@pytest.mark.parametrize("sensor", ["emit", "enmap", "sentinel2"])
def test_cube_equals_the_reader_and_second_ingest_is_a_no_op(tmp_path, sensor):
    scene = find_scene(simulate_scene(sensor, out=tmp_path / "src", size="tiny").item_path)
    url = ingest(scene, out=tmp_path / "cubes")
    cube, source = open_cube(url), open_scene(scene)
    np.testing.assert_array_equal(cube.reflectance.values, source.reflectance.values)
    np.testing.assert_array_equal(cube.valid.values, source.valid.values)
    np.testing.assert_allclose(cube.wavelength.values, scene.bands.wavelengths)
    assert cube.attrs["scene_id"] == scene.id and cube.attrs["source_item"] == scene.item_href
    assert all(v.startswith("size=") for v in cube.attrs["source_checksums"].values())
    if sensor != "emit":
        assert cube.rio.crs == source.rio.crs and cube.rio.transform() == source.rio.transform()
    marker = max(p.stat().st_mtime_ns for p in (tmp_path / "cubes").rglob("*") if p.is_file())
    assert ingest(scene, out=tmp_path / "cubes") == url
    after = max(p.stat().st_mtime_ns for p in (tmp_path / "cubes").rglob("*") if p.is_file())
    assert after == marker  # nothing rewritten
    # the same scene found through a catalog at another address is the same cube
    moved = scene.model_copy(
        update={"item_href": "http://127.0.0.1:9/collections/c/items/x", "provider": "127.0.0.1:9"}
    )
    assert ingest(moved, out=tmp_path / "cubes") == url
    changed = scene.model_copy(update={"collection": "another-collection"})
    with pytest.raises(CubeError, match="other inputs"):
        ingest(changed, out=tmp_path / "cubes")


def test_protected_inputs_fail_before_any_download(tmp_path, monkeypatch):
    scene = find_scene(simulate_scene("enmap", out=tmp_path, size="tiny").item_path)
    remote = {role: f"https://download.geoservice.dlr.de/ENMAP/{role}.TIF" for role in scene.assets}
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(AuthError, match=r"download\.geoservice\.dlr\.de"):
        ingest(scene.model_copy(update={"assets": remote}), out=tmp_path / "cubes")
    assert not (tmp_path / "cubes").exists()


def test_cli_ingest_prints_a_summary(tmp_path):
    item = simulate_scene("sentinel2", out=tmp_path / "src", size="tiny").item_path
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["ingest", str(item), "--out", str(tmp_path / "cubes"), "--resolution", "10"]
    )
    assert result.exit_code == 0, result.output
    assert "12 (443–2190 nm)" in result.stdout and "EPSG:" in result.stdout
    cube = open_cube(next((tmp_path / "cubes").glob("*.zarr")))
    assert cube.rio.transform().a == 10.0


# A real `spectraflow ingest` process whose region writes are slowed down, so that the test can
# kill it between two regions; nothing else about the ingest is changed.
_SLOW_INGEST = textwrap.dedent(
    """
    import sys, time
    import spectraflow.cube.write as write
    from spectraflow.cli import app

    region = write._write_region
    def slowly(*args):
        done = region(*args)
        time.sleep(2.0)
        return done
    write._write_region = slowly
    app(["ingest", sys.argv[1], "--out", sys.argv[2]])
    """
)


def test_ingest_killed_mid_write_resumes_to_the_clean_cube(tmp_path, kill_process_when):
    item = simulate_scene("enmap", out=tmp_path / "src", size="demo").item_path  # 2 × 2 shards
    scene = find_scene(item)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "DASK_SCHEDULER": "synchronous"}  # one region at a time
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_INGEST, str(item), str(killed)], env=env)
    progress = killed / f"{scene.id}.zarr" / "_spectraflow_progress" / "y_x"
    kill_process_when(proc, lambda: progress.is_dir() and bool(os.listdir(progress)), timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= len(os.listdir(progress)) < 4
    with pytest.raises(CubeError, match="incomplete"):
        open_cube(killed / f"{scene.id}.zarr")

    resumed = open_cube(ingest(scene, out=killed))
    reference = open_cube(ingest(scene, out=clean))
    xr.testing.assert_identical(resumed, reference)
    np.testing.assert_array_equal(resumed.reflectance.values, reference.reflectance.values)
    assert resumed.attrs == reference.attrs
