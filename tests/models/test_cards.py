"""Model cards, the registry, band selection and safetensors weights."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from spectraflow.cli import app
from spectraflow.errors import BandMismatchError, ModelError
from spectraflow.models import get_card, list_models, load_card, load_model
from spectraflow.models.bands import select_bands
from spectraflow.models.card import InputContract
from spectraflow.models.weights import load_weights, save_weights
from spectraflow.sensors.emit import emit_band_table
from spectraflow.sensors.enmap import enmap_band_table
from spectraflow.sensors.sentinel2 import sentinel2_band_table


def test_shipped_cards_validate_and_build():
    names = [c.name for c in list_models()]
    assert {"ch4-mf", "ch4-mag1c"} <= set(names)
    for name in names:
        card = get_card(name)
        assert card.input.halo == card.input.receptive_field_px // 2
        if card.network is not None and card.weights is None:
            with pytest.raises(ModelError, match="no trained weights"):
                load_model(name, device="cpu")
            continue
        model = load_model(name, device="cpu")
        assert model.card == card and model.device.type == "cpu"
        if card.network is None:
            assert {v.name for v in card.output.variables} >= {"ch4_enhancement"}
        else:
            assert {v.name for v in card.output.variables} == {"class", "confidence"}


def test_broken_card_is_a_model_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "Bad Name"\n')
    with pytest.raises(ModelError, match="invalid model card") as info:
        load_card(path)
    assert str(path) in str(info.value)


def test_unknown_model_and_missing_gpu_are_model_errors():
    with pytest.raises(ModelError, match="ch4-mf"):
        load_model("no-such-model")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA"):
            load_model("ch4-mf", device="cuda")


def test_band_selection_per_sensor():
    contract = get_card("ch4-mf").input
    emit = select_bands(emit_band_table(), contract)
    assert 40 <= len(emit) <= 60  # EMIT samples 2122–2488 nm every ~7.4 nm
    wl = emit_band_table().wavelengths[emit]
    assert wl.min() >= 2122 and wl.max() <= 2488
    assert len(select_bands(enmap_band_table(), contract)) >= 30
    with pytest.raises(BandMismatchError, match=r"2122–2488 nm.*has 1 \(2190 nm\)"):
        select_bands(sentinel2_band_table(), contract, model="ch4-mf")


def test_nearest_selection_names_the_missing_wavelengths():
    contract = InputContract(
        band_selection="nearest",
        wavelengths_nm=(490.0, 665.0, 1610.0, 2190.0),
        tolerance_nm=15.0,
        normalisation="none",
    )
    picked = select_bands(sentinel2_band_table(), contract)
    assert len(picked) == 4
    strict = contract.model_copy(update={"wavelengths_nm": (490.0, 1000.0, 1400.0)})
    with pytest.raises(BandMismatchError, match="1000, 1400 nm"):
        select_bands(sentinel2_band_table(), strict)


def test_safetensors_round_trip_and_checksum(tmp_path):
    tensors = {"w": torch.randn(4, 3), "b": torch.arange(5, dtype=torch.int64)}
    path = tmp_path / "m.safetensors"
    digest = save_weights(tensors, path, metadata={"model": "test"})
    loaded = load_weights(path, sha256=digest)
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    with pytest.raises(ModelError, match="checksum"):
        load_weights(path, sha256="0" * 64)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="safetensors"):
        load_weights(path)
    assert not list(tmp_path.glob("*.partial"))


def test_cli_lists_and_shows_cards():
    runner = CliRunner(env={"COLUMNS": "200"})
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "ch4-mf" in listed.stdout and "2122–2488 nm" in listed.stdout
    shown = runner.invoke(app, ["models", "show", "ch4-mag1c"])
    assert shown.exit_code == 0 and "iterations=30" in shown.stdout and "Foote" in shown.stdout
    missing = runner.invoke(app, ["models", "show", "nope"])
    assert missing.exit_code == 2 and "unknown model" in missing.stderr
