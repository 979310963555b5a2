"""``spectraflow mosaic``: predictions stores onto one grid, written as a map product."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spectraflow.cli._common import progress_bar, reporting_errors, stdout, task_callback

__all__ = ["mosaic"]


class Policy(StrEnum):
    """Which scene a pixel takes where scenes overlap."""

    latest = "latest"
    best_confidence = "best-confidence"
    mean = "mean"


def _bounds(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise typer.BadParameter(f"{value!r} is not 'minx,miny,maxx,maxy' (four numbers)")
    return parts


def mosaic(
    predictions: Annotated[
        list[Path],
        typer.Argument(
            metavar="PREDICTIONS...",
            help="Predictions stores written by 'spectraflow predict' (one model kind).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="DIR", help="Directory of the product folder."),
    ],
    name: Annotated[
        str | None,
        typer.Option(metavar="NAME", show_default="model and date range", help="Product name."),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            metavar="CRS",
            show_default="UTM zone of the area's centre",
            help="Target CRS, e.g. EPSG:32633.",
        ),
    ] = None,
    res: Annotated[
        float | None,
        typer.Option(
            metavar="UNITS",
            min=0.0,
            show_default="the coarsest input resolution",
            help="Pixel size in the target CRS's units (metres for UTM).",
        ),
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(
            metavar="MINX,MINY,MAXX,MAXY",
            show_default="the union of the scenes",
            help="Extent in the target CRS's units.",
        ),
    ] = None,
    policy: Annotated[
        Policy,
        typer.Option(
            help="Where scenes overlap: the newest valid pixel, the most confident one "
            "(lowest uncertainty for continuous maps), or the mean (class maps: mean "
            "probabilities, then the most probable class).",
        ),
    ] = Policy.latest,
    catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Also publish the STAC item into this local catalog "
            "(served by 'spectraflow catalog serve').",
        ),
    ] = None,
    zarr: Annotated[bool, typer.Option("--zarr", help="Also write the product as Zarr.")] = False,
) -> None:
    """Mosaic predictions into one seamless map product: COG, STAC item and quicklook.

    Scenes in any CRS (EMIT orthorectified with its GLT) are reprojected block by block onto
    one grid, nearest-neighbour for classes and bilinear for continuous values, and composited
    where they overlap. The product folder OUT/NAME holds NAME.tif (Cloud-Optimized GeoTIFF
    with overviews, colour table or units), one COG per extra layer (confidence or
    uncertainty), NAME.png (quicklook with legend) and NAME.json (the STAC item). Example:

        spectraflow mosaic predictions/*.lc-any-wavelength.zarr --out products/ --res 30
    """
    extent = _bounds(bounds)
    with reporting_errors():
        from spectraflow.mosaic import mosaic as run_mosaic

        started = time.perf_counter()
        with progress_bar() as bar:
            product = run_mosaic(
                [str(p) for p in predictions],
                out=out,
                name=name,
                policy=policy.value,
                crs=crs,
                resolution=res,
                bounds=extent,
                catalog=catalog,
                zarr=zarr,
                progress=task_callback(bar, "mosaic"),
            )
        table = Table(title="Product", title_justify="left", show_header=False)
        table.add_row("id", product.id)
        for key, path in product.assets.items():
            table.add_row(key, str(path))
        table.add_row("item", str(product.item))
        table.add_row("time", f"{time.perf_counter() - started:.1f} s")
        stdout().print(table)
