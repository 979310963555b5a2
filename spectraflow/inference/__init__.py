"""Tiled inference: from a cube to a predictions store.

Pure planning code lives apart from the runtime:

- :mod:`spectraflow.inference.grid`: the tile grid (cores partition the image and are aligned to
  the cube's chunks; read windows add a halo; edge tiles are reflect-padded), numpy only.
- :mod:`spectraflow.inference.blend`: Hann blending windows, the weighted accumulator that merges
  tile outputs into seamless maps, and the argmax to class maps with nodata, numpy only.

Nothing is imported here, so importing a pure submodule never pulls in torch.
"""
