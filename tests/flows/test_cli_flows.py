"""The flows from the command line: map-region, watch and backfill."""

import json

from typer.testing import CliRunner

from spectraflow.catalog import LocalCatalog
from spectraflow.cli import app

runner = CliRunner()


def _common(region, api_url, out):
    aoi = ",".join(str(v) for v in region.aoi)
    return ["--aoi", aoi, "--model", "lc-any-wavelength", "--sensor", "enmap,sentinel2",
            "--out", str(out), "--provider", api_url, "--runner", "threads"]  # fmt: skip


def test_map_region_and_watch_from_the_shell(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add([*region.good, region.corrupt])
    with source.serve() as api:
        out = tmp_path / "region"
        args = ["map-region", "--start", "2024-06-01", "--end", "2024-06-30"]
        result = runner.invoke(app, [*args, *_common(region, api.url, out)])
        # the corrupt scene fails alone: reported, exit status 1, the product is still made
        assert result.exit_code == 1, result.output
        assert f"{region.corrupt_id} failed" in result.stderr.replace("\n", "")
        summary = json.loads((out / "run-summary.json").read_text())
        assert len(summary["products"]["lc-any-wavelength"]["sources"]) == 4


def test_watch_from_the_shell_does_nothing_when_nothing_is_new(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add(region.good)
    with source.serve() as api:
        watched = tmp_path / "watched"
        args = ["watch", "--lookback-days", "1000", *_common(region, api.url, watched)]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert (watched / "watermark.json").is_file()
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
    assert json.loads((watched / "run-summary.json").read_text())["nothing_new"] is True


def test_backfill_from_the_shell(region, tmp_path):
    source = LocalCatalog(tmp_path / "source")
    source.add(region.good)
    with source.serve() as api:
        args = ["backfill", "--start", "2024-06-09", "--end", "2024-06-12", "--batch-days", "2"]
        result = runner.invoke(app, [*args, *_common(region, api.url, tmp_path / "b")])
    assert result.exit_code == 0, result.output
    products = {line.split()[0] for line in result.stdout.splitlines() if "_latest " in line}
    assert products == {"lc-any-wavelength_20240610_latest", "lc-any-wavelength_20240612_latest"}
