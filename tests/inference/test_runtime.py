"""The device runtime: batches of tiles through a learned model, sent to workers by name."""

import pickle

import numpy as np
import pytest

from spectraflow.errors import ModelError
from spectraflow.inference.runtime import CPU_BATCH_BYTES, Runtime, default_batch, runtime_for
from spectraflow.models import load_model
from spectraflow.sensors.bands import BandTable


def _inputs(runtime: Runtime) -> tuple[np.ndarray, BandTable]:
    card = runtime.model.card
    wavelengths = np.linspace(420.0, 2400.0, 60)
    table = BandTable.from_arrays(wavelengths, np.full(60, 10.0))
    picked = runtime.model.bands(table)
    x = np.random.default_rng(0).uniform(0.02, 0.5, (2, len(picked), 64, 64))
    assert card.name == "lc-any-wavelength"
    return x.astype(np.float32), BandTable.from_arrays(
        wavelengths[picked], np.full(len(picked), 10.0)
    )


def test_a_named_runtime_is_loaded_once_per_process_and_pickles_as_its_name():
    runtime = runtime_for("lc-any-wavelength", "cpu")
    assert runtime_for("lc-any-wavelength", "cpu") is runtime
    payload = pickle.dumps(runtime)
    assert len(payload) < 1000  # the name, not the weights
    assert pickle.loads(payload) is runtime  # in this process: the cached one


def test_an_unnamed_runtime_pickles_with_its_weights_and_answers_the_same():
    runtime = Runtime(load_model("lc-any-wavelength", device="cpu"))
    x, table = _inputs(runtime)
    copy = pickle.loads(pickle.dumps(runtime))
    np.testing.assert_allclose(copy(x, table), runtime(x, table), atol=1e-6)
    probs = runtime(x, table)
    assert probs.shape == (2, 9, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_an_unnamed_compiled_runtime_refuses_to_travel():
    runtime = Runtime(load_model("lc-any-wavelength", device="cpu"))
    runtime.compile = True  # as after Runtime(..., compile=True), without compiling here
    with pytest.raises(ModelError, match="by name"):
        pickle.dumps(runtime)


def test_cpu_batches_of_many_band_tiles_stay_within_the_byte_budget():
    tile = (256, 256)
    enmap = 224 * 256 * 256 * 4  # bytes of one EnMAP tile
    assert default_batch("cpu", 224, tile) == 2 and 2 * enmap <= CPU_BATCH_BYTES
    assert default_batch("cpu", 12, tile) == 4  # the device's most
    assert default_batch("cpu", 10 * CPU_BATCH_BYTES // 4, (1, 1)) == 1  # never none
    assert default_batch("cuda", 224, tile) == 16  # GPUs batch by tiles alone
