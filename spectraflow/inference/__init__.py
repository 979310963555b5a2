"""Tiled inference: from a cube to a predictions store.

Pure planning code lives apart from the runtime:

- :mod:`spectraflow.inference.grid`: the tile grid (cores partition the image and are aligned to
  the cube's chunks; read windows add a halo; edge tiles are reflect-padded), numpy only.
- :mod:`spectraflow.inference.blend`: Hann blending windows, the weighted accumulator that merges
  tile outputs into seamless maps, and the argmax to class maps with nodata, numpy only.
- :mod:`spectraflow.inference.tiled`: regions of tiles, batched through a model and blended
  across region edges, numpy only (the model is a function).
- :mod:`spectraflow.inference.runtime`: the model on its device (batching, AMP, one load per
  worker), torch.
- :mod:`spectraflow.inference.predict`: :func:`predict_cube`, cube to predictions store.

``predict_cube`` is imported on first use, so importing a pure submodule never pulls in torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predict_cube"]


def __getattr__(name: str) -> Any:
    if name == "predict_cube":
        from spectraflow.inference.predict import predict_cube

        return predict_cube
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
