"""Low-rank adaptation (Hu et al. 2021, "LoRA") of a model's linear layers.

``add_lora`` wraps the ``nn.Linear`` layers whose names end in one of ``targets`` in
:class:`LoRALinear` and freezes everything else except the modules named in ``train_also``
(typically the head). ``merge_lora`` folds the low-rank update back into plain ``nn.Linear``
layers, so a fine-tuned model runs at the speed of the original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LoRALinear", "add_lora", "count_parameters", "merge_lora"]


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * up(down(x))`` with ``base`` frozen and ``up`` starting at 0."""

    def __init__(self, base: nn.Linear, *, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)  # the adapted model starts as the base model
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The base layer plus the scaled low-rank update."""
        return self.base(x) + self.scale * self.up(self.down(x))

    def merged(self) -> nn.Linear:
        """A plain linear layer computing the same function."""
        merged = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.scale * self.up.weight @ self.down.weight)
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def add_lora(
    model: nn.Module,
    *,
    rank: int = 4,
    alpha: float | None = None,
    targets: Sequence[str] = ("qkv", "proj"),
    train_also: Sequence[str] = ("head",),
) -> int:
    """Adapt ``model`` in place; returns the number of layers wrapped.

    Every parameter is frozen except the LoRA factors and those of modules whose name starts
    with one of ``train_also``.

    Raises
    ------
    ValueError
        No linear layer matches ``targets``.
    """
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in targets
    ]
    if not names:
        raise ValueError(f"no nn.Linear layer is named one of {tuple(targets)}")
    model.requires_grad_(False)
    for name in names:
        base = model.get_submodule(name)
        assert isinstance(base, nn.Linear)
        _replace(model, name, LoRALinear(base, rank=rank, alpha=alpha or 2.0 * rank))
    for name, module in model.named_modules():
        if any(name == t or name.startswith(f"{t}.") for t in train_also):
            module.requires_grad_(True)
    return len(names)


def merge_lora(model: nn.Module) -> int:
    """Replace each :class:`LoRALinear` in ``model`` by its merged layer; returns the count."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        lora = model.get_submodule(name)
        assert isinstance(lora, LoRALinear)
        _replace(model, name, lora.merged())
    return len(names)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
