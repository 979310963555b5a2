"""Device runtime: a learned model as a batch function ``numpy (B, C, H, W) → (B, K, H, W)``.

What it does for speed, per device:

- CUDA: bf16 autocast, channels-last memory format, pinned host memory with non-blocking
  copies; optionally ``torch.compile`` (static tile shapes compile once).
- every device: one forward at a time per process (:attr:`Runtime.gate`, a lock). Dask's other
  threads meanwhile read, decode and blend the next regions, so reading overlaps compute
  without oversubscribing the cores a forward already uses. Tiled prediction also stacks its
  batches under the gate, so concurrent predictions of one process hold one batch between
  them: memory stays flat however many scenes a flow runs at once.

A runtime pickles as the model's name (when it was loaded by name), so a dask worker loads the
model once and reuses it for every task (see :func:`runtime_for`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from spectraflow.errors import ModelError
from spectraflow.models import load_model
from spectraflow.models.bands import BandTable
from spectraflow.models.learned import LearnedModel

__all__ = ["CPU_BATCH_BYTES", "DEFAULT_BATCH", "Runtime", "default_batch", "runtime_for"]

DEFAULT_BATCH = {"cuda": 16, "mps": 8, "cpu": 4}
"""Most tiles per forward by device type, when the caller gives no batch size."""

CPU_BATCH_BYTES = 160 * 2**20
"""Most input bytes per forward on the CPU: a forward's activations grow with its batch (about
3× its input), and past a few tiles a larger batch is hardly faster on a CPU."""


def default_batch(device_type: str, bands: int, tile_shape: tuple[int, int]) -> int:
    """Tiles per forward: :data:`DEFAULT_BATCH`, on the CPU within :data:`CPU_BATCH_BYTES`.

    A tile is ``bands`` float32 planes of ``tile_shape`` (its input shape, halo included); a
    224-band 256-px EnMAP tile is 59 MB, so two go per CPU forward, and four 12-band
    Sentinel-2 tiles.
    """
    most = DEFAULT_BATCH[device_type]
    if device_type != "cpu":
        return most
    tile_bytes = bands * tile_shape[0] * tile_shape[1] * 4
    return max(1, min(most, CPU_BATCH_BYTES // max(tile_bytes, 1)))


_LOADED: dict[tuple[str, str, bool], Runtime] = {}
_LOADED_LOCK = threading.Lock()


class Runtime:
    """A loaded learned model ready for batched tile inference.

    Parameters
    ----------
    model
        The loaded model (its device is the runtime's device).
    name
        The name or card path it was loaded from, if any: pickling then sends only the name.
    compile
        Wrap the network in ``torch.compile`` (worth it on GPU for long runs).
    """

    def __init__(self, model: LearnedModel, *, name: str | None = None, compile: bool = False):
        self.model = model
        self.name = name
        self.compile = compile
        self.device = model.device
        self._cuda = self.device.type == "cuda"
        self.gate = threading.RLock()
        """Held during a forward; re-entrant so callers can also hold it while stacking."""
        if self._cuda:
            model.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if compile:
            model.net = torch.compile(model.net)  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Callable[..., Runtime], tuple[Any, ...]]:
        if self.name is not None:
            return (runtime_for, (self.name, str(self.device), self.compile))
        if self.compile:
            raise ModelError(
                "a compiled model without a name cannot be sent to other processes",
                where=self.model.card.name,
                fix="pass the model by name or card path, or leave compile off",
            )
        return (Runtime, (self.model,))

    def __call__(self, batch: np.ndarray, table: BandTable | None = None) -> np.ndarray:
        """Class probabilities ``(B, K, H, W)`` float32 of reflectance ``(B, C, H, W)``."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with self.gate:
            if self._cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._cuda):
                probs = self.model.forward(x, table)
            return probs.float().cpu().numpy()


def runtime_for(name: str, device: str | None = None, compile: bool = False) -> Runtime:
    """The runtime of model ``name`` on ``device``, loaded once per process and then reused."""
    key = (name, str(device), compile)
    with _LOADED_LOCK:
        if key not in _LOADED:
            model = load_model(name, device=device)
            if not isinstance(model, LearnedModel):
                raise ModelError(
                    f"{name} is not a learned model",
                    where=name,
                    fix="run models with scene statistics through predict_cube",
                )
            _LOADED[key] = Runtime(model, name=name, compile=compile)
        return _LOADED[key]
