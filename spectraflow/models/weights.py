"""Model weights as safetensors files, checked against the card's SHA-256 (never pickle)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from spectraflow.errors import ModelError
from spectraflow.models.card import sha256_of

__all__ = ["WEIGHTS_DIR", "load_weights", "save_weights"]

WEIGHTS_DIR = Path(__file__).with_name("weights")
"""Where shipped weights live (``spectraflow/models/weights/``)."""


def save_weights(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Write ``tensors`` to a safetensors file atomically; return its SHA-256 (for the card)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(contiguous, str(partial), metadata=dict(metadata or {}))
    os.replace(partial, path)
    return sha256_of(path)


def load_weights(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Read a safetensors file, after checking its SHA-256 when one is given.

    Raises
    ------
    ModelError
        The file is missing, corrupt, or its checksum differs from ``sha256``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            "weights file not found",
            where=str(path),
            fix="reinstall spectraflow, or re-train the model with the card's trained_with command",
        )
    if sha256 is not None and (actual := sha256_of(path)) != sha256:
        raise ModelError(
            f"weights checksum {actual[:12]}… differs from the card's {sha256[:12]}…",
            where=str(path),
            fix="the file is corrupt or from another version: reinstall or re-train it",
        )
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise ModelError(
            f"weights file is not a readable safetensors file: {err}",
            where=str(path),
            fix="reinstall spectraflow, or re-train the model",
        ) from err
