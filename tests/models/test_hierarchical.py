"""FasterViT-style hierarchical attention: shapes, batch independence, global reach, LoRA names."""

from __future__ import annotations

import pytest
import torch

from spectraflow.errors import ConfigError
from spectraflow.models.layers.hierarchical import HierarchicalAttentionBlock
from spectraflow.models.layers.lora import LoRALinear, add_lora


def _block(**kwargs: int) -> HierarchicalAttentionBlock:
    torch.manual_seed(0)
    return HierarchicalAttentionBlock(32, 4, **kwargs).eval()


@pytest.mark.parametrize(
    ("window", "carriers", "shape"),
    [(8, 1, (16, 16)), (4, 1, (8, 12)), (4, 4, (16, 8)), (8, 16, (8, 24))],
)
def test_shape_and_dtype_preserved(window: int, carriers: int, shape: tuple[int, int]) -> None:
    block = _block(window=window, carriers_per_window=carriers)
    x = torch.randn(2, 32, *shape)
    out = block(x)
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x)


def test_batch_independent() -> None:
    block = _block(window=4, carriers_per_window=4)
    torch.manual_seed(1)
    x = torch.randn(3, 32, 8, 16)
    with torch.no_grad():
        batched = block(x)
        single = torch.cat([block(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_carriers_carry_information_across_windows() -> None:
    # Window attention alone (plus a 3 × 3 position convolution) could not see a change three
    # windows away; the carrier tokens' global attention must carry it.
    block = _block(window=4)
    torch.manual_seed(2)
    x = torch.randn(1, 32, 16, 16)
    far = x.clone()
    far[:, :, 12:, 12:] += 3.0  # bottom-right window only
    with torch.no_grad():
        a, b = block(x), block(far)
    top_left = (a - b)[:, :, :4, :4].abs().max().item()
    assert top_left > 1e-3


def test_gradients_reach_every_parameter() -> None:
    block = _block(window=4, carriers_per_window=4).train()
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    block(x).square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_map_must_be_a_multiple_of_the_window() -> None:
    block = _block(window=8)
    with pytest.raises(ValueError, match="multiple of the window 8"):
        block(torch.randn(1, 32, 16, 12))


@pytest.mark.parametrize(("window", "carriers"), [(8, 3), (6, 16), (8, 0), (0, 1)])
def test_bad_carrier_layout_is_refused(window: int, carriers: int) -> None:
    with pytest.raises(ConfigError):
        HierarchicalAttentionBlock(32, 4, window=window, carriers_per_window=carriers)


def test_lora_finds_both_attention_paths() -> None:
    block = _block()
    wrapped = add_lora(block, targets=("qkv", "proj"), train_also=())
    assert wrapped == 4  # window and carrier attention, qkv and proj each
    assert isinstance(block.carrier_attn.qkv, LoRALinear)
    assert isinstance(block.attn.proj, LoRALinear)
    assert add_lora(_block(), targets=("fc1", "fc2"), train_also=()) == 4
