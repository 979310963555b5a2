"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ends first or time runs out."""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, "the process finished (or died) before it could be killed"
        assert ready(), f"the process was not ready to be killed within {timeout} s"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def kill_process_when() -> Callable[..., None]:
    """:func:`kill_when`, for tests that kill a real writer mid-write."""
    return kill_when
