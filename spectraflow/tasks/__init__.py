"""Prefect tasks: thin wrappers over the library stages (retries, caching, concurrency).

See :mod:`spectraflow.tasks.stages`.
"""

from spectraflow.tasks.stages import (
    GPU_LIMIT,
    cache_key,
    ingest_scene,
    is_network_error,
    make_product,
    predict,
    prediction_url,
    search_scenes,
)

__all__ = [
    "GPU_LIMIT",
    "cache_key",
    "ingest_scene",
    "is_network_error",
    "make_product",
    "predict",
    "prediction_url",
    "search_scenes",
]
