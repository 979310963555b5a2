"""``spectraflow search`` and ``spectraflow catalog …`` from the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spectraflow.cli import app
from spectraflow.simulate import simulate_scene

runner = CliRunner(env={"COLUMNS": "400"})
BBOX = "-103.75,31.85,-103.45,32.05"  # the conftest catalog's Permian AOI


def _search(*args: str, env: dict[str, str] | None = None) -> object:
    return runner.invoke(
        app,
        ["search", "--aoi", BBOX, "--start", "2024-06-12", "--end", "2024-06-27", *args],
        env=env,
    )


def test_search_json_lines_over_the_local_api(loaded_catalog):
    result = _search("--provider", loaded_catalog.url, "--json")
    assert result.exit_code == 0, result.output
    scenes = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(scenes) == 6
    assert {s["sensor"] for s in scenes} == {"emit", "enmap", "sentinel2"}
    assert [s["datetime"] for s in scenes] == sorted(s["datetime"] for s in scenes)
    assert all(s["bands"]["wavelength_nm"][0] > 300 for s in scenes)


def test_search_table_by_provider_name(loaded_catalog):
    port = loaded_catalog.url.rsplit(":", 1)[1]
    result = _search(
        "--provider", "local", "--sensor", "enmap", env={"SPECTRAFLOW_STAC_PORT": port}
    )
    assert result.exit_code == 0, result.output
    assert "2 scenes" in result.stdout
    for scene in loaded_catalog.scenes:
        assert (scene.id in result.stdout) == (scene.sensor == "enmap")


def test_search_bad_bbox_is_one_clear_line(loaded_catalog):
    result = runner.invoke(
        app,
        [
            "search",
            "--aoi",
            "31.9,-103.7,32.1,-103.5",
            "--start",
            "2024-06-12",
            "--end",
            "2024-06-27",
        ],
    )
    assert result.exit_code == 2
    assert "aoi" in result.stderr and "lon_min,lat_min,lon_max,lat_max" in result.stderr
    assert "Traceback" not in result.output


def test_catalog_providers_lists_the_registry():
    result = runner.invoke(app, ["catalog", "providers"])
    assert result.exit_code == 0
    for name in ("cmr-stac", "dlr", "earth-search", "planetary-computer", "local"):
        assert name in result.stdout
    assert "EMITL2ARFL_001" in result.stdout and "earthdata" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.2)


@pytest.fixture()
def served_directory(tmp_path: Path):
    """``spectraflow catalog serve`` running as its own process on a free loopback port."""
    data, port = tmp_path / "catalog", _free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "spectraflow"),
            "catalog",
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        line = process.stderr.readline() if process.stderr else ""
        assert f"http://127.0.0.1:{port}" in line, line
        yield data, port
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_catalog_add_reaches_a_running_serve(served_directory, tmp_path):
    data, port = served_directory
    env = {"SPECTRAFLOW_STAC_PORT": str(port)}
    assert "0 scenes" in _search("--provider", "local", env=env).stdout
    scene = simulate_scene("enmap", out=tmp_path / "scenes", date="2024-06-20", region="permian")
    added = runner.invoke(app, ["catalog", "add", str(scene.item_path), "--data", str(data)])
    assert added.exit_code == 0 and "added 1 items" in added.stdout

    def found() -> bool:
        return scene.id in _search("--provider", "local", env=env).stdout

    _wait_for(found)


def test_catalog_add_rejects_a_corrupt_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "Feature", "id": ')
    result = runner.invoke(app, ["catalog", "add", str(bad), "--data", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "bad.json" in result.stderr
    assert not (tmp_path / "c" / "items").exists() or not any((tmp_path / "c" / "items").iterdir())
