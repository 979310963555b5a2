"""Model cards: what a model needs, what it gives, and where its weights come from.

A card is a TOML file in ``spectraflow/models/cards/`` (one per model), validated into
:class:`ModelCard`. The inference engine reads only the card to tile, batch and blend a model:
the halo it must add around tiles (``input.receptive_field_px``), the preferred tile size,
whether a first pass over the scene must compute statistics, which bands to feed and the output
variables to write. Cards hold no code; ``factory`` names the function that builds the model.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spectraflow.errors import ModelError

__all__ = [
    "ClassInfo",
    "InputContract",
    "ModelCard",
    "NetworkSpec",
    "OutputSpec",
    "OutputVariable",
    "WeightsRef",
    "load_card",
    "save_card",
]

Task = Literal["classification", "segmentation", "regression"]
Statistics = Literal["none", "per-column", "per-scene"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputContract(_Frozen):
    """What a model reads.

    Parameters
    ----------
    band_selection
        ``"window"``: every good band inside ``wavelength_range_nm`` or any of
        ``wavelength_ranges_nm`` (at least ``min_bands``); ``"nearest"``: for each of
        ``wavelengths_nm``, the nearest good band within ``tolerance_nm`` (trained models with
        a fixed number of input channels).
    wavelength_range_nm, wavelength_ranges_nm
        (min, max) in nm, or several such windows, for ``"window"``.
    wavelengths_nm, tolerance_nm
        Band centres a model was trained on, for ``"nearest"``.
    min_bands
        Fewest bands a ``"window"`` selection may have.
    normalisation
        How inputs are scaled before the model (human-readable; the model applies it).
    scene_statistics
        ``"per-column"`` (per detector column, sensor geometry), ``"per-scene"``, or ``"none"``.
    receptive_field_px
        Spatial extent that influences one output pixel; the tiler adds half of it as halo.
    tile_size
        Preferred tile edge in pixels.
    sensors
        Sensors the model is meant for (others may work if the bands match).
    """

    band_selection: Literal["window", "nearest"]
    wavelength_range_nm: tuple[float, float] | None = None
    wavelength_ranges_nm: tuple[tuple[float, float], ...] | None = None
    wavelengths_nm: tuple[float, ...] | None = None
    tolerance_nm: float = 10.0
    min_bands: int = Field(default=1, ge=1)
    normalisation: str
    scene_statistics: Statistics = "none"
    receptive_field_px: int = Field(default=1, ge=1)
    tile_size: int = Field(default=256, ge=16)
    sensors: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _selection_has_its_fields(self) -> InputContract:
        if self.band_selection == "window" and not self.windows:
            raise ValueError("band_selection 'window' needs wavelength_range(s)_nm")
        if self.band_selection == "nearest" and not self.wavelengths_nm:
            raise ValueError("band_selection 'nearest' needs wavelengths_nm")
        return self

    @property
    def windows(self) -> tuple[tuple[float, float], ...]:
        """Every (min, max) wavelength window of a ``"window"`` selection."""
        single = (self.wavelength_range_nm,) if self.wavelength_range_nm else ()
        return single + (self.wavelength_ranges_nm or ())

    @property
    def halo(self) -> int:
        """Pixels the tiler adds on each side of a tile so that outputs do not see its edge."""
        return self.receptive_field_px // 2


class ClassInfo(_Frozen):
    """One class of a class map: value, name and display colour (``#rrggbb``)."""

    value: int = Field(ge=0, le=255)
    name: str
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class OutputVariable(_Frozen):
    """One output variable: name, units (``"1"`` for unitless) and meaning."""

    name: str
    units: str
    description: str


class OutputSpec(_Frozen):
    """What a model gives: continuous variables or a class map."""

    kind: Literal["continuous", "classes"]
    variables: tuple[OutputVariable, ...]
    classes: tuple[ClassInfo, ...] = ()

    @model_validator(mode="after")
    def _classes_for_class_maps(self) -> OutputSpec:
        if self.kind == "classes" and not self.classes:
            raise ValueError("a class map needs classes")
        return self


class WeightsRef(_Frozen):
    """A safetensors weights file (relative to ``spectraflow/models/weights/``) and its hash."""

    file: str = Field(pattern=r"\.safetensors$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    trained_with: str


class NetworkSpec(_Frozen):
    """The network of a learned model.

    Parameters
    ----------
    architecture
        ``module:Class`` under ``spectraflow.models`` (e.g. ``spectral_earth:SpectralEarthViT``),
        built as ``Class(in_channels, num_classes, **config)``.
    config
        Keyword options of the architecture (widths, depths, ...).
    normaliser
        How reflectance is scaled before the network: ``"standardise"`` (per-band mean and
        standard deviation of the training data), ``"robust-max"`` (divide by the per-band
        99th percentile of the training data and clip to [0, 1], as HyperspectralViTs do) or
        ``"reflectance"`` (one mean and standard deviation for all bands: the choice for a
        model that reads any band set).
    """

    architecture: str = Field(pattern=r"^[\w.]+:\w+$")
    config: dict[str, int | float | str | bool | tuple[int, ...]] = Field(default_factory=dict)
    normaliser: Literal["standardise", "robust-max", "reflectance"] = "standardise"


class ModelCard(_Frozen):
    """A model's card (see the module docstring); loaded by :func:`load_card`.

    Learned models also have ``network`` and, once trained, ``weights`` and the ``metrics``
    measured on held-out scenes by ``spectraflow evaluate``.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    version: str
    task: Task
    summary: str
    licence: str
    references: tuple[str, ...] = ()
    factory: str = Field(pattern=r"^[\w.]+:\w+$")
    options: dict[str, float | int | str | bool] = Field(default_factory=dict)
    input: InputContract
    output: OutputSpec
    network: NetworkSpec | None = None
    weights: WeightsRef | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


def load_card(path: Path) -> ModelCard:
    """Read and validate a card file.

    Raises
    ------
    ModelError
        The file is not valid TOML or does not describe a valid card.
    """
    try:
        return ModelCard.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as err:
        raise ModelError(
            f"invalid model card: {err}",
            where=str(path),
            fix="correct the card against spectraflow.models.card.ModelCard",
        ) from err


def save_card(card: ModelCard, path: Path) -> None:
    """Write ``card`` as TOML (atomically: a reader never sees half a card)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(tomli_w.dumps(card.model_dump(mode="json", exclude_none=True)).encode())
    partial.replace(path)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
