import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spectraflow
from spectraflow.cli import app
from spectraflow.demo import demo_plan
from spectraflow.errors import SimulationError

runner = CliRunner(env={"COLUMNS": "400"})  # wide enough that table cells do not fold


def test_version_matches_package():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"spectraflow {spectraflow.__version__}"


def test_help_explains_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "simulate" in result.stdout
    assert "demo" in result.stdout
    assert "Zarr" in result.stdout


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "simulate" in result.output


def test_invalid_sensor_is_rejected(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--sensor", "landsat"])
    assert result.exit_code != 0
    assert "landsat" in result.output


def test_invalid_date_is_rejected(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--date", "2024-13-40"])
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output


def test_out_is_required():
    result = runner.invoke(app, ["simulate"])
    assert result.exit_code != 0
    assert "--out" in result.output


# The tests below check how the CLI drives `simulate_scene` and reports its outcome; they swap
# in a stand-in for `spectraflow.simulate` so that they do not depend on the simulator.


@pytest.fixture
def fake_simulate(monkeypatch):
    calls: list[dict] = []
    failure: list[Exception] = []

    def simulate_scene(
        sensor, *, out, size="demo", region=None, date=None, seed=0, provider=None, progress=None
    ):
        if failure:
            raise failure[0]
        calls.append(
            dict(
                sensor=sensor,
                out=out,
                size=size,
                region=region,
                date=date,
                seed=seed,
                provider=provider,
            )
        )
        if progress is not None:
            progress(0, 2)
            progress(2, 2)
        scene_id = f"{sensor}-{date}"
        directory = Path(out) / scene_id
        return types.SimpleNamespace(
            sensor=sensor,
            id=scene_id,
            directory=directory,
            item_path=directory / "item.json",
            truth={},
        )

    module = types.ModuleType("spectraflow.simulate")
    module.simulate_scene = simulate_scene  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spectraflow.simulate", module)
    return types.SimpleNamespace(calls=calls, failure=failure)


def test_simulate_runs_every_sensor_and_date(fake_simulate, tmp_path):
    args = [
        "simulate",
        "-o",
        str(tmp_path),
        "-s",
        "emit",
        "-s",
        "sentinel2",
        "--size",
        "tiny",
        "--date",
        "2024-06-12",
        "--date",
        "2024-06-27",
        "--seed",
        "7",
        "--region",
        "10.5,45.2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [(c["sensor"], c["date"]) for c in fake_simulate.calls] == [
        ("emit", "2024-06-12"),
        ("emit", "2024-06-27"),
        ("sentinel2", "2024-06-12"),
        ("sentinel2", "2024-06-27"),
    ]
    first = fake_simulate.calls[0]
    assert first["out"] == tmp_path
    assert (first["size"], first["seed"], first["region"], first["provider"]) == (
        "tiny",
        7,
        "10.5,45.2",
        None,
    )
    assert "emit-2024-06-27" in result.stdout
    assert "sentinel2-2024-06-12" in result.stdout


def test_simulate_defaults_to_all_sensors_and_one_date(fake_simulate, tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [c["sensor"] for c in fake_simulate.calls] == ["emit", "enmap", "sentinel2"]
    assert len({c["date"] for c in fake_simulate.calls}) == 1
    assert {c["size"] for c in fake_simulate.calls} == {"demo"}


def test_all_does_not_repeat_sensors(fake_simulate, tmp_path):
    result = runner.invoke(app, ["simulate", "-o", str(tmp_path), "-s", "enmap", "-s", "all"])
    assert result.exit_code == 0, result.output
    assert [c["sensor"] for c in fake_simulate.calls] == ["enmap", "emit", "sentinel2"]


def test_spectraflow_error_is_one_line_and_exit_2(fake_simulate, tmp_path):
    fake_simulate.failure.append(
        SimulationError("unknown region 'atlantis'", where="--region", fix="use a preset name")
    )
    result = runner.invoke(app, ["simulate", "-o", str(tmp_path), "--region", "atlantis"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if "unknown region" in line]
    assert lines == ["error: unknown region 'atlantis' (where: --region). Fix: use a preset name"]


def test_demo_delegates_to_run_demo(fake_simulate, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [(c["sensor"], c["date"]) for c in fake_simulate.calls] == demo_plan()
    assert {c["out"] for c in fake_simulate.calls} == {out}
    assert {(c["size"], c["seed"], c["region"]) for c in fake_simulate.calls} == {("demo", 0, None)}
