"""LoLA-SpecViT: shapes, locality of window attention, LoRA fine-tuning and merging."""

from __future__ import annotations

import pytest
import torch

from spectraflow.errors import BandMismatchError
from spectraflow.models.layers.lora import LoRALinear, add_lora, count_parameters, merge_lora
from spectraflow.models.lola_specvit import LoLASpecViT
from spectraflow.models.weights import save_weights


def _model(bands: int = 224, classes: int = 6, **options: int) -> LoLASpecViT:
    torch.manual_seed(0)
    return LoLASpecViT(bands, classes, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("bands", [13, 48, 224, 285])
def test_dense_logits_for_each_band_count(bands: int) -> None:
    model = _model(bands).eval()
    x = torch.rand(2, bands, 32, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 6, 32, 48)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_pixel_tokens_need_no_upsampling() -> None:
    model = _model(48, patch=1).eval()
    assert model.size_multiple == 8
    with torch.no_grad():
        assert model(torch.rand(1, 48, 16, 24)).shape == (1, 6, 16, 24)


def test_band_count_and_size_multiple_are_enforced() -> None:
    model = _model(224)
    assert LoLASpecViT.size_multiple == model.size_multiple == 16
    with pytest.raises(BandMismatchError, match="48 bands"):
        model(torch.rand(1, 48, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, 224, 24, 32))


def test_batch_independence() -> None:
    model = _model(48).eval()
    x = torch.rand(3, 48, 32, 32)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter() -> None:
    model = _model(48).train()
    x = torch.rand(2, 48, 32, 32)
    target = torch.randint(0, 6, (2, 32, 32))
    torch.nn.functional.cross_entropy(model(x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_receptive_field_bounds_what_an_output_sees() -> None:
    # depth 2, 4-token windows, 2-px tokens: a small field that fits in a 64-px tile
    model = _model(13, depth=2, window=4).eval()
    radius = model.receptive_field_px // 2
    assert radius < 32
    x = torch.rand(1, 13, 64, 64)
    rows = torch.arange(64)[:, None]
    cols = torch.arange(64)[None, :]
    with torch.no_grad():
        base = model(x)
        for r, c in [(33, 30), (1, 1)]:  # the corner also checks shifted windows do not wrap
            x2 = x.clone()
            x2[0, :, r, c] += 1.0
            changed = (model(x2) - base).abs().amax(dim=(0, 1)) > 1e-6
            far = torch.maximum((rows - r).abs(), (cols - c).abs()) > radius
            assert changed[r, c]
            assert not changed[far].any()
    assert LoLASpecViT.receptive_field_px == _model().receptive_field_px


def test_weights_are_small(tmp_path) -> None:
    for bands in (224, 285):
        path = tmp_path / f"lola{bands}.safetensors"
        save_weights(_model(bands).state_dict(), path)
        assert path.stat().st_size < 10 * 1024**2


def test_lora_trains_few_parameters_and_only_adapters_and_head() -> None:
    model = _model()
    full = count_parameters(model)
    wrapped = add_lora(model, rank=4)
    assert wrapped == 2 * len(model.blocks)  # qkv and proj of every block
    trainable = count_parameters(model, trainable_only=True)
    assert trainable < 0.2 * full  # > 80 % fewer trainable parameters
    for name, p in model.named_parameters():
        is_factor = name.endswith((".down.weight", ".up.weight"))
        assert p.requires_grad == (is_factor or name.startswith("head.")), name


def test_lora_gradients_reach_only_trainable_parameters() -> None:
    model = _model(48)
    add_lora(model)
    with torch.no_grad():  # non-zero up weights, so the down factors get gradients too
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.up.weight.normal_(0, 0.02)
    x = torch.rand(2, 48, 32, 32)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_merged_lora_equals_unmerged() -> None:
    model = _model(48)
    add_lora(model, rank=4)
    model.eval()
    x = torch.rand(2, 48, 32, 32)
    with torch.no_grad():
        before = model(x)
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.up.weight.normal_(0, 0.05)
        unmerged = model(x)
        assert (unmerged - before).abs().max() > 1e-4  # the low-rank update is not zero
        assert merge_lora(model) == 2 * len(model.blocks)
        merged = model(x)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)
