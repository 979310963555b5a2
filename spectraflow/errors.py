"""Exceptions raised by spectraflow.

Every exception derives from :class:`SpectraflowError` and also from the builtin exception that
matches its meaning (``ValueError`` for bad input, ``RuntimeError`` for failures while running,
``PermissionError`` for refused credentials), so callers can catch either family.

A message says what went wrong, where (scene id, file, variable, parameter) and how to fix it::

    >>> from spectraflow.errors import CubeError
    >>> raise CubeError("cube is incomplete", where="/data/cube.zarr", fix="re-run ingest")
    Traceback (most recent call last):
    ...
    spectraflow.errors.CubeError: cube is incomplete (where: /data/cube.zarr). Fix: re-run ingest
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BandMismatchError",
    "CatalogError",
    "ConfigError",
    "CubeError",
    "ModelError",
    "ProductError",
    "QueryError",
    "SceneFormatError",
    "SimulationError",
    "SpectraflowError",
]


class SpectraflowError(Exception):
    """Base class of every error raised by spectraflow.

    Parameters
    ----------
    what
        What went wrong, as a short sentence without a trailing period.
    where
        Where it went wrong: a scene id, file path or URL, variable or parameter name.
    fix
        How the user can fix it.

    Attributes
    ----------
    what, where, fix
        The parts of the message, as given.
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self._format())

    def _format(self) -> str:
        message = self.what
        if self.where:
            message += f" (where: {self.where})"
        if self.fix:
            message += f". Fix: {self.fix}"
        return message


class CatalogError(SpectraflowError, RuntimeError):
    """A STAC catalog could not be searched, read or published to."""


class AuthError(CatalogError, PermissionError):
    """A data provider refused the credentials, or credentials are missing."""


class QueryError(SpectraflowError, ValueError):
    """A search request is invalid: AOI, time range, sensor, provider or filter."""


class SceneFormatError(SpectraflowError, ValueError):
    """A scene, STAC item or product file does not have the expected format or contents."""


class CubeError(SpectraflowError, RuntimeError):
    """A Zarr cube could not be written or opened (incomplete, inconsistent or unreadable)."""


class ModelError(SpectraflowError, RuntimeError):
    """A model could not be found, loaded or run."""


class BandMismatchError(ModelError, ValueError):
    """A cube's bands do not match the bands a model expects."""


class ProductError(SpectraflowError, RuntimeError):
    """A map product (COG, STAC item, quicklook) could not be written."""


class SimulationError(SpectraflowError, ValueError):
    """A synthetic scene cannot be simulated with the requested parameters."""


class ConfigError(SpectraflowError, ValueError):
    """A setting (environment variable, ``spectraflow.toml`` or argument) is invalid."""
