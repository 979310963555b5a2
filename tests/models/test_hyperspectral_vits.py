"""HyperSegFormer and HyperEfficientViT: contract, HyperspectralViTs changes, attention maths."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from spectraflow.errors import BandMismatchError, ConfigError
from spectraflow.models.hyper_efficientvit import HyperEfficientViT, LiteMLA
from spectraflow.models.hyper_segformer import EfficientSelfAttention, HyperSegFormer
from spectraflow.models.layers.attention import SelfAttention
from spectraflow.models.layers.lora import LoRALinear, add_lora, count_parameters, merge_lora

Model = HyperSegFormer | HyperEfficientViT
ModelClass = type[HyperSegFormer] | type[HyperEfficientViT]
MODELS: list[ModelClass] = [HyperSegFormer, HyperEfficientViT]
# Attention projections by name: SegFormer's keys/values come from a reduced grid (q, kv).
LORA_TARGETS: dict[ModelClass, tuple[str, ...]] = {
    HyperSegFormer: ("q", "kv", "proj"),
    HyperEfficientViT: ("qkv", "proj"),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # pytest -n 2 on two cores: a second intra-op thread per worker only oversubscribes them,
    # and torch's spinning threads then run these small models ~10× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(cls: ModelClass, in_channels: int = 87, **kwargs: Any) -> Model:
    torch.manual_seed(0)
    return cls(in_channels, 2, **kwargs)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("bands", [13, 48, 87])
def test_shapes_and_dtype(cls: ModelClass, bands: int) -> None:
    model = _model(cls, bands).eval()
    x = torch.rand(2, bands, 32, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, 32, 48)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cls", MODELS)
def test_class_contract(cls: ModelClass) -> None:
    model = _model(cls)
    assert cls.wavelength_conditioned is False
    assert model.size_multiple == cls.size_multiple == 16
    assert cls.receptive_field_px >= 64
    assert isinstance(model.head, nn.Conv2d) and model.head.out_channels == 2


@pytest.mark.parametrize("cls", MODELS)
def test_batch_independence(cls: ModelClass) -> None:
    model = _model(cls).eval()
    x = torch.rand(3, 87, 32, 32)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", MODELS)
def test_gradients_reach_every_parameter(cls: ModelClass) -> None:
    model = _model(cls, 48).train()
    y = model(torch.rand(2, 48, 32, 32))
    torch.nn.functional.cross_entropy(y, torch.randint(0, 2, (2, 32, 32))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


@pytest.mark.parametrize("cls", MODELS)
def test_size_multiple_and_bands_enforced(cls: ModelClass) -> None:
    model = _model(cls, 13).eval()
    with pytest.raises(ValueError, match="multiples of 16") as info:
        model(torch.rand(1, 13, 40, 32))
    assert isinstance(info.value, ConfigError)
    with pytest.raises(BandMismatchError, match="13"):
        model(torch.rand(1, 12, 32, 32))
    with pytest.raises(BandMismatchError):
        model(torch.rand(13, 32, 32))


@pytest.mark.parametrize("cls", MODELS)
def test_original_stride_needs_32_and_still_gives_full_resolution(cls: ModelClass) -> None:
    plain = _model(cls, 13, first_stride=4, spectral_convs=False, upscale=False).eval()
    assert plain.size_multiple == 32
    with torch.no_grad():
        assert plain(torch.rand(1, 13, 32, 64)).shape == (1, 2, 32, 64)
    with pytest.raises(ConfigError, match="multiples of 32"):
        plain(torch.rand(1, 13, 48, 48))
    with pytest.raises(ConfigError, match="first_stride"):
        cls(13, 2, first_stride=3)


def test_segformer_has_a_spectral_conv_before_each_stage() -> None:
    widths = (16, 32, 80, 128)
    with_convs = count_parameters(_model(HyperSegFormer, 87))
    without = count_parameters(_model(HyperSegFormer, 87, spectral_convs=False))
    # One C → C 1 × 1 conv (weights + bias) on each stage's input: the bands, then widths[:-1].
    assert with_convs - without == sum(c * c + c for c in (87, *widths[:-1]))


def test_efficientvit_has_a_spectral_conv_before_stem_and_each_stage() -> None:
    widths = (8, 16, 32, 64, 128)
    with_convs = count_parameters(_model(HyperEfficientViT, 87))
    without = count_parameters(_model(HyperEfficientViT, 87, spectral_convs=False))
    assert with_convs - without == sum(c * c + c for c in (87, *widths[:-1]))


@pytest.mark.parametrize("cls", MODELS)
def test_upscale_block_is_learned_and_at_half_resolution(cls: ModelClass) -> None:
    model = _model(cls, 13).eval()
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.upscale.register_forward_hook(lambda m, i, o: seen.update(up=tuple(i[0].shape))),
        model.head.register_forward_hook(lambda m, i, o: seen.update(head=tuple(o.shape))),
    ]
    with torch.no_grad():
        model(torch.rand(1, 13, 64, 64))
    for hook in hooks:
        hook.remove()
    assert any(p.requires_grad for p in model.upscale.parameters())
    # SegFormer decodes at the stride-2 grid and the block brings it to full resolution;
    # EfficientViT's head works at 1/4 and the block brings it to 1/2.
    if cls is HyperSegFormer:
        assert seen == {"up": (1, 64, 32, 32), "head": (1, 2, 64, 64)}
    else:
        assert seen["up"][-2:] == (16, 16) and seen["head"][-2:] == (32, 32)


def _calibrated(model: nn.Module, bands: int) -> nn.Module:
    """``model`` in eval mode with BatchNorm statistics from a few batches, as after training.

    Fresh BatchNorm layers (mean 0, variance 1) shrink the signal of an untrained model in eval
    mode by orders of magnitude, which would hide what a test looks for.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, bands, 64, 64))
    return model.eval()


@pytest.mark.parametrize("cls", MODELS)
def test_attention_is_global_over_the_tile(cls: ModelClass) -> None:
    model = _calibrated(_model(cls, 13), 13)
    x = torch.rand(1, 13, 64, 64)
    changed = x.clone()
    changed[..., :4, :4] += 1.0
    with torch.no_grad():
        delta = (model(changed) - model(x))[..., -8:, -8:].abs().max()
    # 60 px away: beyond any convolution's reach, only attention carries it.
    assert delta > 1e-3


@pytest.mark.parametrize("cls", MODELS)
def test_zero_input_is_finite(cls: ModelClass) -> None:
    # Masked pixels arrive as 0; a tile of them must not divide by zero in the attention.
    model = _model(cls, 13).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.zeros(1, 13, 32, 32))).all()


def test_efficient_attention_without_reduction_is_self_attention() -> None:
    torch.manual_seed(0)
    ours = EfficientSelfAttention(32, 4, sr_ratio=1)
    reference = SelfAttention(32, 4)
    with torch.no_grad():
        reference.qkv.weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        reference.qkv.bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        reference.proj.load_state_dict(ours.proj.state_dict())
    x = torch.randn(2, 36, 32)
    torch.testing.assert_close(ours(x, 6, 6), reference(x))
    reduced = EfficientSelfAttention(32, 4, sr_ratio=2)
    assert reduced(x, 6, 6).shape == x.shape


def test_lite_mla_is_relu_linear_attention() -> None:
    torch.manual_seed(0)
    mla = LiteMLA(32, head_dim=8).eval()
    x = torch.randn(2, 32, 6, 5)
    # Reference: the explicit N × N form, sum_m (q_n·k_m) v_m / sum_m (q_n·k_m), per head.
    qkv = mla.qkv(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    multi = torch.cat([qkv, mla.aggregate[0](qkv)], dim=1).reshape(2, 8, 24, 30)
    q, k, v = multi.transpose(-1, -2).relu().chunk(3, dim=-1)
    v = multi.transpose(-1, -2)[..., 16:]
    weights = q @ k.transpose(-1, -2)
    out = (weights / (weights.sum(-1, keepdim=True) + 1e-15)) @ v
    out = mla.proj(out.transpose(-1, -2).reshape(2, 64, 6, 5).permute(0, 2, 3, 1))
    expected = mla.proj_norm(out.permute(0, 3, 1, 2))
    torch.testing.assert_close(mla(x), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", MODELS)
def test_lora_targets_attention_and_merges(cls: ModelClass) -> None:
    model = _model(cls, 13).eval()
    wrapped = add_lora(model, targets=LORA_TARGETS[cls])
    assert wrapped >= 4
    assert count_parameters(model, trainable_only=True) < 0.2 * count_parameters(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.up.weight.normal_(0, 0.1)  # a non-trivial adapter
        x = torch.rand(1, 13, 32, 32)
        adapted = model(x)
        merge_lora(model)
        torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", MODELS)
def test_default_weights_under_10_mb(cls: ModelClass, tmp_path: Any) -> None:
    model = _model(cls, 87).eval()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    assert path.stat().st_size < 10_000_000
