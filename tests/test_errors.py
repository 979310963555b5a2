import pickle

import pytest

from spectraflow.errors import (
    AuthError,
    BandMismatchError,
    CatalogError,
    ConfigError,
    CubeError,
    ModelError,
    ProductError,
    SceneFormatError,
    SimulationError,
    SpectraflowError,
)


def test_message_has_what_where_and_fix():
    err = CubeError("cube is incomplete", where="/data/a.zarr", fix="re-run ingest")
    assert str(err) == "cube is incomplete (where: /data/a.zarr). Fix: re-run ingest"
    assert (err.what, err.where, err.fix) == ("cube is incomplete", "/data/a.zarr", "re-run ingest")


def test_message_without_where_or_fix():
    assert str(SpectraflowError("boom")) == "boom"
    assert str(SpectraflowError("boom", where="band 3")) == "boom (where: band 3)"
    assert str(SpectraflowError("boom", fix="try again")) == "boom. Fix: try again"


def test_where_and_fix_are_keyword_only():
    with pytest.raises(TypeError):
        SpectraflowError("boom", "here")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (CatalogError, (SpectraflowError, RuntimeError)),
        (AuthError, (CatalogError, PermissionError, RuntimeError)),
        (SceneFormatError, (SpectraflowError, ValueError)),
        (CubeError, (SpectraflowError, RuntimeError)),
        (ModelError, (SpectraflowError, RuntimeError)),
        (BandMismatchError, (ModelError, ValueError, RuntimeError)),
        (ProductError, (SpectraflowError, RuntimeError)),
        (SimulationError, (SpectraflowError, ValueError)),
        (ConfigError, (SpectraflowError, ValueError)),
    ],
)
def test_inherits_the_matching_builtin(cls, bases):
    err = cls("x")
    for base in (*bases, SpectraflowError, Exception):
        assert isinstance(err, base)


def test_band_mismatch_is_caught_as_value_error():
    with pytest.raises(ValueError, match="expected 285 bands"):
        raise BandMismatchError("expected 285 bands, got 224", where="model emit-unet")


def test_survives_pickling():
    # errors cross process boundaries (dask workers, Prefect task runners)
    err = BandMismatchError("wrong bands", where="cube.zarr", fix="resample")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is BandMismatchError
    assert str(copy) == str(err)
    assert (copy.what, copy.where, copy.fix) == (err.what, err.where, err.fix)
