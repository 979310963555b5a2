"""Learned models: a network from its card, with band selection, input scaling and weights.

A learned model's card names its architecture (``network.architecture``, built as
``Class(in_channels, num_classes, **config)``), how reflectance is scaled before it
(``network.normaliser``) and, once trained, its safetensors weights. The weights file holds the
network's parameters under ``net.`` and the input scaling under ``normaliser.``, so a model
is one file that cannot be paired with the wrong statistics.

:class:`LearnedModel` is what :func:`spectraflow.models.load_model` returns for such a card:
``bands(table)`` picks the bands it reads, ``forward`` maps a batch of tiles to class
probabilities, and ``predict_array`` runs a whole (small) scene in tiles with a halo.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import ModelError
from spectraflow.inference.grid import TileGrid
from spectraflow.inference.tiled import TilePlan, predict_image
from spectraflow.models.bands import select_bands
from spectraflow.models.card import ModelCard
from spectraflow.models.weights import WEIGHTS_DIR, load_weights
from spectraflow.sensors.bands import BandTable

__all__ = ["LearnedModel", "Normaliser", "build", "build_network", "fit_normaliser"]

# Clip ranges after scaling: standardised values beyond ±6σ are outliers (glint, bad pixels).
_CLIP = {"standardise": (-6.0, 6.0), "robust-max": (0.0, 1.0), "reflectance": (-6.0, 6.0)}


class Normaliser(nn.Module):
    """``clip((x − offset) / scale)`` per band, then 0 where a value was not finite.

    ``offset`` and ``scale`` have one value per band (``"standardise"``, ``"robust-max"``) or a
    single value for any band count (``"reflectance"``: every band shifted and scaled alike,
    which keeps spectra comparable across sensors).
    """

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, kind: str, offset: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.kind = kind
        self.low, self.high = _CLIP[kind]
        self.register_buffer("offset", offset.float().reshape(-1))
        self.register_buffer("scale", scale.float().reshape(-1).clamp(min=1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` reflectance (NaN allowed) to the network's input."""
        shape = (1, -1, 1, 1)
        y = (x - self.offset.view(shape)) / self.scale.view(shape)
        return torch.nan_to_num(y.clamp(self.low, self.high), nan=0.0)


def fit_normaliser(kind: str, pixels: np.ndarray) -> Normaliser:
    """The normaliser of ``kind`` for training ``pixels`` (N, C) (finite values only)."""
    finite = pixels[np.isfinite(pixels).all(axis=1)]
    if len(finite) == 0:
        raise ModelError(
            "no finite training pixel to fit the input scaling",
            where="training scenes",
            fix="check the cubes' valid masks and band selection",
        )
    if kind == "reflectance":
        offset, scale = np.array([finite.mean()]), np.array([finite.std()])
    elif kind == "standardise":
        offset, scale = finite.mean(axis=0), finite.std(axis=0)
    else:  # robust-max
        offset, scale = np.zeros(finite.shape[1]), np.percentile(finite, 99, axis=0)
    return Normaliser(kind, torch.as_tensor(offset), torch.as_tensor(scale))


def build_network(card: ModelCard, in_channels: int) -> nn.Module:
    """The untrained network of ``card`` for ``in_channels`` input bands.

    Raises
    ------
    ModelError
        The card has no network, or its architecture cannot be imported.
    """
    if card.network is None:
        raise ModelError(
            "the model is not a learned model (its card has no [network])",
            where=card.name,
            fix="train one of the learned models (spectraflow models list)",
        )
    module, _, name = card.network.architecture.partition(":")
    try:
        cls = getattr(importlib.import_module(f"spectraflow.models.{module}"), name)
    except (ImportError, AttributeError) as err:
        raise ModelError(
            f"architecture {card.network.architecture!r} not found",
            where=card.name,
            fix="correct network.architecture in the card (module:Class under spectraflow.models)",
        ) from err
    net: nn.Module = cls(in_channels, len(card.output.classes), **card.network.config)
    return net


class LearnedModel:
    """A trained network with its card, band selection and input scaling.

    Use :func:`spectraflow.models.load_model`; ``forward`` and ``predict_array`` run in
    inference mode on the model's device.
    """

    def __init__(
        self, card: ModelCard, net: nn.Module, normaliser: Normaliser, *, device: torch.device
    ) -> None:
        self.card = card
        self.device = device
        self.net = net.to(device).eval()
        self.normaliser = normaliser.to(device)
        self.size_multiple = int(getattr(net, "size_multiple", 1))
        self.conditioned = bool(getattr(net, "wavelength_conditioned", False))
        self.class_values = np.array([c.value for c in card.output.classes], dtype=np.uint8)

    def __repr__(self) -> str:
        return f"LearnedModel({self.card.name!r}, device={self.device})"

    def bands(self, table: BandTable) -> np.ndarray:
        """Indices of the bands of ``table`` the model reads (raises BandMismatchError)."""
        return select_bands(table, self.card.input, model=self.card.name)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, table: BandTable | None = None) -> torch.Tensor:
        """Class probabilities ``[B, K, H, W]`` for reflectance ``x`` ``[B, C, H, W]``.

        ``x`` holds the selected bands (see :meth:`bands`); NaN marks missing values. Tiles
        are padded (reflect) to the network's size multiple and cropped back. A
        wavelength-conditioned network also needs the band ``table`` of those bands.
        """
        h, w = x.shape[-2:]
        m = self.size_multiple
        pad = (0, -w % m, 0, -h % m)
        z = self.normaliser(x.to(self.device, torch.float32))
        if any(pad):
            z = F.pad(z, pad, mode="reflect" if min(h, w) > max(pad) else "replicate")
        if self.conditioned:
            if table is None:
                raise ModelError(
                    "a wavelength-conditioned model needs the bands' wavelengths",
                    where=self.card.name,
                    fix="pass the band table of the selected bands",
                )
            wl = torch.as_tensor(table.wavelengths, dtype=torch.float32, device=self.device)
            fw = torch.as_tensor(table.fwhms, dtype=torch.float32, device=self.device)
            logits = self.net(z, wl, fw)
        else:
            logits = self.net(z)
        return logits[..., :h, :w].float().softmax(1)

    def predict_array(
        self, reflectance: np.ndarray, table: BandTable, *, batch: int = 8
    ) -> np.ndarray:
        """Class probabilities (K, rows, cols) for a whole scene held in memory.

        ``reflectance`` (bands, rows, cols) has every band of ``table``. Tiles and blending
        are those of ``predict_cube`` (:mod:`spectraflow.inference.tiled`): the card's tile
        size and halo, Hann-blended over half the halo.
        """
        picked = self.bands(table)
        sub = band_subset(table, picked) if self.conditioned else None
        halo = self.card.input.halo
        grid = TileGrid.plan(
            (reflectance.shape[1], reflectance.shape[2]),
            tile=max(self.card.input.tile_size - 2 * halo, 1),
            halo=halo,
            size_multiple=self.size_multiple,
        )

        def run(x: np.ndarray) -> np.ndarray:
            return self.forward(torch.from_numpy(x), sub).cpu().numpy()

        image = np.ascontiguousarray(reflectance[picked], dtype=np.float32)
        plan = TilePlan(grid, margin=halo // 2, batch=batch)
        return predict_image(image, plan=plan, run=run, channels=len(self.class_values))

    def classify(self, probabilities: np.ndarray) -> np.ndarray:
        """Class values (uint8) of the most probable class; 0 where probabilities are NaN."""
        values = self.class_values[probabilities.argmax(axis=0)]
        return np.where(np.isfinite(probabilities).all(axis=0), values, 0).astype(np.uint8)


def band_subset(table: BandTable, picked: np.ndarray) -> BandTable:
    """The rows ``picked`` of a band table."""
    return BandTable.from_arrays(table.wavelengths[picked], table.fwhms[picked])


def weights_path(card: ModelCard) -> Path:
    """Where the card's weights file lives (shipped weights: ``spectraflow/models/weights/``)."""
    assert card.weights is not None
    path = Path(card.weights.file)
    return path if path.is_absolute() else WEIGHTS_DIR / path


def split_state(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A weights file's tensors as the network's and the normaliser's state dicts."""
    net = {k.removeprefix("net."): v for k, v in tensors.items() if k.startswith("net.")}
    norm = {
        k.removeprefix("normaliser."): v for k, v in tensors.items() if k.startswith("normaliser.")
    }
    return net, norm


def build(card: ModelCard, *, device: torch.device) -> LearnedModel:
    """Factory named by the learned models' cards: the network with its shipped weights.

    Raises
    ------
    ModelError
        The card has no weights yet, or the file is missing, corrupt or does not fit.
    """
    if card.weights is None or card.network is None:
        raise ModelError(
            "the model has no trained weights yet",
            where=card.name,
            fix=f"train it: spectraflow train {card.name} ... (or make weights)",
        )
    path = weights_path(card)
    net_state, norm_state = split_state(load_weights(path, sha256=card.weights.sha256))
    in_channels = int(card.options.get("in_channels", 0)) or len(card.input.wavelengths_nm or ())
    net = build_network(card, in_channels)
    normaliser = Normaliser(card.network.normaliser, norm_state["offset"], norm_state["scale"])
    try:
        net.load_state_dict(net_state)
    except RuntimeError as err:
        raise ModelError(
            f"weights do not fit the card's network: {str(err).splitlines()[0]}",
            where=str(path),
            fix="re-train the model, or restore the card that was written with these weights",
        ) from err
    return LearnedModel(card, net, normaliser, device=device)
