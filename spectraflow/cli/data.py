"""Data commands: simulate scenes, run the demo, search catalogs and ingest scenes into cubes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spectraflow.cli._common import (
    dask_task_bar,
    progress_bar,
    reporting_errors,
    stderr,
    stdout,
    task_callback,
)
from spectraflow.cli.flows import RunnerOption, flow_progress, print_failures

__all__ = ["SensorChoice", "SizeChoice", "demo", "ingest", "search", "simulate"]

DEFAULT_DATE = "2024-06-12"
"""Acquisition date simulated when ``--date`` is not given."""


class SensorChoice(StrEnum):
    """Values of ``--sensor``."""

    emit = "emit"
    enmap = "enmap"
    sentinel2 = "sentinel2"
    all = "all"


class SizeChoice(StrEnum):
    """Values of ``--size``: scene size presets of the simulator."""

    tiny = "tiny"
    demo = "demo"
    full = "full"


ALL_SENSORS: tuple[str, ...] = (SensorChoice.emit, SensorChoice.enmap, SensorChoice.sentinel2)


def _check_dates(values: list[str] | None) -> list[str] | None:
    """Reject dates that are not ISO 8601 calendar dates (``YYYY-MM-DD``)."""
    for value in values or []:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not an ISO date; use YYYY-MM-DD, e.g. {DEFAULT_DATE}"
            ) from None
    return values


def _expand_sensors(choices: Sequence[SensorChoice] | None) -> list[str]:
    """Expand ``all``, drop duplicates and keep the order given."""
    sensors: list[str] = []
    for choice in choices or [SensorChoice.all]:
        for sensor in ALL_SENSORS if choice is SensorChoice.all else (str(choice),):
            if sensor not in sensors:
                sensors.append(str(sensor))
    return sensors


def _print_scenes(rows: Sequence[tuple[str, Any]]) -> None:
    """Print a table of ``(date, result)`` rows, results as returned by ``simulate_scene``."""
    table = Table(title="Simulated scenes", title_justify="left")
    table.add_column("sensor", style="cyan", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("STAC item (the scene's files are beside it)", overflow="fold")
    for date, result in rows:
        table.add_row(str(result.sensor), date, str(result.item_path))
    stdout().print(table)


def simulate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            file_okay=False,
            help="Output directory; created if missing.",
        ),
    ],
    sensor: Annotated[
        list[SensorChoice] | None,
        typer.Option(
            "--sensor",
            "-s",
            metavar="SENSOR",
            case_sensitive=False,
            show_default="all",
            help="Sensor to simulate: emit, enmap, sentinel2 or all; repeat for several.",
        ),
    ] = None,
    size: Annotated[
        SizeChoice,
        typer.Option(
            metavar="SIZE", case_sensitive=False, help="Scene size preset: tiny, demo or full."
        ),
    ] = SizeChoice.demo,
    region: Annotated[
        str | None,
        typer.Option(
            metavar="NAME|LON,LAT",
            help='Region: a preset name or a centre as "lon,lat" (degrees, WGS 84). '
            "Default: the simulator's default region.",
        ),
    ] = None,
    date: Annotated[
        list[str] | None,
        typer.Option(
            metavar="YYYY-MM-DD",
            callback=_check_dates,
            show_default=DEFAULT_DATE,
            help="Acquisition date (YYYY-MM-DD); repeat for a time series.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(metavar="INT", help="Random seed; the same seed writes the same data.")
    ] = 0,
    provider: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Flavour of the STAC items written (which provider's item layout to mimic): "
            "cmr-stac (emit); dlr (enmap); earth-search, earth-search-l2a or "
            "planetary-computer (sentinel2). Default: the first listed for the sensor.",
        ),
    ] = None,
) -> None:
    """Simulate sensor-faithful synthetic scenes with their STAC items and ground truth.

    One scene is written per sensor and date.
    """
    sensors = _expand_sensors(sensor)
    dates = date or [DEFAULT_DATE]
    with reporting_errors():
        from spectraflow.simulate import simulate_scene  # imports the numerical stack

        rows: list[tuple[str, Any]] = []
        with progress_bar() as bar:
            for name in sensors:
                for day in dates:
                    result = simulate_scene(
                        name,
                        out=out,
                        size=size.value,
                        region=region,
                        date=day,
                        seed=seed,
                        provider=provider,
                        progress=task_callback(bar, f"{name} {day}"),
                    )
                    rows.append((day, result))
        _print_scenes(rows)


def demo(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            file_okay=False,
            help="Output directory; created if missing.",
        ),
    ] = Path("demo-output"),
    size: Annotated[
        SizeChoice,
        typer.Option(
            metavar="SIZE",
            case_sensitive=False,
            help="Scene size preset: demo (a few hundred pixels a side) or tiny (seconds).",
        ),
    ] = SizeChoice.demo,
    runner: RunnerOption = None,
) -> None:
    """Run the demo: one region seen by EMIT, EnMAP and Sentinel-2 on two dates, to products.

    Simulates the scenes with their STAC items and ground truth, serves the items from a local
    STAC API (rustac) and finds them again with a search, as you would on a real catalog. Then
    runs the map_region flow (Prefect, on a dask LocalCluster): ingests the scenes into cubes,
    predicts land cover (all sensors, lc-any-wavelength) and methane (EMIT, ch4-mf), and
    mosaics each into a product: OUT/products/<name>/ holds the COG, the STAC item and a
    quicklook PNG; the items are also in OUT/catalog-products.
    """
    from spectraflow.demo import demo_plan, find_demo_scenes, make_demo_products, run_demo

    with reporting_errors():
        with progress_bar() as bar:
            results = run_demo(out, size=size.value, progress=task_callback(bar, "demo scenes"))
        dates = [date for _, date in demo_plan()]
        _print_scenes(list(zip(dates, results, strict=True)))
        with stderr().status("searching the local STAC API…"):
            scenes = find_demo_scenes(out, results)
        _print_search(scenes, as_json=False)
        stderr().print("map_region flow: ingest, predict, mosaic…")
        with flow_progress():
            summary = make_demo_products(out, runner=runner)
        _print_run(summary)
        stdout().print(f"Demo files are under [bold]{escape(str(out))}[/]")


def _print_run(summary: Any) -> None:
    """Print a flow run's products, and what failed and why."""
    table = Table(title="Products", title_justify="left")
    table.add_column("product", style="cyan", overflow="fold")
    table.add_column("quicklook", overflow="fold")
    table.add_column("COG", overflow="fold")
    for product in summary.products.values():
        table.add_row(product.id, str(product.quicklook), product.cog)
    stdout().print(table)
    print_failures(summary)


def _print_search(scenes: Sequence[Any], *, as_json: bool) -> None:
    """Print found scenes as a table, or as one JSON object per line."""
    if as_json:
        for scene in scenes:
            typer.echo(scene.model_dump_json())
        return
    table = Table(title=f"{len(scenes)} scenes", title_justify="left")
    table.add_column("id", overflow="fold")
    table.add_column("sensor", style="cyan", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("cloud %", justify="right", no_wrap=True)
    table.add_column("provider", no_wrap=True)
    for scene in scenes:
        cloud = "–" if scene.cloud_cover is None else f"{scene.cloud_cover:.0f}"
        when = scene.datetime.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(scene.id, scene.sensor, when, cloud, scene.provider)
    stdout().print(table)


def search(
    aoi: Annotated[
        str,
        typer.Option(
            metavar="AOI",
            help="Area of interest in lon/lat: 'lon_min,lat_min,lon_max,lat_max' "
            "(lon_min > lon_max crosses the antimeridian), a GeoJSON file, or WKT.",
        ),
    ],
    start: Annotated[
        str, typer.Option(metavar="DATE", help="Start of the time range (ISO date or time, UTC).")
    ],
    end: Annotated[
        str,
        typer.Option(metavar="DATE", help="End of the time range; a date includes the whole day."),
    ],
    sensor: Annotated[
        str,
        typer.Option(
            "--sensor", "-s", metavar="LIST", help="Sensors, comma-separated: emit,enmap,sentinel2."
        ),
    ] = "emit,enmap,sentinel2",
    max_cloud: Annotated[
        float | None,
        typer.Option(
            metavar="PERCENT", min=0, max=100, help="Keep scenes with at most this cloud cover."
        ),
    ] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            "-p",
            metavar="NAME|URL",
            help="Provider to search (repeat or comma-separate): a name from "
            "'spectraflow catalog providers' or any STAC API URL. Default: the default providers.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Return at most N scenes (the earliest).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON Scene per line instead of a table.")
    ] = False,
) -> None:
    """Find EMIT, EnMAP and Sentinel-2 scenes over an area and time range.

    Searches the real STAC catalogs (NASA CMR-STAC, DLR, Earth Search, Planetary Computer) or
    your own STAC API, hides each provider's quirks and prints one row per acquisition, sorted
    by time. Example:

        spectraflow search --aoi -104,31.8,-103.4,32.2 --start 2024-06-01 --end 2024-06-30
    """
    names = [p.strip() for entry in provider or [] for p in entry.split(",") if p.strip()]
    with reporting_errors():
        from spectraflow.catalog import search as run_search

        with stderr().status("searching…") as status:

            def report(name: str, count: int) -> None:
                status.update(f"searching {name}: {count} items")

            scenes = run_search(
                aoi,
                start,
                end,
                sensor,
                max_cloud=max_cloud,
                providers=names or None,
                limit=limit,
                progress=report,
            )
        _print_search(scenes, as_json=as_json)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ingest(
    scene: Annotated[
        str,
        typer.Argument(
            metavar="ITEM_OR_SCENE_ID",
            help="A STAC item file or URL, or a scene id to look up at the providers.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", file_okay=False, help="Where cubes are written."
        ),
    ],
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", "-p", metavar="NAME|URL", help="Where to look up a scene id."),
    ] = None,
    resolution: Annotated[
        int, typer.Option(metavar="M", help="Sentinel-2 grid in metres: 10 or 20.")
    ] = 20,
    int16: Annotated[
        bool, typer.Option("--int16", help="Store reflectance as int16 × 1e-4 (half the size).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a cube written with other inputs.")
    ] = False,
) -> None:
    """Write one scene into a chunked, georeferenced Zarr v3 cube (<out>/<scene id>.zarr).

    Running it again with the same parameters does nothing; an interrupted ingest resumes.
    """
    names = [p.strip() for entry in provider or [] for p in entry.split(",") if p.strip()]
    with reporting_errors():
        import time

        from spectraflow.catalog import find_scene
        from spectraflow.cube import ingest as run_ingest
        from spectraflow.cube import open_cube

        found = find_scene(scene, providers=names or None)
        started = time.perf_counter()
        with dask_task_bar(f"ingest {found.sensor} {found.id[:40]}"):
            url = run_ingest(
                found,
                out=out,
                resolution=resolution,
                encoding_dtype="int16" if int16 else "float32",
                overwrite=overwrite,
            )
        elapsed = time.perf_counter() - started
        cube = open_cube(url)
        table = Table(title="Cube", title_justify="left", show_header=False)
        table.add_row("url", url)
        table.add_row("sensor / scene", f"{found.sensor} / {found.id}")
        table.add_row(
            "bands",
            f"{cube.sizes['band']} ({float(cube.wavelength.min()):.0f}–"
            f"{float(cube.wavelength.max()):.0f} nm)",
        )
        grid = " × ".join(f"{cube.sizes[d]} {d}" for d in cube.reflectance.dims[1:])
        crs = cube.rio.crs or "sensor geometry (GLT to EPSG:4326)"
        table.add_row("grid", f"{grid}, {crs}")
        table.add_row("size on disk", f"{_dir_size(Path(url)) / 2**20:.1f} MiB")
        table.add_row("time", f"{elapsed:.1f} s")
        stdout().print(table)
