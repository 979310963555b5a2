"""The model commands: train, evaluate, models list/show/train-shipped, on a real tiny scene."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from typer.testing import CliRunner

from spectraflow.catalog import find_scene
from spectraflow.cli import app
from spectraflow.cli.models import headline
from spectraflow.cli.training import SHOWN_DEFAULTS
from spectraflow.cube import ingest
from spectraflow.models import get_card, list_models, load_card
from spectraflow.models.card import NetworkSpec, save_card
from spectraflow.models.recipes import RECIPES
from spectraflow.models.train import TrainOptions
from spectraflow.simulate import simulate_scene

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that table cells do not fold
SMALL = {"dim": 32, "depth": 1, "heads": 2, "adapter_channels": 32, "decoder_channels": (16, 16)}
FAST = ["--epochs", "2", "--steps-per-epoch", "2", "--batch", "2", "--chip", "32"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """``CUBE:LABELS`` of a tiny simulated EnMAP scene."""
    root = tmp_path_factory.mktemp("enmap")
    sim = simulate_scene("enmap", out=root, size="tiny", seed=3)
    cube = ingest(find_scene(sim.item_path), out=root / "cubes")
    return f"{cube}:{sim.truth['classes']}"


@pytest.fixture(scope="module")
def small_card(tmp_path_factory):
    """A card file of the SpectralEarth land-cover model with a tiny network."""
    card = get_card("lc-enmap-spectralearth")
    assert card.network is not None
    network = NetworkSpec(**{**card.network.model_dump(), "config": SMALL})
    path = tmp_path_factory.mktemp("cards") / "small.toml"
    save_card(card.model_copy(update={"network": network, "weights": None, "metrics": {}}), path)
    return path


def test_train_evaluate_show_and_fine_tune(scene, small_card, tmp_path):
    # one chain on one trained model: training is the slow part of this file
    out = tmp_path / "run"
    args = ["train", str(small_card), "--scene", scene, "--out", str(out), *FAST]
    trained = runner.invoke(
        app, [*args, "--labels-fraction", "0.5", "--class-weighting", "--device", "cpu"]
    )
    assert trained.exit_code == 0, trained.output
    weights, card_path = (
        out / "lc-enmap-spectralearth.safetensors",
        out / "lc-enmap-spectralearth.toml",
    )
    assert weights.is_file() and card_path.is_file()
    card = load_card(card_path)
    assert card.weights is not None and "--labels-fraction 0.5" in card.weights.trained_with
    assert card.metrics == {}
    stdout = trained.stdout.replace("\n", "")
    assert f"spectraflow evaluate {card_path}" in stdout and f'load_model("{card_path}")' in stdout
    assert "(100.0 %)" in stdout  # every parameter trains without --lora

    table = runner.invoke(app, ["evaluate", str(card_path), "--scene", scene, "--device", "cpu"])
    assert table.exit_code == 0, table.output
    assert "overall accuracy" in table.stdout and "mean IoU" in table.stdout
    assert "tree_cover" in table.stdout and "support (px)" in table.stdout
    assert load_card(card_path).metrics == {}  # no --write-card: the card is left as it was

    args = ["evaluate", str(card_path), "--scene", scene, "--json", "--write-card"]
    evaluated = runner.invoke(app, args)
    assert evaluated.exit_code == 0, evaluated.output
    scores = json.loads(evaluated.stdout)
    assert 0.0 <= scores["oa"] <= 1.0 and scores["n"] > 0
    assert {f"f1_{c.name}" for c in card.output.classes} <= scores.keys()
    metrics = load_card(card_path).metrics
    assert metrics["oa"] == pytest.approx(scores["oa"])
    assert {k for k, v in scores.items() if v is not None} == metrics.keys()

    shown = runner.invoke(app, ["models", "show", str(card_path)])
    assert shown.exit_code == 0, shown.output
    assert "spectral_earth:SpectralEarthViT" in shown.stdout and "dim=32" in shown.stdout
    assert card.weights.sha256[:16] in shown.stdout and "trained with" in shown.stdout
    assert f"oa: {scores['oa']:.4f}" in shown.stdout

    tuned_out = tmp_path / "tuned"
    args = ["train", str(card_path), "--scene", scene, "--out", str(tuned_out), *FAST]
    tuned = runner.invoke(app, [*args, "--epochs", "1", "--steps-per-epoch", "1", "--lora", "2"])
    assert tuned.exit_code == 0, tuned.output
    tuned_card = load_card(tuned_out / "lc-enmap-spectralearth.toml")
    assert tuned_card.weights is not None and "--lora 2" in tuned_card.weights.trained_with
    share = float(tuned.stdout.split("trainable of")[1].split("(")[1].split("%")[0])
    assert share < 50  # only the LoRA factors and the head learn


def test_a_scene_without_a_colon_is_explained(small_card, tmp_path):
    result = runner.invoke(
        app, ["train", str(small_card), "--scene", "cube.zarr", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "CUBE:LABELS" in result.stderr and "Traceback" not in result.output


def test_an_unknown_model_lists_the_registered_ones(tmp_path):
    result = runner.invoke(app, ["train", "no-such", "--scene", "a:b", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown model 'no-such'" in result.stderr
    assert all(card.name in result.stderr for card in list_models())
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "gone.toml"), "--scene", "a:b"])
    assert missing.exit_code == 2 and "no card file" in missing.stderr


def test_write_card_is_refused_for_a_registered_model():
    args = ["evaluate", "lc-enmap-spectralearth", "--scene", "a:b", "--write-card"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--write-card" in result.stderr and "make weights" in result.stderr


def test_evaluate_refuses_a_model_without_a_network():
    result = runner.invoke(app, ["evaluate", "ch4-mf", "--scene", "a:b"])
    assert result.exit_code == 2 and "not a learned model" in result.stderr


def test_bad_option_values_are_rejected_before_any_work(small_card, tmp_path):
    base = ["train", str(small_card), "--scene", "a:b", "--out", str(tmp_path)]
    for extra, hint in (
        (["--device", "tpu"], "cuda:N"),
        (["--lr", "0"], "greater than 0"),
        (["--labels-fraction", "1.5"], "less than or equal to 1"),
    ):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and hint in result.output, result.output
    assert not any(tmp_path.iterdir())


def test_help_shows_the_library_defaults():
    defaults = TrainOptions()
    assert {f.name for f in fields(TrainOptions)} >= SHOWN_DEFAULTS.keys()
    assert all(SHOWN_DEFAULTS[k] == str(getattr(defaults, k)) for k in SHOWN_DEFAULTS)
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "CUBE:LABELS" in result.stdout and "--lora" in result.stdout


def test_train_shipped_help_and_unknown_recipe(tmp_path):
    helped = runner.invoke(app, ["models", "train-shipped", "--help"])
    assert helped.exit_code == 0 and "make weights" in helped.stdout
    result = runner.invoke(app, ["models", "train-shipped", "nope", "--work", str(tmp_path)])
    assert result.exit_code == 2
    assert "no training recipe for 'nope'" in result.stderr
    assert all(name in result.stderr for name in RECIPES)
    assert not any(tmp_path.iterdir())


def test_headline_prefers_held_out_scores():
    assert headline({"held_out_oa": 0.8712, "held_out_kappa": 0.8149}) == "OA 0.87 κ 0.81"
    assert headline({"held_out_plume_f1": 0.6249, "held_out_oa": 0.99}) == "plume F1 0.62"
    assert headline({"oa": 0.5, "held_out_oa": 0.7}) == "OA 0.70"
    assert headline({}) is None


def test_models_list_shows_weights_and_scores():
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "measured" in result.stdout
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    for card in list_models():
        row = rows[card.name]
        if card.network is None:
            assert "not needed" in row
        else:
            assert (headline(card.metrics) or "not trained") in row, row
