"""Settings of spectraflow, read from the environment and an optional ``spectraflow.toml``.

Precedence, highest first: arguments passed to :class:`Settings`, environment variables
(``SPECTRAFLOW_DATA_DIR``, ``SPECTRAFLOW_CACHE_DIR``, ``SPECTRAFLOW_STAC_PORT``,
``SPECTRAFLOW_LOG_LEVEL``, ``SPECTRAFLOW_PROVIDERS``), ``spectraflow.toml`` in the working
directory, then the defaults.

Nothing is read at import time: call :func:`get_settings` where settings are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from spectraflow.errors import ConfigError

__all__ = ["ENV_PREFIX", "TOML_FILE", "LogLevel", "Settings", "get_settings"]

ENV_PREFIX = "SPECTRAFLOW_"
"""Prefix of the environment variables that set :class:`Settings` fields."""

TOML_FILE = "spectraflow.toml"
"""Name of the optional settings file, looked up in the working directory."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """spectraflow settings.

    Attributes
    ----------
    data_dir
        Root directory for spectraflow's own data (downloaded scenes, cubes, products).
    cache_dir
        Directory for caches that can be deleted at any time; defaults to ``data_dir / "cache"``.
    stac_port
        TCP port of the local STAC API server (on 127.0.0.1).
    log_level
        Logging level name, case-insensitive on input.
    providers
        STAC providers to add to, or override in, the built-in registry: name → table with the
        keys of :class:`spectraflow.catalog.providers.Provider` (``[providers.<name>]`` in
        ``spectraflow.toml``, or JSON in ``SPECTRAFLOW_PROVIDERS``).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        toml_file=TOML_FILE,
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Path("~/.spectraflow").expanduser()
    cache_dir: Path = Path("~/.spectraflow/cache").expanduser()
    stac_port: int = Field(default=8765, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _cache_follows_data_dir(cls, data: Any) -> Any:
        # a data_dir given without a cache_dir keeps the cache inside it
        if isinstance(data, dict) and data.get("data_dir") and not data.get("cache_dir"):
            data = {**data, "cache_dir": Path(str(data["data_dir"])) / "cache"}
        return data

    @field_validator("data_dir", "cache_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, environment, ``spectraflow.toml``, secrets."""
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


def get_settings(**overrides: Any) -> Settings:
    """Read the settings now, from the environment and ``spectraflow.toml``.

    Parameters
    ----------
    **overrides
        Field values that take precedence over every other source.

    Returns
    -------
    Settings
        A fresh object; nothing is cached, so changed environment variables are seen.

    Raises
    ------
    ConfigError
        If a value is invalid or ``spectraflow.toml`` cannot be parsed.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid spectraflow settings: {problems}",
            where=f"arguments, {ENV_PREFIX}* environment variables or ./{TOML_FILE}",
            fix="correct or unset the named settings",
        ) from exc
    except ValueError as exc:  # e.g. tomllib.TOMLDecodeError
        raise ConfigError(
            f"cannot read settings: {exc}",
            where=f"./{TOML_FILE}",
            fix="fix the TOML syntax or remove the file",
        ) from exc
