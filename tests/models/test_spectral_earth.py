"""SpectralEarth adapter + ViT/4: shapes for any band count, batch independence, gradients."""

from __future__ import annotations

import pytest
import torch

from spectraflow.models.layers.lora import count_parameters
from spectraflow.models.spectral_earth import SpectralAdapter, SpectralEarthViT
from spectraflow.models.weights import load_weights, save_weights


def _model(bands: int = 224, classes: int = 7) -> SpectralEarthViT:
    torch.manual_seed(0)
    return SpectralEarthViT(bands, classes)


@pytest.mark.parametrize("bands", [13, 48, 224, 285])
def test_dense_logits_for_each_band_count(bands: int) -> None:
    model = _model(bands).eval()
    x = torch.rand(2, bands, 32, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 7, 32, 48)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_one_model_reads_any_band_count_and_any_tile_size() -> None:
    model = _model(224).eval()
    with torch.no_grad():
        for bands, side in [(48, 16), (224, 64), (285, 32), (3, 8)]:
            assert model(torch.rand(1, bands, side, side)).shape == (1, 7, side, side)
        # float64 weights give float64 logits
        assert model.double()(torch.rand(1, 30, 16, 16, dtype=torch.float64)).dtype == (
            torch.float64
        )


def test_adapter_is_spectral_only_with_fixed_channels() -> None:
    torch.manual_seed(0)
    adapter = SpectralAdapter(channels=128, filters=(8, 16, 16)).eval()
    x = torch.rand(1, 224, 8, 8)
    with torch.no_grad():
        y = adapter(x)
        x2 = x.clone()
        x2[0, :, 3, 5] += 1.0
        changed = (adapter(x2) - y).abs().amax(dim=(0, 1)) > 0
    assert y.shape == (1, 128, 8, 8)
    assert changed[3, 5]
    assert changed.sum() == 1  # no spatial mixing in the adapter
    for bands in (1, 13, 285):
        with torch.no_grad():
            assert adapter(torch.rand(2, bands, 4, 4)).shape == (2, 128, 4, 4)


def test_batch_independence() -> None:
    model = _model().eval()
    x = torch.rand(3, 224, 32, 32)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter() -> None:
    model = _model(48).train()
    x = torch.rand(2, 48, 16, 16)
    target = torch.randint(0, 7, (2, 16, 16))
    torch.nn.functional.cross_entropy(model(x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("side", [30, 33])
def test_size_multiple_is_enforced(side: int) -> None:
    model = _model()
    assert SpectralEarthViT.size_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.rand(1, 224, side, 32))
    with pytest.raises(ValueError, match="not \\[B, C, H, W\\]"):
        model(torch.rand(224, 32, 32))


def test_contract_attributes() -> None:
    model = _model(224, 5)
    assert SpectralEarthViT.wavelength_conditioned is False
    assert SpectralEarthViT.receptive_field_px == 64
    assert isinstance(model.head, torch.nn.Conv2d)
    assert model.head.out_channels == 5
    # the paper's ViT-S/4 backbone is a keyword away (built on the meta device: no memory)
    with torch.device("meta"):
        big = SpectralEarthViT(224, 5, dim=384, depth=12, heads=6)
    assert 21e6 < count_parameters(big.blocks) < 22e6


def test_weights_are_small_and_round_trip(tmp_path) -> None:
    model = _model().eval()
    path = tmp_path / "se.safetensors"
    save_weights(model.state_dict(), path)
    assert path.stat().st_size < 10 * 1024**2
    other = SpectralEarthViT(224, 7)
    other.load_state_dict(load_weights(path))
    other.eval()
    x = torch.rand(1, 224, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))
