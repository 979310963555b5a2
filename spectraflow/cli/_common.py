"""What every command shares: consoles, error reporting, progress bars and common options."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from spectraflow.errors import SpectraflowError

__all__ = [
    "EXIT_USER_ERROR",
    "DeviceOption",
    "epoch_bar",
    "epoch_callback",
    "progress_bar",
    "reporting_errors",
    "stderr",
    "stdout",
    "task_callback",
]

EXIT_USER_ERROR = 2
"""Exit status of a command that failed with a :class:`SpectraflowError`."""


def stdout() -> Console:
    """A console on standard output (results: tables, JSON)."""
    return Console(highlight=False)


def stderr() -> Console:
    """A console on standard error (progress, status and errors)."""
    return Console(stderr=True, highlight=False)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn a :class:`SpectraflowError` into one red line on stderr and exit status 2."""
    try:
        yield
    except SpectraflowError as exc:
        stderr().print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=EXIT_USER_ERROR) from None


def progress_bar() -> Progress:
    """A bar for work counted in steps (scenes, chunks)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=stderr(),
    )


@contextmanager
def dask_task_bar(description: str) -> Iterator[None]:
    """A bar that advances with every finished task of the dask computations run inside."""
    from dask.callbacks import Callback

    with progress_bar() as bar:
        task = bar.add_task(description, total=None)

        class _Tasks(Callback):  # dask's local-scheduler callbacks → the rich bar
            def _start_state(self, dsk: Any, state: Any) -> None:
                bar.update(task, total=sum(len(state[k]) for k in ("ready", "waiting")))

            def _posttask(self, *args: Any) -> None:
                bar.advance(task)

        with _Tasks():
            yield


def task_callback(bar: Progress, description: str) -> Callable[[int, int], None]:
    """Add a task to ``bar``; return the ``progress(done, total)`` callback that advances it."""
    task = bar.add_task(description, total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return progress


def epoch_bar() -> Progress:
    """A bar over training epochs that shows the latest train and validation loss."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        console=stderr(),
    )


def epoch_callback(
    bar: Progress, description: str, *, waiting: str = "first epoch…"
) -> Callable[[int, int, dict[str, float]], None]:
    """Add a task to ``bar``; return the ``progress(epoch, epochs, record)`` callback of training.

    Until the first epoch ends the task shows a spinner and ``waiting``.
    """
    task = bar.add_task(description, total=None, losses=waiting)

    def progress(epoch: int, epochs: int, record: dict[str, float]) -> None:
        losses = f"loss {record['train_loss']:.3f} val {record['validation_loss']:.3f}"
        bar.update(task, completed=epoch, total=epochs, losses=losses)

    return progress


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _check_device(value: str | None) -> str | None:
    if value is not None and not _DEVICE.match(value):
        raise typer.BadParameter(f"{value!r} is not a device; use cpu, cuda or cuda:N")
    return value


DeviceOption = Annotated[
    str | None,
    typer.Option(
        metavar="cpu|cuda",
        callback=_check_device,
        show_default="cuda when torch sees a GPU, else cpu",
        help="Where the network runs: cpu, cuda or cuda:N.",
    ),
]
