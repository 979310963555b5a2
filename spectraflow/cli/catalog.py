"""``spectraflow catalog``: the STAC providers, and a local STAC API for simulated scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from spectraflow.cli._common import reporting_errors, stderr, stdout

__all__ = ["catalog_app"]

catalog_app = typer.Typer(
    help="The STAC providers, and a local STAC API (rustac) for simulated scenes and products.",
    no_args_is_help=True,
)


@catalog_app.command("providers")
def catalog_providers() -> None:
    """List the STAC providers spectraflow knows (built-in and from spectraflow.toml)."""
    with reporting_errors():
        from spectraflow.catalog import providers

        table = Table(title="STAC providers", title_justify="left")
        for column in ("name", "sensors: collections", "credentials", "default", "url"):
            table.add_column(column, overflow="fold")
        for p in providers().values():
            sensors = "; ".join(f"{s}: {', '.join(c)}" for s, c in p.collections.items())
            table.add_row(p.name, sensors, p.auth or "none", "yes" if p.default else "no", p.url)
        stdout().print(table)


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
    with reporting_errors():
        from spectraflow.catalog import LocalCatalog

        directory = _data_dir(data)
        added = LocalCatalog(directory).add(items)
        stdout().print(f"added {len(added)} items to [bold]{escape(str(directory))}[/]")


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
    with reporting_errors():
        from spectraflow.catalog import serve_forever
        from spectraflow.config import get_settings

        if backend not in ("auto", "memory", "duckdb"):
            raise typer.BadParameter("use auto, memory or duckdb", param_hint="--backend")
        directory = _data_dir(data)

        def ready(url: str) -> None:
            stderr().print(
                f"STAC API of [bold]{escape(str(directory))}[/] at [bold]{url}[/] (Ctrl-C stops)"
            )

        serve_forever(
            directory,
            host=host,
            port=get_settings().stac_port if port is None else port,
            backend=backend,  # type: ignore[arg-type]
            on_ready=ready,
        )
