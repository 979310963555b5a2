"""The ``spectraflow`` command line.

Each command parses and validates its options, then delegates to the library; errors raised as
:class:`~spectraflow.errors.SpectraflowError` are reported as one red line on stderr with exit
status 2. Heavy modules are imported inside the commands so that ``--help`` stays fast.

Modules: :mod:`._common` (consoles, error reporting, progress bars, shared options),
:mod:`.data` (simulate, demo, search, ingest), :mod:`.predict`, :mod:`.mosaic`,
:mod:`.catalog` (the ``catalog`` group), :mod:`.training` (train, evaluate), :mod:`.flows`
(map-region, watch, backfill) and :mod:`.models` (the ``models`` group).
"""

from __future__ import annotations

from typing import Annotated

import typer

from spectraflow import __version__
from spectraflow.cli import data, flows, mosaic, predict, training
from spectraflow.cli.catalog import catalog_app
from spectraflow.cli.data import SensorChoice as SensorChoice
from spectraflow.cli.data import _expand_sensors as _expand_sensors
from spectraflow.cli.models import models_app

__all__ = ["app"]

HELP = """\
[bold]spectraflow[/] turns imaging-spectroscopy and multispectral satellite scenes \
(NASA EMIT, DLR EnMAP, Copernicus Sentinel-2) into georeferenced map products.

Data flow: STAC search → [bold]Scene[/] → ingest → [bold]Zarr cube[/] → predict (PyTorch) \
→ [bold]predictions[/] → mosaic → [bold]COG + STAC item[/].

Available now: [cyan]search[/] finds scenes in the real STAC catalogs or your own; \
[cyan]catalog[/] serves a local STAC API; [cyan]simulate[/] writes sensor-faithful synthetic \
scenes with their STAC items and ground truth; [cyan]demo[/] simulates a small region seen by \
all three sensors; [cyan]ingest[/] writes a scene into a Zarr cube; [cyan]predict[/] runs a \
model over a cube; [cyan]mosaic[/] turns predictions into a map product (COG, STAC item, \
quicklook); [cyan]models[/] lists the models; [cyan]train[/] and [cyan]evaluate[/] fit a \
learned model on labelled cubes and score it; [cyan]map-region[/], [cyan]watch[/] and \
[cyan]backfill[/] run the whole pipeline as Prefect flows, on a laptop or a Dask cluster.
"""

app = typer.Typer(
    name="spectraflow",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"spectraflow {__version__}")
        raise typer.Exit()


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


# Typer lists commands in the order they are added, then the groups.
for _command in (
    data.simulate,
    data.demo,
    data.search,
    data.ingest,
    predict.predict,
    mosaic.mosaic,
    training.train,
    training.evaluate,
    flows.map_region,
    flows.watch,
    flows.backfill,
):
    app.command()(_command)
app.add_typer(catalog_app, name="catalog")
app.add_typer(models_app, name="models")
