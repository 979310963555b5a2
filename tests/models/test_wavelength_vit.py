"""Wavelength-conditioned ViT: any band set, spectral-integral embedding, both backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save

from spectraflow.errors import BandMismatchError
from spectraflow.models.layers.lora import add_lora, count_parameters
from spectraflow.models.wavelength_vit import WavelengthViT, band_weights
from spectraflow.sensors.emit import emit_band_table
from spectraflow.sensors.enmap import enmap_band_table
from spectraflow.sensors.sentinel2 import sentinel2_band_table

Bands = tuple[torch.Tensor, torch.Tensor]
BACKBONES = ("vit", "hierarchical")


def _bands(wavelength: np.ndarray, fwhm: np.ndarray) -> Bands:
    return torch.tensor(wavelength, dtype=torch.float32), torch.tensor(fwhm, dtype=torch.float32)


def _sentinel2_l1c() -> Bands:
    # The 12 L2A bands plus B10 (cirrus, 1375 nm, 30 nm wide): the 13 bands of L1C.
    table = sentinel2_band_table()
    return _bands(np.append(table.wavelengths, 1375.0), np.append(table.fwhms, 30.0))


BAND_SETS: dict[str, Bands] = {
    "sentinel2": _sentinel2_l1c(),
    "synthetic48": _bands(np.linspace(450.0, 2400.0, 48), np.full(48, 40.0)),
    "enmap": _bands(enmap_band_table().wavelengths, enmap_band_table().fwhms),
    "emit": _bands(emit_band_table().wavelengths, emit_band_table().fwhms),
}


def _model(backbone: str = "vit", **kwargs: int) -> WavelengthViT:
    torch.manual_seed(0)
    return WavelengthViT(224, 5, backbone=backbone, **kwargs).eval()  # type: ignore[arg-type]


def _smooth_spectrum(wavelength: torch.Tensor) -> torch.Tensor:
    """Vegetation-like reflectance: a red edge at 715 nm and a broad NIR–SWIR hump."""
    red_edge = torch.sigmoid((wavelength - 715.0) / 20.0)
    return 0.05 + 0.3 * red_edge * torch.exp(-(((wavelength - 1400.0) / 900.0) ** 2))


def _tile(spectrum: torch.Tensor, size: int = 32) -> torch.Tensor:
    """A tile of one spectrum with spatial texture (a brightness factor, the same per band)."""
    g = torch.Generator().manual_seed(1)
    texture = 1.0 + 0.3 * torch.rand(1, 1, size, size, generator=g)
    return spectrum[None, :, None, None] * texture


@pytest.mark.parametrize("backbone", BACKBONES)
def test_one_set_of_weights_reads_every_band_set(backbone: str) -> None:
    model = _model(backbone)
    for name, (wl, fwhm) in BAND_SETS.items():
        x = torch.rand(2, len(wl), 32, 32)
        with torch.no_grad():
            out = model(x, wl, fwhm)
        assert out.shape == (2, 5, 32, 32), name
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert not torch.allclose(out[0], out[1])  # two different tiles, two different maps


def test_wavelengths_as_float64_and_any_band_count() -> None:
    model = _model()
    wl = torch.linspace(400.0, 2400.0, 7, dtype=torch.float64)
    out = model(torch.rand(1, 7, 16, 24), wl, torch.full((7,), 10.0, dtype=torch.float64))
    assert out.shape == (1, 5, 16, 24)


def test_band_weights_are_a_quadrature() -> None:
    # Uniform dense sampling: every interior band owns one spacing (midpoint rule).
    wl = torch.linspace(400.0, 2500.0, 211, dtype=torch.float64)
    w = band_weights(wl, torch.full_like(wl, 10.0))
    assert w.sum().item() == pytest.approx(1.0)
    assert torch.allclose(w[1:-1], torch.full_like(w[1:-1], w[100].item()))
    # Twice the bands over the same range: half the weight each, the same integral of a smooth f.
    wl2 = torch.linspace(400.0, 2500.0, 421, dtype=torch.float64)
    w2 = band_weights(wl2, torch.full_like(wl2, 5.0))
    f = lambda lam: torch.cos(lam / 300.0)  # noqa: E731
    assert (w * f(wl)).sum().item() == pytest.approx((w2 * f(wl2)).sum().item(), abs=2e-3)
    # A duplicated band splits its cell; order does not matter.
    dup = torch.cat([wl, wl[50:51]])
    wd = band_weights(dup, torch.full_like(dup, 10.0))
    assert (wd[50] + wd[-1]).item() == pytest.approx(w[50].item(), rel=1e-9)
    perm = torch.randperm(len(wl), generator=torch.Generator().manual_seed(0))
    assert torch.equal(band_weights(wl[perm], torch.full_like(wl, 10.0)), w[perm])


def test_embedding_is_a_spectral_integral_not_a_band_sum() -> None:
    # Tolerance: EnMAP (224 bands, 418–2445 nm, gaps at 1390–1449 and 1780–1968 nm) and EMIT
    # (285 bands, 381–2493 nm) estimate the mean over ranges whose extents differ by ~4 %, and
    # the nearest-band bridge across EnMAP's gaps misses kernel structure (the wavelength code
    # goes down to 50 nm periods), so the two embeddings of one surface differ by ~3 %; 6 % is
    # the bound. The check must reject the designs the integral replaces: a plain band sum
    # (EMIT/EnMAP = 1.27× the bands) and an unweighted band mean (EMIT samples the water-vapour
    # regions EnMAP drops) both exceed it.
    model = _model()

    def embedding(name: str, weighting: str) -> torch.Tensor:
        wl, fwhm = BAND_SETS[name]
        with torch.no_grad():
            kernel, bias, _ = model.hyper(wl, fwhm)
        weights = {
            "integral": band_weights(wl, fwhm),
            "sum": torch.ones_like(wl),
            "mean": torch.full_like(wl, 1.0 / len(wl)),
        }[weighting]
        patch = ((weights * _smooth_spectrum(wl))[:, None, None, None] * kernel).sum(0)
        return torch.cat([patch.flatten(), weights @ bias])

    def difference(weighting: str) -> float:
        a, b = embedding("emit", weighting), embedding("enmap", weighting)
        return ((a - b).norm() / b.norm()).item()

    assert difference("integral") < 0.06
    assert difference("sum") > 0.2
    assert difference("mean") > 0.06


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("surface", ["flat", "smooth"])
def test_same_surface_gives_the_same_output_on_enmap_and_emit(backbone: str, surface: str) -> None:
    # Yardstick: the output change when the surface gets 20 % darker. Swapping EnMAP for EMIT
    # (same surface) moves the output ~0.3× that much at initialisation (the embeddings differ
    # by ~3 %, see above); a band sum would shift the embedding by > 27 %, more than the
    # darkening itself. Bound: half the yardstick.
    model = _model(backbone)

    def run(name: str, scale: float = 1.0) -> torch.Tensor:
        wl, fwhm = BAND_SETS[name]
        spectrum = torch.full_like(wl, 0.3) if surface == "flat" else _smooth_spectrum(wl)
        with torch.no_grad():
            out: torch.Tensor = model(_tile(scale * spectrum), wl, fwhm)
        return out

    enmap = run("enmap")
    yardstick = (run("enmap", 0.8) - enmap).abs().max().item()
    sensor_swap = (run("emit") - enmap).abs().max().item()
    assert yardstick > 1e-3
    assert sensor_swap < 0.5 * yardstick


@pytest.mark.parametrize("backbone", BACKBONES)
def test_band_order_does_not_matter(backbone: str) -> None:
    model = _model(backbone)
    wl, fwhm = BAND_SETS["enmap"]
    x = torch.rand(1, len(wl), 32, 32, generator=torch.Generator().manual_seed(3))
    perm = torch.randperm(len(wl), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            model(x[:, perm], wl[perm], fwhm[perm]), model(x, wl, fwhm), atol=1e-5, rtol=0
        )


def test_duplicated_bands_do_not_change_the_output() -> None:
    model = _model()
    wl, fwhm = BAND_SETS["sentinel2"]
    x = torch.rand(1, len(wl), 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        doubled = model(torch.cat([x, x], 1), torch.cat([wl, wl]), torch.cat([fwhm, fwhm]))
        torch.testing.assert_close(doubled, model(x, wl, fwhm), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("wavelengths", "fwhm", "match"),
    [
        (torch.linspace(400, 2400, 12), torch.full((13,), 10.0), "wavelengths_nm has shape"),
        (torch.linspace(400, 2400, 13), torch.full((14,), 10.0), "fwhm_nm has shape"),
        (torch.linspace(400, 2400, 13)[None], torch.full((13,), 10.0), r"\(1, 13\)"),
        (torch.linspace(400, 2400, 13), torch.zeros(13), "non-positive"),
        (torch.full((13,), float("nan")), torch.full((13,), 10.0), "non-finite"),
    ],
)
def test_bad_band_metadata_is_refused(
    wavelengths: torch.Tensor, fwhm: torch.Tensor, match: str
) -> None:
    with pytest.raises(BandMismatchError, match=match) as info:
        _model()(torch.rand(1, 13, 16, 16), wavelengths, fwhm)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("backbone", "multiple"), [("vit", 4), ("hierarchical", 32)])
def test_size_multiple_is_enforced(backbone: str, multiple: int) -> None:
    model = _model(backbone)
    assert model.size_multiple == multiple
    wl, fwhm = BAND_SETS["sentinel2"]
    with pytest.raises(ValueError, match=f"multiple of {multiple}"):
        model(torch.rand(1, 13, multiple, multiple + 2), wl, fwhm)
    assert model(torch.rand(1, 13, multiple, 2 * multiple), wl, fwhm).shape[-2:] == (
        multiple,
        2 * multiple,
    )


@pytest.mark.parametrize("backbone", BACKBONES)
def test_batch_independent(backbone: str) -> None:
    model = _model(backbone)
    wl, fwhm = BAND_SETS["synthetic48"]
    x = torch.rand(3, 48, 32, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        batched = model(x, wl, fwhm)
        single = torch.cat([model(x[i : i + 1], wl, fwhm) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_every_parameter(backbone: str) -> None:
    model = _model(backbone).train()
    wl, fwhm = BAND_SETS["synthetic48"]
    x = torch.rand(2, 48, 32, 32, generator=torch.Generator().manual_seed(7))
    target = torch.randint(0, 5, (2, 32, 32), generator=torch.Generator().manual_seed(8))
    torch.nn.functional.cross_entropy(model(x, wl, fwhm), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("backbone", BACKBONES)
def test_weights_are_small(backbone: str) -> None:
    model = _model(backbone)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    assert len(blob) < 10 * 1024 * 1024
    assert count_parameters(model) < 2_500_000


def test_lora_adapts_attention_and_trains_the_head() -> None:
    model = _model()
    total = count_parameters(model)
    assert add_lora(model, rank=4) == 12  # qkv and proj of 6 blocks
    trainable = count_parameters(model, trainable_only=True)
    assert trainable < 0.2 * total
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.hyper.parameters())
