"""Training, resume, LoRA fine-tuning, evaluation and weights of the learned models."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spectraflow.catalog import find_scene
from spectraflow.cube import ingest
from spectraflow.errors import ModelError
from spectraflow.models import get_card, list_models, load_model
from spectraflow.models.card import NetworkSpec
from spectraflow.models.learned import LearnedModel
from spectraflow.models.scenes import load_labelled_scene, parse_scene_pair
from spectraflow.models.train import TrainOptions, evaluate, train
from spectraflow.simulate import simulate_scene

SMALL = {"dim": 32, "depth": 1, "heads": 2, "adapter_channels": 32, "decoder_channels": [16, 16]}
FAST = TrainOptions(epochs=3, steps_per_epoch=4, batch=4, chip=32, lr=3e-3, patience=10)


@pytest.fixture(scope="module")
def enmap(tmp_path_factory):
    """A tiny simulated EnMAP scene: its cube and truth class raster."""
    root = tmp_path_factory.mktemp("enmap")
    scene = simulate_scene("enmap", out=root, size="tiny", seed=3)
    return str(ingest(find_scene(scene.item_path), out=root / "cubes")), str(scene.truth["classes"])


@pytest.fixture
def card():
    """The SpectralEarth land-cover card with a tiny network (fast on a CPU)."""
    base = get_card("lc-enmap-spectralearth")
    assert base.network is not None
    network = NetworkSpec(**{**base.network.model_dump(), "config": SMALL})
    return base.model_copy(update={"network": network, "weights": None, "metrics": {}})


def _trained(card, enmap, out, options=FAST):
    scene = load_labelled_scene(*enmap, card)
    return scene, train(card, [scene], out=out, options=options, device=torch.device("cpu"))


def test_training_lowers_the_loss_and_writes_a_loadable_model(card, enmap, tmp_path):
    scene, result = _trained(card, enmap, tmp_path, TrainOptions(**{**FAST.__dict__, "epochs": 5}))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.weights.stat().st_size < 10 * 1024**2
    model = load_model(str(result.card), device="cpu")
    assert isinstance(model, LearnedModel)
    assert model.card.weights is not None and model.card.input.band_selection == "nearest"
    assert len(model.card.input.wavelengths_nm or ()) == int(model.card.options["in_channels"])
    probs = model.predict_array(scene.reflectance, scene.bands)
    assert probs.shape == (9, *scene.labels.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    scores = evaluate(model, [scene])
    assert 0.0 <= scores["oa"] <= 1.0 and scores["n"] == int((scene.labels > 0).sum())


class _Interrupted(Exception):
    pass


def _stop_after(epochs):
    def progress(epoch, total, record):
        if epoch == epochs:
            raise _Interrupted

    return progress


def test_an_interrupted_run_resumes_to_the_same_weights(card, enmap, tmp_path):
    scene = load_labelled_scene(*enmap, card)
    straight = train(card, [scene], out=tmp_path / "straight", options=FAST)
    with pytest.raises(_Interrupted):
        train(card, [scene], out=tmp_path / "resumed", options=FAST, progress=_stop_after(2))
    options = TrainOptions(**{**FAST.__dict__, "resume": True})
    resumed = train(card, [scene], out=tmp_path / "resumed", options=options)
    assert resumed.epochs_run == straight.epochs_run == 3
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    a, b = load_file(straight.weights), load_file(resumed.weights)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_lora_fine_tuning_trains_few_parameters_and_merges(card, enmap, tmp_path):
    _, base = _trained(card, enmap, tmp_path / "base")
    trained = get_card(str(base.card)).model_copy(update={"name": card.name})
    options = TrainOptions(**{**FAST.__dict__, "lora_rank": 2, "labels_fraction": 0.05})
    _, tuned = _trained(trained, enmap, tmp_path / "lora", options)
    assert tuned.trainable_parameters < 0.2 * tuned.total_parameters
    merged = load_file(tuned.weights)
    assert not any(".down." in k or ".up." in k for k in merged)  # plain layers again
    model = load_model(str(tuned.card), device="cpu")
    assert isinstance(model, LearnedModel)


def test_lora_needs_trained_weights(card, enmap, tmp_path):
    options = TrainOptions(**{**FAST.__dict__, "lora_rank": 2})
    with pytest.raises(ModelError, match="starts from trained weights"):
        _trained(card, enmap, tmp_path, options)


def test_corrupt_weights_are_a_model_error(card, enmap, tmp_path):
    _, result = _trained(card, enmap, tmp_path, TrainOptions(**{**FAST.__dict__, "epochs": 1}))
    data = bytearray(result.weights.read_bytes())
    data[-10] ^= 0xFF
    result.weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        load_model(str(result.card), device="cpu")


def test_labels_off_the_cube_grid_are_refused(card, enmap, tmp_path):
    import rasterio

    path = tmp_path / "small.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
        dst.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(ModelError, match="not on the cube's grid"):
        load_labelled_scene(enmap[0], path, card)


def test_scene_pairs_parse_and_reject():
    assert parse_scene_pair("/a/cube.zarr:/b/labels.tif") == ("/a/cube.zarr", "/b/labels.tif")
    with pytest.raises(ModelError, match="CUBE:LABELS"):
        parse_scene_pair("cube-only")


SHIPPED = [c.name for c in list_models() if c.network is not None and c.weights is not None]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_predict_on_a_simulated_cube(name, tmp_path):
    card = get_card(name)
    sensor = card.input.sensors[0]
    sim = simulate_scene(sensor, out=tmp_path, size="tiny", seed=5)
    labels = sim.truth["sensor_geometry" if sensor == "emit" else "classes"]
    if card.options.get("labels") == "plume" and sensor != "emit":
        labels = sim.truth["ch4"]
    cube = ingest(find_scene(sim.item_path), out=tmp_path / "cubes")
    scene = load_labelled_scene(cube, labels, card)
    model = load_model(name, device="cpu")
    probs = model.predict_array(scene.reflectance, scene.bands)
    assert probs.shape == (len(card.output.classes), *scene.labels.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert set(np.unique(model.classify(probs))) <= {c.value for c in card.output.classes}
    assert card.metrics  # measured on held-out scenes when the weights were made


def test_class_weighting_favours_rare_classes(card, enmap):
    from spectraflow.models.train import _class_weights, _Split

    labels = np.ones((10, 10), np.uint8)
    labels[0, :4] = 2  # 4 % of the pixels
    split = _Split(np.zeros((1, 10, 10)), labels, labels, np.ones((10, 10), bool))
    weights = _class_weights(card, [split])
    assert weights[1] == pytest.approx(weights[0] * np.sqrt(96 / 4))
    assert weights[2:].tolist() == [1.0] * 7  # absent classes keep weight 1


def test_band_resampling_makes_broad_bands_from_narrow_ones():
    from spectraflow.models.train import resample_bands

    wavelengths = torch.linspace(420, 2450, 200)
    fwhm = torch.full((200,), 10.0)
    x = torch.rand(2, 1, 4, 4).expand(2, 200, 4, 4)  # flat spectra
    for seed in range(20):
        out, (centre, width) = resample_bands(x, wavelengths, fwhm, np.random.default_rng(seed))
        k = out.shape[1]
        assert 4 <= k <= 100 and centre.shape == width.shape == (k,)
        assert bool((centre[1:] > centre[:-1]).all())  # still in spectral order
        assert bool((width >= 10.0).all()) and float(centre.min()) >= 420
        torch.testing.assert_close(out, x[:, :k])  # a flat spectrum stays flat


def test_unknown_recipe_is_a_model_error(tmp_path):
    from spectraflow.models.recipes import make_weights

    with pytest.raises(ModelError, match="no shipped-weights recipe") as info:
        make_weights("lc-nowhere", tmp_path)
    assert "lc-enmap-lola" in info.value.fix
    assert not any(tmp_path.iterdir())  # nothing simulated or written
