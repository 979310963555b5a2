"""Training, LoRA fine-tuning and evaluation of the learned models.

:func:`train` fits a card's network on labelled scenes (:mod:`spectraflow.models.scenes`):

- The bottom ``validation_fraction`` of every scene's rows is held out for early stopping;
  training chips come from the rest (class-balanced, masks respected), optionally with only a
  fraction of the labels kept (the few-label setting).
- Augmentations: flips, 90° rotations and spectral jitter (:mod:`spectraflow.models.chips`).
- AdamW with a linear warm-up and cosine decay; bf16 autocast on CUDA.
- A checkpoint (safetensors: network, normaliser, optimiser moments; JSON metadata) after every
  epoch; ``resume=True`` continues from it with the same chips the run would have drawn.
- ``lora_rank``: fine-tune a trained model through LoRA adapters on its attention and
  projection layers (:mod:`spectraflow.models.layers.lora`), merged into the weights at the end.

The result is a weights file and a card next to it that :func:`spectraflow.models.load_model`
accepts by path. :func:`evaluate` scores a model on labelled scenes and can write the scores
into its card.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from spectraflow.errors import ModelError
from spectraflow.models.bands import select_bands
from spectraflow.models.card import ModelCard, WeightsRef, save_card, sha256_of
from spectraflow.models.chips import augment, sample_chips, sparse_labels
from spectraflow.models.layers.lora import add_lora, count_parameters, merge_lora
from spectraflow.models.learned import (
    LearnedModel,
    Normaliser,
    band_subset,
    build_network,
    fit_normaliser,
    split_state,
    weights_path,
)
from spectraflow.models.metrics import classification_scores, confusion_matrix, detection_scores
from spectraflow.models.scenes import PLUME, LabelledScene
from spectraflow.models.weights import load_weights, save_weights
from spectraflow.sensors.bands import BandTable

__all__ = ["TrainOptions", "TrainResult", "evaluate", "resample_bands", "train"]

Progress = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train` runs (defaults: a few minutes on 2 CPU cores for a small model).

    ``class_weighting`` weights the loss of each class by the inverse square root of its
    frequency in the training labels: for rare targets such as plumes, which class-balanced
    chips alone do not make frequent at the pixel level. ``band_resampling`` (for
    wavelength-conditioned models) shows half of the training batches through a random
    broad-band sensor (:func:`resample_bands`).
    """

    epochs: int = 30
    steps_per_epoch: int = 20
    batch: int = 8
    chip: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    patience: int = 8
    labels_fraction: float | None = None
    validation_fraction: float = 0.2
    spectral_jitter: float = 0.02
    lora_rank: int | None = None
    class_weighting: bool = False
    band_resampling: bool = False
    seed: int = 0
    resume: bool = False


@dataclass
class TrainResult:
    """What :func:`train` wrote and how it went."""

    weights: Path
    card: Path
    best_epoch: int
    best_validation_loss: float
    epochs_run: int
    trainable_parameters: int
    total_parameters: int
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Split:
    """One scene's selected bands with its training and validation labels."""

    image: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    valid: np.ndarray


def _class_index(card: ModelCard, labels: np.ndarray) -> np.ndarray:
    """Class values to network class indices; -1 (ignored) for no data and unknown values."""
    lookup = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(card.output.classes):
        lookup[c.value] = i
    return lookup[labels]


def _split(
    scene: LabelledScene, picked: np.ndarray, options: TrainOptions, rng: np.random.Generator
) -> _Split:
    rows = scene.labels.shape[0]
    cut = round(rows * (1 - options.validation_fraction))
    train, validation = scene.labels.copy(), scene.labels.copy()
    train[cut:] = 0
    validation[:cut] = 0
    if options.labels_fraction is not None:
        train = sparse_labels(train, fraction=options.labels_fraction, rng=rng)
    return _Split(scene.reflectance[picked], train, validation, scene.valid)


def _chips(
    splits: Sequence[_Split],
    which: str,
    count: int,
    options: TrainOptions,
    rng: np.random.Generator,
) -> list[tuple[int, int, int]]:
    """``count`` chips (scene, row, col), class-balanced, spread over the scenes."""
    out = []
    for s, split in enumerate(splits):
        labels = getattr(split, which)
        n = count // len(splits) + (s < count % len(splits))
        # Sparse labels cannot cover a quarter of a chip: ask only for some labelled pixels.
        least = 0.25 if options.labels_fraction is None and which == "train" else 1e-4
        starts = sample_chips(
            labels, chip=options.chip, count=n, rng=rng, valid=split.valid, min_labelled=least
        )
        out += [(s, int(r), int(c)) for r, c in starts]
    return out


def _batch(
    splits: Sequence[_Split],
    chips: Sequence[tuple[int, int, int]],
    which: str,
    card: ModelCard,
    options: TrainOptions,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = [], []
    c0 = options.chip
    for s, r, c in chips:
        split = splits[s]
        image = split.image[:, r : r + c0, c : c + c0]
        labels = getattr(split, which)[r : r + c0, c : c + c0]
        if rng is not None:
            image, labels = augment(image, labels, rng, spectral_jitter=options.spectral_jitter)
        images.append(np.ascontiguousarray(image))
        targets.append(_class_index(card, labels))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))


class _Runner:
    """The network with its normaliser on a device; one loss per batch."""

    def __init__(
        self,
        net: nn.Module,
        normaliser: Normaliser,
        bands: BandTable,
        device: torch.device,
        weights: torch.Tensor | None = None,
    ) -> None:
        self.net = net.to(device)
        self.weights = None if weights is None else weights.to(device)
        self.normaliser = normaliser.to(device)
        self.device = device
        self.conditioned = bool(getattr(net, "wavelength_conditioned", False))
        self.spectral = (
            torch.as_tensor(bands.wavelengths, dtype=torch.float32, device=device),
            torch.as_tensor(bands.fwhms, dtype=torch.float32, device=device),
        )

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Cross-entropy of a batch; ``rng``: resample its bands (see :func:`resample_bands`)."""
        x, y = x.to(self.device), y.to(self.device)
        spectral = self.spectral
        if rng is not None:
            x, spectral = resample_bands(x, *spectral, rng)
        amp = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            z = self.normaliser(x)
            logits = self.net(z, *spectral) if self.conditioned else self.net(z)
        return F.cross_entropy(logits.float(), y, weight=self.weights, ignore_index=-1)


def resample_bands(
    x: torch.Tensor, wavelengths: torch.Tensor, fwhm: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """A batch as a random broad-band sensor would see it (for wavelength-conditioned models).

    The bands are cut into 6 to C/2 contiguous groups at random; each group becomes one band
    (mean reflectance, mean wavelength, FWHM spanning the group), and a third of the groups are
    dropped (at least 4 kept), as multispectral sensors leave gaps. Training on such batches
    teaches one set of weights to read imaging spectrometers and multispectral sensors alike.
    """
    c = x.shape[1]
    k = int(rng.integers(6, max(7, c // 2)))
    cuts = np.sort(rng.choice(np.arange(1, c), size=k - 1, replace=False))
    groups = [g for g in np.split(np.arange(c), cuts) if rng.random() > 1 / 3]
    if len(groups) < 4:
        groups = np.split(np.arange(c), cuts)[:: max(1, k // 4)]
    wl, fw = wavelengths.cpu().numpy(), fwhm.cpu().numpy()
    out = torch.stack([x[:, torch.as_tensor(g, device=x.device)].mean(1) for g in groups], 1)
    centre = [float(wl[g].mean()) for g in groups]
    width = [float(wl[g].max() - wl[g].min() + fw[g].mean()) for g in groups]
    return out, (
        torch.tensor(centre, dtype=torch.float32, device=x.device),
        torch.tensor(width, dtype=torch.float32, device=x.device),
    )


def _class_weights(card: ModelCard, splits: Sequence[_Split]) -> torch.Tensor:
    """1/√frequency per class over the training labels, mean 1 over the classes present."""
    counts = np.zeros(len(card.output.classes))
    for split in splits:
        index = _class_index(card, split.train)
        counts += np.bincount(index[index >= 0], minlength=len(counts))
    present = counts > 0
    weights = np.ones(len(counts))
    weights[present] = 1 / np.sqrt(counts[present] / counts.sum())
    weights[present] /= weights[present].mean()
    return torch.as_tensor(weights, dtype=torch.float32)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _state_tensors(net: nn.Module, normaliser: Normaliser) -> dict[str, torch.Tensor]:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"normaliser.{k}": v for k, v in normaliser.state_dict().items()})
    return tensors


def _save_checkpoint(
    path: Path, net: nn.Module, normaliser: Normaliser, opt: torch.optim.Optimizer, meta: dict
) -> None:
    """Network, normaliser and AdamW moments as safetensors (no pickle), progress as JSON."""
    tensors = _state_tensors(net, normaliser)
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"opt.{i}.{key}"] = torch.as_tensor(value).reshape(-1)
    save_weights(tensors, path, metadata={"progress": json.dumps(meta)})


def _load_checkpoint(
    path: Path, net: nn.Module, normaliser: Normaliser, opt: torch.optim.Optimizer
) -> dict:
    from safetensors import safe_open

    tensors = load_file(str(path))
    net_state, norm_state = split_state(tensors)
    net.load_state_dict(net_state)
    normaliser.load_state_dict(norm_state)
    state: dict[int, dict[str, torch.Tensor]] = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            shape = () if name == "step" else params[int(i)].shape
            state.setdefault(int(i), {})[name] = value.reshape(shape)
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    with safe_open(str(path), framework="pt") as f:
        return dict(json.loads(f.metadata()["progress"]))


def _picked_bands(card: ModelCard, scenes: Sequence[LabelledScene]) -> list[np.ndarray]:
    """Band indices per scene: the same wavelengths in every scene (batches mix scenes)."""
    picked = [select_bands(s.bands, card.input, model=card.name) for s in scenes]
    first = scenes[0].bands.wavelengths[picked[0]]
    for scene, p in zip(scenes[1:], picked[1:], strict=True):
        if len(p) != len(first) or np.abs(scene.bands.wavelengths[p] - first).max() > 10:
            raise ModelError(
                f"scene {scene.name} has other bands than {scenes[0].name}",
                where="scenes",
                fix="train on scenes of one sensor",
            )
    return picked


def train(
    card: ModelCard,
    scenes: Sequence[LabelledScene],
    *,
    out: str | Path,
    options: TrainOptions | None = None,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``card``'s network on ``scenes``; write ``out/<name>.safetensors`` and its card.

    With ``options.lora_rank`` the card must have trained weights: they are the starting point
    and only LoRA factors and the head are trained.

    Raises
    ------
    ModelError
        No scenes, no network in the card, scenes with different bands, or LoRA without
        weights to start from.
    """
    options = options or TrainOptions()
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not scenes:
        raise ModelError("no training scenes", where="scenes", fix="give at least one scene")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    picked = _picked_bands(card, scenes)
    rng = np.random.default_rng([options.seed, 0])
    splits = [_split(s, p, options, rng) for s, p in zip(scenes, picked, strict=True)]
    net = build_network(card, len(picked[0]))
    sample = np.concatenate([s.image[:, s.valid].T[::97] for s in splits])
    assert card.network is not None
    normaliser = fit_normaliser(card.network.normaliser, sample)
    if options.lora_rank:
        if card.weights is None:
            raise ModelError(
                "LoRA fine-tuning starts from trained weights; the card has none",
                where=card.name,
                fix="train the model first, or drop --lora",
            )
        net_state, norm_state = split_state(load_weights(weights_path(card)))
        net.load_state_dict(net_state)
        normaliser.load_state_dict(norm_state)
        add_lora(net, rank=options.lora_rank)
    weights = _class_weights(card, splits) if options.class_weighting else None
    runner = _Runner(net, normaliser, band_subset(scenes[0].bands, picked[0]), device, weights)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=options.weight_decay)
    total = options.epochs * options.steps_per_epoch
    warmup = options.warmup_epochs * options.steps_per_epoch
    val_chips = _chips(splits, "validation", 4 * options.batch, options, rng)
    checkpoint = out / "checkpoint.safetensors"
    meta: dict[str, Any] = {"epoch": 0, "best": math.inf, "best_epoch": 0, "bad": 0, "history": []}
    if options.resume and checkpoint.exists():
        meta = _load_checkpoint(checkpoint, net, normaliser, opt)
    done = meta["epoch"] * options.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s + done, total, warmup))
    best_path = out / f"{card.name}.safetensors"
    for epoch in range(meta["epoch"], options.epochs):
        if meta["bad"] >= options.patience:
            break
        start = time.perf_counter()
        epoch_rng = np.random.default_rng([options.seed, epoch + 1])
        chips = _chips(splits, "train", options.steps_per_epoch * options.batch, options, epoch_rng)
        net.train()
        losses = []
        for step in range(options.steps_per_epoch):
            batch = chips[step * options.batch : (step + 1) * options.batch]
            x, y = _batch(splits, batch, "train", card, options, epoch_rng)
            resample = options.band_resampling and epoch_rng.random() < 0.5
            loss = runner.loss(x, y, epoch_rng if resample else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        net.eval()
        with torch.no_grad():
            val = [
                float(runner.loss(*_batch(splits, val_chips[i : i + options.batch], "validation",
                                          card, options, None)))
                for i in range(0, len(val_chips), options.batch)
            ]  # fmt: skip
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "validation_loss": float(np.mean(val)),
            "seconds": time.perf_counter() - start,
        }
        meta["history"].append(record)
        if record["validation_loss"] < meta["best"] - 1e-4:
            meta.update(best=record["validation_loss"], best_epoch=epoch + 1, bad=0)
            save_weights(_state_tensors(net, normaliser), best_path)
        else:
            meta["bad"] += 1
        meta["epoch"] = epoch + 1
        _save_checkpoint(checkpoint, net, normaliser, opt, meta)
        if progress is not None:
            progress(epoch + 1, options.epochs, record)
    total_params = count_parameters(net)
    trainable_params = sum(p.numel() for p in trainable)
    sha = _finalise(best_path, card, len(picked[0]), options.lora_rank)
    card_path = out / f"{card.name}.toml"
    save_card(_trained_card(card, scenes[0], picked[0], best_path, sha, options), card_path)
    return TrainResult(
        best_path, card_path, int(meta["best_epoch"]), float(meta["best"]), int(meta["epoch"]),
        trainable_params, total_params, list(meta["history"]),
    )  # fmt: skip


def _finalise(path: Path, card: ModelCard, in_channels: int, lora_rank: int | None) -> str:
    """The SHA-256 of the best weights, after merging LoRA adapters (if any) into plain layers."""
    if not lora_rank:
        return sha256_of(path)
    net_state, norm_state = split_state(load_weights(path))
    net = build_network(card, in_channels)
    add_lora(net, rank=lora_rank)
    net.load_state_dict(net_state)
    merge_lora(net)
    merged = {f"net.{k}": v for k, v in net.state_dict().items()}
    merged.update({f"normaliser.{k}": v for k, v in norm_state.items()})
    return save_weights(merged, path)


def _trained_card(
    card: ModelCard,
    scene: LabelledScene,
    picked: np.ndarray,
    weights: Path,
    sha: str,
    options: TrainOptions,
) -> ModelCard:
    """The card of the trained model: its weights, and the exact bands a fixed-band model read."""
    update: dict[str, Any] = {
        "weights": WeightsRef(
            file=str(weights.resolve()), sha256=sha, trained_with=_command(card, options)
        ),
        "options": {**card.options, "in_channels": len(picked)},
    }
    assert card.network is not None
    if card.network.normaliser != "reflectance":
        wavelengths = tuple(round(float(w), 2) for w in scene.bands.wavelengths[picked])
        update["input"] = card.input.model_copy(
            update={
                "band_selection": "nearest",
                "wavelengths_nm": wavelengths,
                "wavelength_range_nm": None,
                "wavelength_ranges_nm": None,
            }
        )
    return card.model_copy(update=update)


def _command(card: ModelCard, options: TrainOptions) -> str:
    flags = f"--epochs {options.epochs} --seed {options.seed}"
    if options.labels_fraction is not None:
        flags += f" --labels-fraction {options.labels_fraction}"
    if options.lora_rank:
        flags += f" --lora {options.lora_rank}"
    return f"spectraflow train {card.name} {flags}"


def evaluate(
    model: LearnedModel, scenes: Sequence[LabelledScene], *, rows_from: float = 0.0
) -> dict[str, float | None]:
    """Scores of ``model`` on ``scenes``: OA, kappa, per-class F1 and mIoU; plume F1.

    ``rows_from`` (0–1) scores only the rows from that fraction of each scene down (e.g. 0.8:
    the validation rows :func:`train` held out).
    """
    card = model.card
    n = len(card.output.classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    plume_truth, plume_pred = [], []
    for scene in scenes:
        probs = model.predict_array(scene.reflectance, scene.bands)
        predicted = model.classify(probs)
        cut = round(scene.labels.shape[0] * rows_from)
        truth = scene.labels[cut:]
        predicted = np.where(scene.valid[cut:], predicted[cut:], 0).astype(np.uint8)
        index_truth, index_pred = _class_index(card, truth), _class_index(card, predicted)
        keep = (index_truth >= 0) & (index_pred >= 0)
        confusion += confusion_matrix(index_truth[keep], index_pred[keep], n, ignore=None, first=0)
        plume_truth.append(truth[keep] == PLUME)
        plume_pred.append(predicted[keep] == PLUME)
    names = [c.name for c in card.output.classes]
    scores = classification_scores(confusion, names).as_dict()
    if card.options.get("labels") == "plume":
        detection = detection_scores(np.concatenate(plume_truth), np.concatenate(plume_pred))
        scores.update(detection.as_dict(prefix="plume_"))
    return scores
