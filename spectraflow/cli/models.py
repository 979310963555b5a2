"""``spectraflow models``: the registered models' cards, and training the shipped weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from spectraflow.cli._common import (
    DeviceOption,
    epoch_bar,
    epoch_callback,
    reporting_errors,
    stdout,
)
from spectraflow.cli.training import KAPPA, format_score, overall_rows
from spectraflow.errors import ModelError

if TYPE_CHECKING:
    from spectraflow.models.card import ModelCard

__all__ = ["headline", "models_app"]

models_app = typer.Typer(
    help="The models spectraflow can run: their cards (inputs, outputs, weights, scores), "
    "and training the shipped weights.",
    no_args_is_help=True,
)


def headline(metrics: Mapping[str, float]) -> str | None:
    """The headline score of a card's metrics: ``OA 0.87 κ 0.81`` or ``plume F1 0.62``.

    Held-out scores (``held_out_*``, written by ``make weights``) come first; otherwise the
    unprefixed ones ``spectraflow evaluate --write-card`` writes.
    """
    for prefix in ("held_out_", ""):
        if (f1 := metrics.get(f"{prefix}plume_f1")) is not None:
            return f"plume F1 {f1:.2f}"
        if (oa := metrics.get(f"{prefix}oa")) is not None:
            kappa = metrics.get(f"{prefix}kappa")
            return f"OA {oa:.2f}" + ("" if kappa is None else f" {KAPPA} {kappa:.2f}")
    return None


def _weights_state(card: ModelCard) -> str:
    """``installed``, ``missing file``, ``none`` (not trained) or ``not needed`` (no network)."""
    if card.network is None:
        return "not needed"
    if card.weights is None:
        return "none"
    from spectraflow.models.learned import weights_path

    return "installed" if weights_path(card).is_file() else "missing file"


def _measured(card: ModelCard, weights: str) -> str:
    if (score := headline(card.metrics)) is not None:
        return score
    if card.network is None:
        return "–"
    return "not measured" if weights == "installed" else "not trained"


def _input_summary(card: ModelCard) -> str:
    contract = card.input
    if contract.band_selection == "window":
        return ", ".join(f"{lo:.0f}–{hi:.0f}" for lo, hi in contract.windows) + " nm"
    return f"{len(contract.wavelengths_nm or ())} bands"


@models_app.command("list")
def models_list() -> None:
    """List the registered models: task, input, outputs, weights and held-out scores."""
    with reporting_errors():
        from spectraflow.models import list_models

        table = Table(title="Models", title_justify="left")
        for column in ("name", "task", "input", "outputs", "weights", "measured", "version"):
            table.add_column(column, overflow="fold")
        for card in list_models():
            outputs = ", ".join(f"{v.name} ({v.units})" for v in card.output.variables)
            weights = _weights_state(card)
            measured = _measured(card, weights)
            row = (card.name, card.task, _input_summary(card), outputs, weights, measured)
            table.add_row(*row, card.version)
        stdout().print(table)
        stdout().print(
            "weights: [bold]installed[/] (ready to run), or [bold]none[/] / [bold]missing file[/]"
            " (run 'make weights'); measured: scores on held-out simulated scenes"
        )


@models_app.command("show")
def models_show(
    name: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model name (see 'models list') or card file.")
    ],
) -> None:
    """Print a model's whole card: inputs, outputs, network, weights, scores and references."""
    with reporting_errors():
        from spectraflow.models import get_card

        card = get_card(name)
        out = stdout()
        out.print(f"[bold]{card.name}[/] {card.version} — {escape(card.title)}")
        out.print(escape(card.summary.strip()), soft_wrap=True)
        out.print(f"\n[bold]task[/] {card.task}   [bold]licence[/] {escape(card.licence)}")
        out.print("[bold]input[/]")
        for key, value in card.input.model_dump(exclude_none=True).items():
            out.print(f"  {key}: {escape(str(value))}", soft_wrap=True)
        out.print(f"  halo (px): {card.input.halo}")
        out.print("[bold]output[/]")
        for var in card.output.variables:
            out.print(f"  {var.name} ({var.units}): {escape(var.description)}")
        for cls in card.output.classes:
            out.print(f"  class {cls.value} {escape(cls.name)} {cls.colour}")
        if card.network is not None:
            net = card.network
            out.print(f"[bold]network[/] {net.architecture}   normaliser {net.normaliser}")
            config = ", ".join(f"{k}={v}" for k, v in net.config.items()) or "defaults"
            out.print(f"  config: {escape(config)}", soft_wrap=True)
        _print_weights(card)
        if card.metrics:
            out.print("[bold]metrics[/]")
            _print_metrics(card.metrics)
        if card.options:
            out.print("[bold]options[/] " + ", ".join(f"{k}={v}" for k, v in card.options.items()))
        for ref in card.references:
            out.print(f"  • {escape(ref)}", soft_wrap=True)


def _print_weights(card: ModelCard) -> None:
    out = stdout()
    weights = card.weights
    if weights is None:
        none = "not trained yet (run 'make weights')" if card.network else "none (no training)"
        out.print(f"[bold]weights[/] {none}")
        return
    state = _weights_state(card)
    out.print(
        f"[bold]weights[/] {escape(weights.file)} ({state})   sha256 {weights.sha256[:16]}…",
        soft_wrap=True,
    )
    out.print(f"  trained with: {escape(weights.trained_with)}", soft_wrap=True)


_PER_CLASS = {"f1_": "F1", "iou_": "IoU", "support_": "support (px)"}


def _print_metrics(metrics: Mapping[str, float]) -> None:
    """Scene-level scores one per line, then each per-class score on one line."""
    out = stdout()
    per_class: dict[str, list[str]] = {}
    for key, value in metrics.items():
        base = key.removeprefix("held_out_")
        prefix = next((p for p in _PER_CLASS if base.startswith(p)), None)
        if prefix is None:
            out.print(f"  {key}: {format_score(key, value)}")
        else:
            name = base.removeprefix(prefix)
            per_class.setdefault(prefix, []).append(f"{name} {format_score(key, value, digits=2)}")
    for prefix, entries in per_class.items():
        out.print(f"  {_PER_CLASS[prefix]} per class: {escape(', '.join(entries))}", soft_wrap=True)


@models_app.command("train-shipped")
def models_train_shipped(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME",
            show_default="every model with a recipe",
            help="Models to train (names from 'spectraflow models list' that have weights).",
        ),
    ] = None,
    work: Annotated[
        Path,
        typer.Option(
            "--work",
            metavar="DIR",
            file_okay=False,
            help="Scratch directory for the simulated scenes, cubes and training runs; "
            "scenes already there are reused.",
        ),
    ] = Path("spectraflow-weights-work"),
    device: DeviceOption = None,
) -> None:
    """Train the shipped weights from simulated scenes and install them in the package.

    For each model: simulate and ingest its training scenes, train it with its recipe
    (spectraflow.models.recipes), score it on a held-out scene of a region and seed it never
    saw, and install the weights and the updated card (checksum, bands, scores). This is what
    'make weights' runs; all five models take about half an hour on two CPU cores. Nothing is
    downloaded.
    """
    with reporting_errors():
        from spectraflow.models.recipes import RECIPES, make_weights
        from spectraflow.models.registry import resolve_device
        from spectraflow.models.weights import WEIGHTS_DIR

        chosen = list(dict.fromkeys(names or RECIPES))
        unknown = [name for name in chosen if name not in RECIPES]
        if unknown:
            raise ModelError(
                f"no training recipe for {', '.join(map(repr, unknown))}",
                where="NAME",
                fix=f"use one or more of: {', '.join(RECIPES)} (or none for all)",
            )
        torch_device = None if device is None else resolve_device(device)
        summary = Table(title=f"Installed in {WEIGHTS_DIR}", title_justify="left")
        for column in ("model", "best epoch", "held-out scores"):
            summary.add_column(column, overflow="fold")
        for name in chosen:
            with epoch_bar() as bar:
                progress = epoch_callback(bar, name, waiting="simulating scenes…")
                result, scores = make_weights(name, work, device=torch_device, progress=progress)
            rows = overall_rows(scores)
            stdout().print(
                f"[bold]{name}[/] held-out: " + ", ".join(f"{k} {v}" for k, v in rows),
                soft_wrap=True,
            )
            summary.add_row(
                name,
                f"{result.best_epoch} of {result.epochs_run}",
                headline({k: v for k, v in scores.items() if v is not None}) or "–",
            )
        stdout().print(summary)
