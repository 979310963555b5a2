"""The model registry: cards shipped in ``spectraflow/models/cards/``, models built on demand.

``list_models()`` reads cards only (no torch work, no weights); ``load_model(name)`` imports the
card's factory and builds the model on a device: the given one, else CUDA when present, else CPU.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import torch

from spectraflow.errors import ModelError
from spectraflow.models.card import ModelCard, load_card

__all__ = ["CARDS_DIR", "get_card", "list_models", "load_model", "resolve_device"]

CARDS_DIR = Path(__file__).with_name("cards")


@cache
def _cards() -> dict[str, ModelCard]:
    cards = [load_card(p) for p in sorted(CARDS_DIR.glob("*.toml"))]
    return {c.name: c for c in cards}


def list_models() -> list[ModelCard]:
    """Cards of every registered model, by name."""
    return list(_cards().values())


def get_card(name: str) -> ModelCard:
    """The card of model ``name``, or the card file at path ``name`` (a model you trained).

    Raises
    ------
    ModelError
        No model has that name (the message lists the registered ones).
    """
    if name.endswith(".toml") and Path(name).is_file():
        return load_card(Path(name))
    cards = _cards()
    if name not in cards:
        raise ModelError(
            f"unknown model {name!r}",
            where="model",
            fix=f"use one of: {', '.join(cards)} (spectraflow models list), or a card file",
        )
    return cards[name]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device; None picks the best available: CUDA, then MPS, then CPU.

    Raises
    ------
    ModelError
        CUDA was asked for but is not available.
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            "CUDA was requested but torch sees no GPU",
            where=f"device={device}",
            fix="pass device='cpu', or install a CUDA build of torch on a GPU machine",
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(
            "MPS was requested but torch sees no Apple GPU",
            where=f"device={device}",
            fix="pass device='cpu', or run on Apple silicon with an MPS build of torch",
        )
    return resolved


def load_model(name: str, *, device: str | torch.device | None = None) -> Any:
    """Build model ``name`` (or the card file ``name``) on ``device`` (default: CUDA, else CPU).

    The model has a ``card`` attribute and the methods its card's contract implies (see
    :mod:`spectraflow.models.matched_filter` for a model with scene statistics).

    Raises
    ------
    ModelError
        Unknown name, unavailable device, or weights missing or corrupt.
    """
    card = get_card(name)
    module_name, _, attr = card.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(card, device=resolve_device(device))
