"""The ``spectraflow`` command line.

Each command parses and validates its options, then delegates to the library; errors raised as
:class:`~spectraflow.errors.SpectraflowError` are reported as one red line on stderr with exit
status 2. Heavy modules are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from spectraflow import __version__
from spectraflow.errors import SpectraflowError

__all__ = ["app"]

EXIT_USER_ERROR = 2
"""Exit status of a command that failed with a :class:`SpectraflowError`."""

DEFAULT_DATE = "2024-06-12"
"""Acquisition date simulated when ``--date`` is not given."""

HELP = """\
[bold]spectraflow[/] turns imaging-spectroscopy and multispectral satellite scenes \
(NASA EMIT, DLR EnMAP, Copernicus Sentinel-2) into georeferenced map products.

Data flow: STAC search → [bold]Scene[/] → ingest → [bold]Zarr cube[/] → predict (PyTorch) \
→ [bold]predictions[/] → mosaic → [bold]COG + STAC item[/].

Available now: [cyan]search[/] finds scenes in the real STAC catalogs or your own; \
[cyan]catalog[/] serves a local STAC API; [cyan]simulate[/] writes sensor-faithful synthetic \
scenes with their STAC items and ground truth; [cyan]demo[/] simulates a small region seen by \
all three sensors.
"""


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

app = typer.Typer(
    name="spectraflow",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextmanager
def _reporting_errors() -> Iterator[None]:
    """Turn a :class:`SpectraflowError` into one red line on stderr and exit status 2."""
    try:
        yield
    except SpectraflowError as exc:
        _stderr().print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=EXIT_USER_ERROR) from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"spectraflow {__version__}")
        raise typer.Exit()


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


def _progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
    )


def _task_callback(bar: Progress, description: str) -> Callable[[int, int], None]:
    """Add a task to ``bar``; return the ``progress(done, total)`` callback that advances it."""
    task = bar.add_task(description, total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return progress


def _print_scenes(rows: Sequence[tuple[str, Any]]) -> None:
    """Print a table of ``(date, result)`` rows, results as returned by ``simulate_scene``."""
    table = Table(title="Simulated scenes", title_justify="left")
    table.add_column("sensor", style="cyan", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("STAC item (the scene's files are beside it)", overflow="fold")
    for date, result in rows:
        table.add_row(str(result.sensor), date, str(result.item_path))
    _stdout().print(table)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the spectraflow version and exit.",
        ),
    ] = False,
) -> None:
    """Turn EMIT, EnMAP and Sentinel-2 scenes into georeferenced map products."""


@app.command()
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
    with _reporting_errors():
        from spectraflow.simulate import simulate_scene  # imports the numerical stack

        rows: list[tuple[str, Any]] = []
        with _progress_bar() as bar:
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
                        progress=_task_callback(bar, f"{name} {day}"),
                    )
                    rows.append((day, result))
        _print_scenes(rows)


@app.command()
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
) -> None:
    """Run the demo: one region seen by EMIT, EnMAP and Sentinel-2 on two dates.

    Simulates the scenes with their STAC items and ground truth, serves the items from a local
    STAC API (rustac) and finds them again with a search, as you would on a real catalog.
    """
    from spectraflow.demo import demo_plan, find_demo_scenes, run_demo

    with _reporting_errors():
        with _progress_bar() as bar:
            results = run_demo(out, size=size.value, progress=_task_callback(bar, "demo scenes"))
        dates = [date for _, date in demo_plan()]
        _print_scenes(list(zip(dates, results, strict=True)))
        with _stderr().status("searching the local STAC API…"):
            scenes = find_demo_scenes(out, results)
        _print_search(scenes, as_json=False)
        _stdout().print(f"Demo files are under [bold]{escape(str(out))}[/]")


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
    _stdout().print(table)


@app.command()
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
    with _reporting_errors():
        from spectraflow.catalog import search as run_search

        with _stderr().status("searching…") as status:

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


catalog_app = typer.Typer(
    help="The STAC providers, and a local STAC API (rustac) for simulated scenes and products.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("providers")
def catalog_providers() -> None:
    """List the STAC providers spectraflow knows (built-in and from spectraflow.toml)."""
    with _reporting_errors():
        from spectraflow.catalog import providers

        table = Table(title="STAC providers", title_justify="left")
        for column in ("name", "sensors: collections", "credentials", "default", "url"):
            table.add_column(column, overflow="fold")
        for p in providers().values():
            sensors = "; ".join(f"{s}: {', '.join(c)}" for s, c in p.collections.items())
            table.add_row(p.name, sensors, p.auth or "none", "yes" if p.default else "no", p.url)
        _stdout().print(table)


def _data_dir(data: Path | None) -> Path:
    from spectraflow.config import get_settings

    return data if data is not None else get_settings().data_dir / "catalog"


DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        metavar="DIR",
        file_okay=False,
        show_default="$SPECTRAFLOW_DATA_DIR/catalog",
        help="Catalog directory (collections/ and items/ as written by 'catalog add').",
    ),
]


@catalog_app.command("add")
def catalog_add(
    items: Annotated[
        list[Path],
        typer.Argument(
            metavar="ITEMS...",
            exists=True,
            dir_okay=False,
            help="STAC item JSON files, ItemCollections or .ndjson files (e.g. simulated scenes).",
        ),
    ],
    data: DataOption = None,
) -> None:
    """Add STAC items to the local catalog; a running 'catalog serve' picks them up."""
    with _reporting_errors():
        from spectraflow.catalog import LocalCatalog

        directory = _data_dir(data)
        added = LocalCatalog(directory).add(items)
        _stdout().print(f"added {len(added)} items to [bold]{escape(str(directory))}[/]")


@catalog_app.command("serve")
def catalog_serve(
    data: DataOption = None,
    port: Annotated[
        int | None,
        typer.Option(metavar="PORT", min=0, max=65535, show_default="$SPECTRAFLOW_STAC_PORT"),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            metavar="HOST",
            help="Interface to listen on. Only loopback by default: give 0.0.0.0 to serve "
            "other machines (the catalog has no authentication).",
        ),
    ] = "127.0.0.1",
    backend: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="auto, memory (small catalogs) or duckdb (stac-geoparquet, large catalogs).",
        ),
    ] = "auto",
) -> None:
    """Serve the local catalog as a STAC API (rustac) until interrupted (Ctrl-C).

    Items added with 'spectraflow catalog add' appear within a second. Search it with
    'spectraflow search --provider local' or any STAC client.
    """
    with _reporting_errors():
        from spectraflow.catalog import serve_forever
        from spectraflow.config import get_settings

        if backend not in ("auto", "memory", "duckdb"):
            raise typer.BadParameter("use auto, memory or duckdb", param_hint="--backend")
        directory = _data_dir(data)

        def ready(url: str) -> None:
            _stderr().print(
                f"STAC API of [bold]{escape(str(directory))}[/] at [bold]{url}[/] (Ctrl-C stops)"
            )

        serve_forever(
            directory,
            host=host,
            port=get_settings().stac_port if port is None else port,
            backend=backend,  # type: ignore[arg-type]
            on_ready=ready,
        )


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@app.command()
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
    with _reporting_errors():
        import time

        from dask.callbacks import Callback

        from spectraflow.catalog import find_scene
        from spectraflow.cube import ingest as run_ingest
        from spectraflow.cube import open_cube

        found = find_scene(scene, providers=names or None)
        started = time.perf_counter()
        with _progress_bar() as bar:
            task = bar.add_task(f"ingest {found.sensor} {found.id[:40]}", total=None)

            class _Tasks(Callback):  # dask callbacks → the rich bar
                def _start_state(self, dsk: Any, state: Any) -> None:
                    bar.update(task, total=sum(len(state[k]) for k in ("ready", "waiting")))

                def _posttask(self, *args: Any) -> None:
                    bar.advance(task)

            with _Tasks():
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
        _stdout().print(table)


models_app = typer.Typer(
    help="The models spectraflow can run: their cards (inputs, outputs, weights).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """List the registered models with their task, input and outputs."""
    with _reporting_errors():
        from spectraflow.models import list_models

        table = Table(title="Models", title_justify="left")
        for column in ("name", "task", "input", "outputs", "version"):
            table.add_column(column, overflow="fold")
        for card in list_models():
            contract = card.input
            wanted = (
                "{:.0f}–{:.0f} nm".format(*contract.wavelength_range_nm)
                if contract.wavelength_range_nm
                else f"{len(contract.wavelengths_nm or ())} bands"
            )
            outputs = ", ".join(f"{v.name} ({v.units})" for v in card.output.variables)
            table.add_row(card.name, card.task, wanted, outputs, card.version)
        _stdout().print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name (see 'models list').")],
) -> None:
    """Print a model's whole card: what it needs, what it gives, its weights and references."""
    with _reporting_errors():
        from spectraflow.models import get_card

        card = get_card(name)
        out = _stdout()
        out.print(f"[bold]{card.name}[/] {card.version} — {escape(card.title)}")
        out.print(escape(card.summary.strip()), soft_wrap=True)
        out.print(f"\n[bold]task[/] {card.task}   [bold]licence[/] {escape(card.licence)}")
        out.print("[bold]input[/]")
        for key, value in card.input.model_dump(exclude_none=True).items():
            out.print(f"  {key}: {escape(str(value))}")
        out.print(f"  halo (px): {card.input.halo}")
        out.print("[bold]output[/]")
        for var in card.output.variables:
            out.print(f"  {var.name} ({var.units}): {escape(var.description)}")
        for cls in card.output.classes:
            out.print(f"  class {cls.value} {escape(cls.name)} {cls.colour}")
        weights = card.weights
        out.print(
            "[bold]weights[/] "
            + (f"{weights.file} sha256 {weights.sha256}" if weights else "none (no training)")
        )
        if card.options:
            out.print("[bold]options[/] " + ", ".join(f"{k}={v}" for k, v in card.options.items()))
        for ref in card.references:
            out.print(f"  • {escape(ref)}", soft_wrap=True)
