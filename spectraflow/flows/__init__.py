"""Prefect flows: ``process_scene``, ``map_region``, ``watch_catalog`` and ``backfill``.

- :func:`process_scene`: ingest → predict → product for one scene
  (:mod:`spectraflow.flows.scene`).
- :func:`map_region`: search → per-scene task chains → one mosaic per model → catalog and run
  summary; :func:`backfill`: ``map_region`` over date batches (:mod:`spectraflow.flows.region`).
- :func:`watch_catalog`: for schedules, only the scenes new since the last success
  (:mod:`spectraflow.flows.watch`).
- :class:`RunSummary`, :class:`SceneOutcome`: what they return (:mod:`spectraflow.flows.summary`).
- :func:`watching`: follow their task runs as they are submitted and finish
  (:mod:`spectraflow.flows.progress`).

Flows are imported on first use, so that ``spectraflow.flows.runners`` alone stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RunSummary",
    "SceneOutcome",
    "backfill",
    "map_region",
    "process_scene",
    "watch_catalog",
    "watching",
]

_HOMES = {
    "RunSummary": "spectraflow.flows.summary",
    "SceneOutcome": "spectraflow.flows.summary",
    "backfill": "spectraflow.flows.region",
    "map_region": "spectraflow.flows.region",
    "process_scene": "spectraflow.flows.scene",
    "watch_catalog": "spectraflow.flows.watch",
    "watching": "spectraflow.flows.progress",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
