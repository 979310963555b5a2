"""``spectraflow train`` and ``spectraflow evaluate``: fit a learned model, then score it.

Both read labelled scenes given as ``--scene CUBE:LABELS`` (a cube written by ``ingest`` and
a label raster on its grid) and delegate to :mod:`spectraflow.models.train`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spectraflow.cli._common import (
    DeviceOption,
    epoch_bar,
    epoch_callback,
    progress_bar,
    reporting_errors,
    stderr,
    stdout,
)
from spectraflow.errors import ModelError

if TYPE_CHECKING:
    from spectraflow.models.card import ModelCard
    from spectraflow.models.scenes import LabelledScene
    from spectraflow.models.train import TrainResult

__all__ = ["SHOWN_DEFAULTS", "card_of", "evaluate", "format_score", "overall_rows", "train"]

KAPPA = "\N{GREEK SMALL LETTER KAPPA}"

SHOWN_DEFAULTS = {
    "epochs": "30",
    "steps_per_epoch": "20",
    "batch": "8",
    "chip": "64",
    "lr": "0.001",
    "seed": "0",
}
"""Defaults of :class:`~spectraflow.models.train.TrainOptions` as ``--help`` shows them.

Written out so that ``--help`` does not import torch; a test keeps them equal to the library's.
"""

SceneOption = Annotated[
    list[str],
    typer.Option(
        "--scene",
        metavar="CUBE:LABELS",
        help="A labelled scene: a cube directory (from 'spectraflow ingest') and its label "
        "raster on the same grid (GeoTIFF, or truth_sensor_geometry.nc for EMIT in sensor "
        "geometry), separated by ':'. Repeat for several scenes.",
    ),
]

ModelArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A registered model name (see 'spectraflow models list') or the path of a card "
        "file (.toml), e.g. one written by 'spectraflow train'.",
    ),
]


def _positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter(f"{value} is not greater than 0")
    return value


def card_of(model: str) -> ModelCard:
    """The card of ``model`` (a name or a card path), with a clear error for a missing file."""
    from spectraflow.models import get_card

    if model.endswith(".toml") and not Path(model).is_file():
        raise ModelError(
            "no card file at this path",
            where=model,
            fix="give the card written by 'spectraflow train' (<out>/<model>.toml) "
            "or a registered model name (spectraflow models list)",
        )
    return get_card(model)


def _load_scenes(texts: Sequence[str], card: ModelCard) -> list[LabelledScene]:
    """Parse every ``CUBE:LABELS`` first (a typo fails before any reading), then read them."""
    from spectraflow.models.scenes import load_labelled_scene, parse_scene_pair

    pairs = [parse_scene_pair(text) for text in texts]
    scenes = []
    with progress_bar() as bar:
        task = bar.add_task("reading scenes", total=len(pairs))
        for cube, labels in pairs:
            scenes.append(load_labelled_scene(cube, labels, card))
            bar.advance(task)
    return scenes


def train(
    model: ModelArgument,
    scene: SceneOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            file_okay=False,
            help="Where the weights (<model>.safetensors), their card (<model>.toml) and the "
            "checkpoint are written; created if missing.",
        ),
    ],
    epochs: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            show_default=SHOWN_DEFAULTS["epochs"],
            help="Epochs to run at most (training stops earlier when the "
            "validation loss stops improving).",
        ),
    ] = None,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            show_default=SHOWN_DEFAULTS["steps_per_epoch"],
            help="Optimiser steps (batches) per epoch.",
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            metavar="N", min=1, show_default=SHOWN_DEFAULTS["batch"], help="Chips per batch."
        ),
    ] = None,
    chip: Annotated[
        int | None,
        typer.Option(
            metavar="PX",
            min=8,
            show_default=SHOWN_DEFAULTS["chip"],
            help="Edge of the square training chips in pixels (a multiple of the network's "
            "patch size, e.g. 32 or 64).",
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            callback=_positive,
            show_default=SHOWN_DEFAULTS["lr"],
            help="Peak learning rate of AdamW (linear warm-up, then cosine decay).",
        ),
    ] = None,
    labels_fraction: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            max=1.0,
            callback=_positive,
            show_default="all labels",
            help="Keep only this fraction of the labelled pixels (e.g. 0.01 for the few-label "
            "setting).",
        ),
    ] = None,
    lora: Annotated[
        int | None,
        typer.Option(
            metavar="RANK",
            min=1,
            show_default="off",
            help="Fine-tune a trained model through LoRA adapters of this rank (only the "
            "adapters and the head learn; they are merged into the weights at the end).",
        ),
    ] = None,
    class_weighting: Annotated[
        bool,
        typer.Option(
            "--class-weighting",
            help="Weight each class's loss by 1/√(its pixel frequency): for rare targets such "
            "as plumes.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an interrupted run from the checkpoint in --out."),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            show_default=SHOWN_DEFAULTS["seed"],
            help="Random seed (weights, chips, augmentations).",
        ),
    ] = None,
    device: DeviceOption = None,
) -> None:
    """Train a learned model on labelled scenes; write its weights and a card next to them.

    The bottom fifth of every scene's rows is held out: the weights of the epoch with the
    lowest loss on it are kept, and training stops early when that loss stops improving.
    A checkpoint is written after every epoch (--resume continues from it). Example:

        spectraflow train lc-enmap-spectralearth --scene cubes/S1.zarr:S1/classes.tif --out run1
    """
    given: dict[str, Any] = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch": batch,
        "chip": chip,
        "lr": lr,
        "labels_fraction": labels_fraction,
        "lora_rank": lora,
        "seed": seed,
        "class_weighting": class_weighting or None,
        "resume": resume or None,
    }
    with reporting_errors():
        from dataclasses import replace

        from spectraflow.models.registry import resolve_device
        from spectraflow.models.train import TrainOptions
        from spectraflow.models.train import train as run_train

        card = card_of(model)
        options = replace(TrainOptions(), **{k: v for k, v in given.items() if v is not None})
        torch_device = resolve_device(device)
        scenes = _load_scenes(scene, card)
        started = time.perf_counter()
        with epoch_bar() as bar:
            result = run_train(
                card,
                scenes,
                out=out,
                options=options,
                device=torch_device,
                progress=epoch_callback(bar, card.name),
            )
        _print_training(
            card.name, result, f"{time.perf_counter() - started:.1f} s on {torch_device}"
        )


def _print_training(name: str, result: TrainResult, took: str) -> None:
    table = Table(title=f"Trained {name}", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    size = result.weights.stat().st_size / 2**20
    table.add_row("weights", f"{result.weights} ({size:.1f} MiB)")
    table.add_row("card", str(result.card))
    table.add_row("epochs run", str(result.epochs_run))
    table.add_row(
        "best epoch", f"{result.best_epoch} (validation loss {result.best_validation_loss:.4f})"
    )
    if result.history:
        first, last = result.history[0], result.history[-1]
        table.add_row(
            "loss",
            f"train {first['train_loss']:.4f} → {last['train_loss']:.4f}, "
            f"validation {first['validation_loss']:.4f} → {last['validation_loss']:.4f}",
        )
    share = 100 * result.trainable_parameters / max(result.total_parameters, 1)
    table.add_row(
        "parameters",
        f"{result.trainable_parameters:,} trainable of {result.total_parameters:,} ({share:.1f} %)",
    )
    table.add_row("time", took)
    out = stdout()
    out.print(table)
    card = escape(str(result.card))
    out.print(f"use it: spectraflow evaluate {card} --scene CUBE:LABELS", soft_wrap=True)
    out.print(f'   or, in Python: load_model("{card}")', soft_wrap=True)


_COUNTS = ("n", "tp", "fp", "fn")


def format_score(key: str, value: float | None, *, digits: int = 4) -> str:
    """Score ``key`` for a table: ``–`` when undefined, counts (pixels) without decimals."""
    if value is None:
        return "–"
    base = key.removeprefix("held_out_")
    if base.startswith("support_") or base.removeprefix("plume_") in _COUNTS:
        return f"{round(value):,}"
    return f"{value:.{digits}f}"


_OVERALL = {
    "oa": "overall accuracy",
    "kappa": f"Cohen's {KAPPA}",
    "mean_f1": "mean F1",
    "miou": "mean IoU",
    "n": "pixels scored",
    "plume_precision": "plume precision",
    "plume_recall": "plume recall",
    "plume_f1": "plume F1",
}


def overall_rows(scores: Mapping[str, float | None]) -> list[tuple[str, str]]:
    """(label, value) rows of the scene-level scores present in ``scores``."""
    return [
        (label, format_score(key, scores[key])) for key, label in _OVERALL.items() if key in scores
    ]


def _print_scores(card: ModelCard, scores: Mapping[str, float | None]) -> None:
    out = stdout()
    overall = Table(title=f"{card.name}: scores", title_justify="left", show_header=False)
    overall.add_column(style="bold", no_wrap=True)
    overall.add_column(justify="right")
    for row in overall_rows(scores):
        overall.add_row(*row)
    out.print(overall)
    per_class = Table(title="per class", title_justify="left")
    for column in ("value", "class", "F1", "IoU", "support (px)"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for cls in card.output.classes:
        per_class.add_row(
            str(cls.value),
            escape(cls.name),
            format_score(f"f1_{cls.name}", scores.get(f"f1_{cls.name}")),
            format_score(f"iou_{cls.name}", scores.get(f"iou_{cls.name}")),
            format_score(f"support_{cls.name}", scores.get(f"support_{cls.name}")),
        )
    out.print(per_class)


def evaluate(
    model: ModelArgument,
    scene: SceneOption,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the scores as one JSON object.")
    ] = False,
    write_card: Annotated[
        bool,
        typer.Option(
            "--write-card",
            help="Write the scores into the card file (its metrics table); MODEL must be a "
            "card path, not a registered name.",
        ),
    ] = False,
    device: DeviceOption = None,
) -> None:
    """Score a learned model on labelled scenes: accuracy, kappa, F1 and IoU per class.

    Plume models also get plume precision, recall and F1. Score on scenes the model never saw
    in training. Example:

        spectraflow evaluate run1/lc-enmap-spectralearth.toml --scene cubes/S2.zarr:S2/classes.tif
    """
    with reporting_errors():
        if write_card and not model.endswith(".toml"):
            raise ModelError(
                f"--write-card needs a card file, and {model!r} is a registered model name",
                where="--write-card",
                fix="evaluate the card written by 'spectraflow train' (<out>/<model>.toml); "
                "the scores of the shipped cards are written by 'make weights'",
            )
        card = card_of(model)
        if card.network is None:
            raise ModelError(
                f"{card.name} is not a learned model",
                where=model,
                fix="evaluate a model with a network (spectraflow models list shows them)",
            )
        from spectraflow.models import load_model
        from spectraflow.models.train import evaluate as run_evaluate

        learned = load_model(model, device=device)
        scenes = _load_scenes(scene, card)
        with stderr().status(f"evaluating {card.name} on {len(scenes)} scene(s)…"):
            scores = run_evaluate(learned, scenes)
        if as_json:
            typer.echo(json.dumps(scores))
        else:
            _print_scores(card, scores)
        if write_card:
            from spectraflow.models.card import save_card

            metrics = {k: float(v) for k, v in scores.items() if v is not None}
            save_card(card.model_copy(update={"metrics": metrics}), Path(model))
            stderr().print(f"scores written to [bold]{escape(model)}[/]")
