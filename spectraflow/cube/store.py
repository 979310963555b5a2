"""Where a cube lives: its URL, its state, and the write bookkeeping kept beside the arrays.

A cube URL is a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://`` ...). Arrays
and group metadata are read and written by zarr/xarray; this module handles what zarr does not:

- the state of the group at a URL (:func:`inspect_store`): absent, something that is not a
  Zarr v3 group (never touched), or a group with its attributes — fingerprint and completion
  marker — and whether its template was completely written;
- progress records: one small empty object per finished shard region under
  ``_spectraflow_progress/`` inside the group. That folder is itself an empty Zarr group, whose
  ``zarr.json`` is written once the template is complete (it is the template's record), so
  that zarr, listing the cube's members during region writes, finds a group and not an
  unknown object. Each write task creates its own key after all its shards are stored,
  so tasks never read-modify-write a shared document (attributes would lose updates under
  concurrency) and the scheme works on object stores, where a PUT is atomic. Existence of
  shard objects cannot serve instead: zarr skips shards that hold only fill values, and a
  region spans several variables. The records are deleted just before the completion marker
  is written, so a complete cube carries none.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fsspec

from spectraflow.cube.prepare import COMPLETE_ATTR, FINGERPRINT_ATTR

__all__ = [
    "PROGRESS_DIR",
    "TEMPLATE_KEY",
    "CubeStore",
    "StoreState",
    "inspect_store",
]

PROGRESS_DIR = "_spectraflow_progress"
"""Folder (key prefix) of progress records inside the group."""
TEMPLATE_KEY = f"{PROGRESS_DIR}/zarr.json"
"""Progress record of a completely written template."""


@dataclass(frozen=True)
class CubeStore:
    """A cube location: URL, fsspec filesystem and root path.

    Build it with :meth:`from_url`.
    """

    url: str
    storage_options: dict[str, Any]
    fs: fsspec.AbstractFileSystem = field(repr=False, compare=False)
    root: str

    @classmethod
    def from_url(
        cls, url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> CubeStore:
        """Resolve ``url``: local paths become absolute, other URLs go through fsspec."""
        text = os.fspath(url)
        if "://" not in text or text.startswith("file://"):
            text = os.path.abspath(text.removeprefix("file://"))
        options = dict(storage_options or {})
        fs, root = fsspec.core.url_to_fs(text, **options)
        return cls(url=text, storage_options=options, fs=fs, root=root.rstrip("/"))

    @property
    def is_local(self) -> bool:
        """Whether the cube is a local directory (then replacement is a rename)."""
        return "://" not in self.url

    @property
    def zarr_options(self) -> dict[str, Any] | None:
        """``storage_options`` for zarr/xarray (None for local paths, where zarr rejects them)."""
        return self.storage_options or None

    def path(self, key: str = "") -> str:
        """Filesystem path of ``key`` inside the group."""
        return posixpath.join(self.root, key) if key else self.root

    def exists(self, key: str = "") -> bool:
        """Whether ``key`` (or the group root) exists."""
        return bool(self.fs.exists(self.path(key)))

    def read_json(self, key: str) -> Any:
        """Parsed JSON at ``key``, or None when it is missing or not JSON."""
        try:
            return json.loads(self.fs.cat_file(self.path(key)))
        except (OSError, ValueError):  # missing, a directory, or not JSON
            return None

    def touch(self, key: str, content: bytes = b"") -> None:
        """Create an object at ``key`` (empty unless ``content`` is given)."""
        target = self.path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self.fs.pipe_file(target, content)

    def keys_under(self, prefix: str) -> set[str]:
        """Keys (relative to ``prefix``) of the objects under ``prefix``."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return set()
        return {posixpath.relpath(p, base) for p in self.fs.find(base)}

    def remove(self, key: str = "") -> None:
        """Delete ``key`` (or the whole group) recursively; missing is fine."""
        target = self.path(key)
        if self.is_local:
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.unlink(target)
        elif self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    def is_empty_dir(self) -> bool:
        """Whether the root is an existing, empty directory (counts as absent)."""
        return self.is_local and os.path.isdir(self.root) and not os.listdir(self.root)

    def remove_partial_files(self) -> None:
        """Delete temporary files of writes a killed process left behind (local stores).

        zarr's local store writes ``<key>.<uuid>.partial`` and renames it, so a kill leaves
        the temporary file, never a truncated object.
        """
        if self.is_local:
            for partial in Path(self.root).rglob("*.partial"):
                partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoreState:
    """What is at a cube URL.

    Attributes
    ----------
    kind
        ``"absent"`` (nothing, or an empty directory), ``"foreign"`` (something that is not a
        Zarr v3 group) or ``"group"``.
    attrs
        The group's attributes (empty unless ``kind == "group"``).
    template_done
        Whether a spectraflow write finished the group's template.
    """

    kind: Literal["absent", "foreign", "group"]
    attrs: dict[str, Any] = field(default_factory=dict)
    template_done: bool = False

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the write that made the group, if spectraflow made it."""
        value = self.attrs.get(FINGERPRINT_ATTR)
        return value if isinstance(value, str) else None

    @property
    def complete(self) -> bool:
        """Whether the group carries the completion marker."""
        return self.attrs.get(COMPLETE_ATTR) is True


def inspect_store(store: CubeStore) -> StoreState:
    """The state of the group at ``store`` (reads one small JSON document)."""
    if not store.exists() or store.is_empty_dir():
        return StoreState("absent")
    meta = store.read_json("zarr.json")
    if (
        not isinstance(meta, dict)
        or meta.get("zarr_format") != 3
        or meta.get("node_type") != "group"
    ):
        return StoreState("foreign")
    attrs = meta.get("attributes") or {}
    return StoreState("group", attrs=dict(attrs), template_done=store.exists(TEMPLATE_KEY))
