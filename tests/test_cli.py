import json
from pathlib import Path

from typer.testing import CliRunner

import spectraflow
from spectraflow.cli import SensorChoice, _expand_sensors, app
from spectraflow.demo import demo_plan

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


def test_simulate_writes_every_sensor_and_date(tmp_path):
    args = ["simulate", "-o", str(tmp_path), "-s", "emit", "-s", "sentinel2", "--size", "tiny"]
    args += ["--date", "2024-06-12", "--date", "2024-06-27", "--seed", "7", "--region", "10.5,45.2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    items = sorted(tmp_path.glob("*/*.json"))
    items = [p for p in items if json.loads(p.read_text()).get("type") == "Feature"]
    assert len(items) == 4
    collections = sorted(json.loads(p.read_text())["collection"] for p in items)
    assert collections == ["EMITL2ARFL_001"] * 2 + ["sentinel-2-c1-l2a"] * 2
    dates = {json.loads(p.read_text())["properties"]["datetime"][:10] for p in items}
    assert dates == {"2024-06-12", "2024-06-27"}
    for item in items:
        assert item.parent.name in result.stdout
    assert not list(tmp_path.glob(".*partial"))


def test_all_expands_without_repeating_sensors():
    assert _expand_sensors(None) == ["emit", "enmap", "sentinel2"]
    assert _expand_sensors([SensorChoice.enmap, SensorChoice.all]) == ["enmap", "emit", "sentinel2"]


def test_spectraflow_error_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["simulate", "-o", str(tmp_path), "--region", "atlantis"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if "unknown region" in line]
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: unknown region 'atlantis' (where: region). Fix: use a preset"
    )
    assert not any(tmp_path.iterdir())


def test_unknown_provider_is_explained(tmp_path):
    args = ["simulate", "-o", str(tmp_path), "-s", "enmap", "--size", "tiny", "--provider", "usgs"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "no 'usgs' item flavour for enmap" in result.stderr


def test_demo_writes_every_sensor_and_date(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--size", "tiny"])
    assert result.exit_code == 0, result.output
    items = [json.loads(p.read_text()) for p in out.glob("*/*.json") if p.parent.name != "catalog"]
    items = [i for i in items if i.get("type") == "Feature"]
    seen = sorted((i["collection"], i["properties"]["datetime"][:10]) for i in items)
    expected = {
        "emit": "EMITL2ARFL_001",
        "enmap": "ENMAP_HSI_L2A",
        "sentinel2": "sentinel-2-c1-l2a",
    }
    assert seen == sorted((expected[s], d) for s, d in demo_plan())
    assert str(out) in result.stdout.replace("\n", "")
    # every scene was found again through the local STAC API
    assert f"{len(items)} scenes" in result.stdout
    # ... and the map_region flow made a product per model: land cover from every scene,
    # methane from EnMAP only (tiny EMIT scenes have fewer lines than bands, too few for the
    # matched filter's per-column statistics: they are reported, the rest goes on)
    summary = json.loads((out / "run-summary.json").read_text())
    assert set(summary["products"]) == {"lc-any-wavelength", "ch4-mf"}
    assert len(summary["products"]["lc-any-wavelength"]["sources"]) == len(items)
    land_cover = Path(summary["products"]["lc-any-wavelength"]["cog"])
    assert land_cover.is_file() and land_cover.with_suffix(".png").is_file()
    assert "predict ch4-mf: ModelError: too few clear pixels" in " ".join(result.stderr.split())
    # a model whose bands a scene lacks is skipped for it, with the reason, without a task
    for scene in (s for s in summary["scenes"] if s["sensor"] == "sentinel2"):
        assert "BandMismatchError" in scene["skipped"]["ch4-mf"] and scene["error"] is None
        assert [st["model"] for st in scene["stages"] if st["stage"] == "predict"] == [
            "lc-any-wavelength"
        ]


def test_item_flavours_of_one_scene_do_not_replace_each_other(tmp_path):
    for provider in ("earth-search", "planetary-computer"):
        args = ["simulate", "-o", str(tmp_path), "-s", "sentinel2", "--size", "tiny"]
        result = runner.invoke(app, [*args, "--provider", provider])
        assert result.exit_code == 0, result.output
    dirs = sorted(p.name for p in tmp_path.iterdir())
    assert len(dirs) == 2 and dirs[1] == f"{dirs[0]}.planetary-computer"
