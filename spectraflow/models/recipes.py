"""How the shipped weights are made: simulated scenes, training options, held-out scores.

``make weights`` (``spectraflow models train-shipped``) runs every recipe: it simulates
demo-size scenes of the training regions, ingests them, trains the model
(:func:`spectraflow.models.train.train`), scores it on a scene of a region and seed it never saw,
and installs the weights and the updated card (weights checksum, exact bands, scores) into the
package. Nothing is downloaded; the same command on another machine gives weights of the same
quality (bit-identical on the same CPU and torch version).

The land-cover models train with 1 % of the labels (the few-label setting of the models
benchmark); the plume models with every pixel labelled by the simulated truth.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import torch

from spectraflow.catalog import find_scene
from spectraflow.cube import ingest
from spectraflow.errors import ModelError
from spectraflow.models.card import WeightsRef, save_card
from spectraflow.models.learned import build
from spectraflow.models.registry import CARDS_DIR, get_card
from spectraflow.models.scenes import LabelledScene, load_labelled_scene
from spectraflow.models.train import TrainOptions, TrainResult, evaluate, train
from spectraflow.models.weights import WEIGHTS_DIR
from spectraflow.simulate import simulate_scene

__all__ = ["HELD_OUT", "RECIPES", "Recipe", "labelled_scenes", "make_weights"]

HELD_OUT = ("hunter-valley", 7)
"""Region and seed of the evaluation scenes: no training scene comes from them."""


@dataclass(frozen=True)
class Recipe:
    """One shipped model: its training scenes (sensor, regions × dates) and options."""

    model: str
    sensor: str
    regions: tuple[str, ...]
    dates: int
    options: TrainOptions


_FEW = 0.01
RECIPES: dict[str, Recipe] = {
    r.model: r
    for r in (
        Recipe(
            "lc-enmap-spectralearth", "enmap", ("permian", "four-corners"), 2,
            TrainOptions(epochs=15, steps_per_epoch=20, chip=48, labels_fraction=_FEW),
        ),
        Recipe(
            "lc-enmap-lola", "enmap", ("permian", "four-corners"), 2,
            TrainOptions(epochs=30, steps_per_epoch=20, chip=48, lr=3e-3, patience=10,
                         labels_fraction=_FEW),
        ),
        Recipe(
            "lc-any-wavelength", "enmap", ("permian", "four-corners"), 2,
            TrainOptions(epochs=40, steps_per_epoch=20, chip=64, lr=3e-3, patience=12,
                         labels_fraction=_FEW),
        ),
        Recipe(
            "ch4-plume-segformer", "emit", ("permian", "four-corners"), 4,
            TrainOptions(epochs=40, steps_per_epoch=20, chip=64, class_weighting=True),
        ),
        Recipe(
            "ch4-plume-efficientvit", "emit", ("permian", "four-corners"), 4,
            TrainOptions(epochs=40, steps_per_epoch=20, chip=64, class_weighting=True),
        ),
    )
}  # fmt: skip


def _labels_file(truth: dict[str, Path], sensor: str, labels: str) -> Path:
    if sensor == "emit":  # EMIT cubes stay in sensor geometry
        return truth["sensor_geometry"]
    return truth["ch4" if labels == "plume" else "classes"]


def labelled_scenes(
    model: str,
    sensor: str,
    regions: Sequence[str],
    *,
    dates: int,
    seed: int,
    work: Path,
) -> list[LabelledScene]:
    """Demo-size scenes of ``sensor`` (simulated and ingested under ``work`` once, then reused).

    One scene per region and date (``dates`` consecutive weeks from 12 June 2024).
    """
    card = get_card(model)
    out = []
    for region in regions:
        for week in range(dates):
            when = date(2024, 6, 12) + timedelta(weeks=week)
            folder = work / f"{sensor}-{region}-{seed}-{when}"
            done = folder / "done"  # written last: the cube and label paths of a ready scene
            if not done.exists():
                sim = simulate_scene(
                    sensor, out=folder, size="demo", region=region, seed=seed, date=when
                )
                cube = ingest(find_scene(sim.item_path), out=folder / "cube")
                labels = _labels_file(sim.truth, sensor, str(card.options.get("labels")))
                done.write_text(f"{cube}\n{labels}\n")
            cube_path, labels_path = done.read_text().split()
            out.append(load_labelled_scene(cube_path, labels_path, card))
    return out


def make_weights(
    name: str,
    work: Path,
    *,
    device: torch.device | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> tuple[TrainResult, dict[str, float | None]]:
    """Train recipe ``name``, score it on the held-out scene and install weights and card.

    Raises
    ------
    ModelError
        No recipe has that name.
    """
    if name not in RECIPES:
        raise ModelError(
            f"no shipped-weights recipe named {name!r}",
            where="name",
            fix=f"use one of: {', '.join(RECIPES)}",
        )
    recipe = RECIPES[name]
    card = get_card(name)
    scenes = labelled_scenes(
        name, recipe.sensor, recipe.regions, dates=recipe.dates, seed=0, work=work
    )
    result = train(card, scenes, out=work / "runs" / name, options=recipe.options,
                   device=device, progress=progress)  # fmt: skip
    trained = get_card(str(result.card))
    held_out = labelled_scenes(
        name, recipe.sensor, (HELD_OUT[0],), dates=1, seed=HELD_OUT[1], work=work
    )
    scores = evaluate(build(trained, device=device or torch.device("cpu")), held_out)
    WEIGHTS_DIR.mkdir(exist_ok=True)
    shutil.copyfile(result.weights, WEIGHTS_DIR / f"{name}.safetensors")
    assert trained.weights is not None
    installed = trained.model_copy(
        update={
            "weights": WeightsRef(
                file=f"{name}.safetensors",
                sha256=trained.weights.sha256,
                trained_with=f"make weights (spectraflow models train-shipped {name})",
            ),
            "metrics": {
                f"held_out_{k}": float(v)
                for k, v in scores.items()
                if v is not None and not k.startswith(("support_", "iou_"))
            },
        }
    )
    save_card(installed, CARDS_DIR / f"{name}.toml")
    return result, scores
