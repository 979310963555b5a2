"""Learned models on held-out simulated scenes, against classical baselines.

Everything is measured in one run on scenes of a region and seed that no shipped model was
trained on (``spectraflow.models.recipes.HELD_OUT``):

- land cover on EnMAP: overall accuracy and kappa of each shipped land-cover model, and of a
  spectral angle mapper (class-mean spectra) and a random forest on pixels, both fitted on the
  same 1 % of the training scenes' labels the models were trained with (the baselines get the
  labels of every row; the models held the bottom fifth back for early stopping);
- cross-sensor: the wavelength-conditioned model, trained on EnMAP only, applied to EMIT (285
  bands, sensor geometry) and Sentinel-2 (12 bands) scenes of the same held-out region; the
  drop is EnMAP OA minus the other sensor's OA, in points;
- plumes on EMIT: pixel F1 of the segmentation models against the simulated truth
  (≥ 200 ppm·m), and of the thresholded matched filter (``ch4-mf`` with
  :func:`spectraflow.models.plume.plume_mask`);
- forward throughput (pixels/s) of every model on batches of its card's tile size, on the CPU
  (and the GPU when one is present).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from bench.baselines import random_forest, spectral_angle_mapper
from bench.report import work_dir, write_result
from spectraflow.cube import open_cube
from spectraflow.models import get_card, list_models, load_model
from spectraflow.models.chips import sparse_labels
from spectraflow.models.learned import LearnedModel
from spectraflow.models.metrics import (
    classification_scores,
    confusion_matrix,
    detection_scores,
)
from spectraflow.models.plume import plume_mask
from spectraflow.models.recipes import HELD_OUT, RECIPES, labelled_scenes
from spectraflow.models.scenes import PLUME, LabelledScene
from spectraflow.models.train import evaluate
from spectraflow.sensors.bands import BandTable

THREADS = 2
LAND_COVER = ("lc-enmap-spectralearth", "lc-enmap-lola", "lc-any-wavelength")
PLUME_MODELS = ("ch4-plume-segformer", "ch4-plume-efficientvit")
CROSS = "lc-any-wavelength"


def _scores(truth: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, Any]:
    keep = (truth > 0) & (predicted > 0)
    confusion = confusion_matrix(truth[keep], predicted[keep], len(names))
    return classification_scores(confusion, names).as_dict()


def _baselines(model: LearnedModel, train: list[LabelledScene], test: LabelledScene) -> dict:
    """SAM and random forest on 1 % of the training labels, scored on the held-out scene."""
    rng = np.random.default_rng(0)
    pixels, labels = [], []
    for scene in train:
        sparse = sparse_labels(scene.labels, fraction=0.01, rng=rng)
        keep = sparse > 0
        pixels.append(scene.reflectance[model.bands(scene.bands)][:, keep].T)
        labels.append(sparse[keep])
    x, y = np.concatenate(pixels), np.concatenate(labels)
    test_x = test.reflectance[model.bands(test.bands)].reshape(len(x[0]), -1).T
    finite = np.isfinite(test_x).all(axis=1)
    names = [c.name for c in model.card.output.classes]
    out: dict[str, Any] = {"train_pixels": len(x)}
    for name, fit in (("sam", spectral_angle_mapper), ("random_forest", random_forest)):
        predicted = np.zeros(len(test_x), dtype=np.uint8)
        predicted[finite] = fit(x, y, np.nan_to_num(test_x[finite]))
        scores = _scores(test.labels, predicted.reshape(test.labels.shape), names)
        out[f"{name}_oa"], out[f"{name}_kappa"] = scores["oa"], scores["kappa"]
    return out


def _matched_filter_f1(scenes: list[LabelledScene]) -> float:
    """Pixel F1 of the thresholded production matched filter over the held-out EMIT scenes."""
    mf = load_model("ch4-mf", device="cpu")
    truth, predicted = [], []
    for scene in scenes:
        result = mf.retrieve(open_cube(scene.cube)).compute()
        enhancement = result["ch4_enhancement"].values
        mask = plume_mask(enhancement, sigma=result["uncertainty"].values) > 0
        keep = scene.labels > 0
        truth.append(scene.labels[keep] == PLUME)
        predicted.append(mask[keep])
    return detection_scores(np.concatenate(truth), np.concatenate(predicted)).f1


def _throughput(model: LearnedModel, device: str) -> float:
    """Forward pixels/s on a batch of 8 random tiles of the card's size (best of 4)."""
    card = model.card
    size = card.input.tile_size
    channels = len(card.input.wavelengths_nm or ()) or 224
    x = torch.rand(8, channels, size, size) * 0.4
    best = np.inf
    for _ in range(4):
        start = time.perf_counter()
        model.forward(x.to(device), _spectral_table(channels) if model.conditioned else None)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 8 * size * size / best


def _spectral_table(channels: int) -> BandTable:
    wavelengths = np.linspace(420, 2450, channels)
    return BandTable.from_arrays(wavelengths, np.full(channels, 10.0))


def main() -> None:
    """Run the models benchmark and write bench/results/models.json."""
    torch.set_num_threads(THREADS)
    work = work_dir() / "models"
    region, seed = HELD_OUT
    metrics: dict[str, float] = {}

    # Land cover on EnMAP.
    recipe = RECIPES["lc-enmap-spectralearth"]
    train = labelled_scenes(recipe.model, "enmap", recipe.regions, dates=recipe.dates, seed=0,
                            work=work)  # fmt: skip
    test = labelled_scenes(recipe.model, "enmap", (region,), dates=1, seed=seed, work=work)[0]
    best = 0.0
    for name in LAND_COVER:
        model = load_model(name, device="cpu")
        scores = evaluate(model, [test])
        metrics[f"{name}_oa"] = float(scores["oa"] or 0)
        metrics[f"{name}_kappa"] = float(scores["kappa"] or 0)
        best = max(best, float(scores["oa"] or 0))
        print(f"  {name}: OA {scores['oa']:.3f} kappa {scores['kappa']:.3f}", flush=True)
    baselines = _baselines(load_model(LAND_COVER[0], device="cpu"), train, test)
    print(f"  baselines: {baselines}", flush=True)
    metrics.update({k: v for k, v in baselines.items() if k != "train_pixels"})
    metrics["best_baseline_oa"] = max(baselines["sam_oa"], baselines["random_forest_oa"])
    metrics["best_transformer_margin_points"] = 100 * (best - metrics["best_baseline_oa"])

    # Cross-sensor: the wavelength-conditioned model on EMIT and Sentinel-2.
    cross = load_model(CROSS, device="cpu")
    drops = []
    for sensor in ("emit", "sentinel2"):
        scene = labelled_scenes(CROSS, sensor, (region,), dates=1, seed=seed, work=work)[0]
        oa = float(evaluate(cross, [scene])["oa"] or 0)
        metrics[f"{CROSS}_{sensor}_oa"] = oa
        drops.append(100 * (metrics[f"{CROSS}_oa"] - oa))
        print(f"  {CROSS} on {sensor}: OA {oa:.3f}", flush=True)
    metrics["cross_sensor_drop_points"] = max(drops)

    # Plumes on EMIT.
    plume_scenes = labelled_scenes(PLUME_MODELS[0], "emit", (region,), dates=2, seed=seed,
                                   work=work)  # fmt: skip
    for name in PLUME_MODELS:
        scores = evaluate(load_model(name, device="cpu"), plume_scenes)
        metrics[f"{name}_plume_f1"] = float(scores.get("plume_f1") or 0)
    metrics["matched_filter_plume_f1"] = _matched_filter_f1(plume_scenes)

    # Throughput.
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for card in list_models():
        if card.network is None or card.weights is None:
            continue
        for device in devices:
            suffix = "" if device == "cpu" else "_gpu"
            model = load_model(card.name, device=device)
            metrics[f"{card.name}_pixels_per_s{suffix}"] = _throughput(model, device)
    write_result(
        "models",
        params={
            "held_out": {"region": region, "seed": seed},
            "labels_fraction": 0.01,
            "baseline_train_pixels": baselines["train_pixels"],
            "threads": THREADS,
            "recipes": {
                n: {"sensor": r.sensor, "regions": list(r.regions), "dates": r.dates}
                for n, r in RECIPES.items()
            },
            "cards": {n: get_card(n).version for n in (*LAND_COVER, *PLUME_MODELS)},
        },
        metrics=metrics,
        goals={
            "best_transformer_margin_points": ">= 3",
            "cross_sensor_drop_points": "< 5",
        },
    )
