"""Progress of the flows' task runs, for whoever watches them in this process (the CLI's bars).

A watcher is a function ``(stage, event)`` with ``event`` ``"submitted"`` or ``"finished"``
and ``stage`` the task's name (``search-scenes``, ``ingest``, ``predict``, ``product``). The
flows report to the watcher installed with :func:`watching` in the calling thread (a context
variable, so concurrent callers each see their own). Finished events come from the threads that
complete the task runs: a watcher must be thread-safe (rich's Progress is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Watcher", "current_watcher", "watching"]

Watcher = Callable[[str, str], None]
"""``watcher(stage, event)``, event ``"submitted"`` or ``"finished"``."""

_WATCHER: ContextVar[Watcher | None] = ContextVar("spectraflow_flow_watcher", default=None)


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Report the task runs of the flows run inside the block to ``watcher``."""
    token = _WATCHER.set(watcher)
    try:
        yield
    finally:
        _WATCHER.reset(token)


def current_watcher() -> Watcher | None:
    """The watcher of this context, if any."""
    return _WATCHER.get()
