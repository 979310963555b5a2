"""``spectraflow predict``: run a model over a cube and write a predictions store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spectraflow.cli._common import DeviceOption, dask_task_bar, reporting_errors, stdout

__all__ = ["predict"]


def predict(
    cube: Annotated[
        Path,
        typer.Argument(metavar="CUBE", help="A cube directory written by 'spectraflow ingest'."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="A registered model (see 'spectraflow models list') or a card file (.toml).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Directory of the predictions store (<cube>.<model>.zarr).",
        ),
    ],
    tile: Annotated[
        int | None,
        typer.Option(
            metavar="PX",
            min=16,
            show_default="the card's tile size",
            help="Tile edge including the halo; cores are rounded to the cube's chunks.",
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            show_default="16 on CUDA, 8 on MPS, up to 4 on CPU",
            help="Tiles per forward pass (on CPU at most 160 MiB of input).",
        ),
    ] = None,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the network (pays off on GPUs).")
    ] = False,
    device: DeviceOption = None,
) -> None:
    """Run a model over a cube: class maps with probabilities, or a retrieval such as methane.

    Tiles overlap by the model's halo and are blended with a cosine window, so maps have no
    seams. The predictions stay on the cube's grid (EMIT: sensor geometry with its GLT).
    Running the same model on the same cube again is a no-op; an interrupted run resumes.
    Example:

        spectraflow predict cubes/ENMAP01-....zarr --model lc-enmap-lola --out predictions/
    """
    with reporting_errors():
        from spectraflow.cube import open_cube
        from spectraflow.inference.predict import predict_cube

        url_out = out / f"{cube.name.removesuffix('.zarr')}.{Path(model).stem}.zarr"
        started = time.perf_counter()
        with dask_task_bar(f"predict {Path(model).stem}"):
            url = predict_cube(
                cube, model, out=url_out, tile=tile, batch=batch, device=device, compile=compile
            )
        pred = open_cube(url)
        table = Table(title="Predictions", title_justify="left", show_header=False)
        table.add_row("url", url)
        table.add_row("model", f"{pred.attrs.get('model')} {pred.attrs.get('model_version')}")
        table.add_row("variables", ", ".join(str(v) for v in pred.data_vars))
        table.add_row("time", f"{time.perf_counter() - started:.1f} s")
        stdout().print(table)
