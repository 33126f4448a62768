"""One rich progress bar for every long loop (layers, shards, batches, images, steps).

The bar always goes to stderr (stdout stays for a command's result) and by
default is shown only on a terminal, so logs and CI output stay clean and a
test run never prints one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["progress_bar", "track"]


def progress_bar(
    *,
    enabled: bool | None = None,
    transient: bool = True,
    elapsed: bool = False,
    info: bool = False,
) -> Any:
    """A ``rich.progress.Progress`` with vlmscope's columns, on stderr.

    Columns: the task description, the bar, ``done/total``, [elapsed time],
    [the task's ``info`` field, for a running loss], time remaining.

    Args:
        enabled: True shows the bar, False hides it, None (default) shows it
            only when stderr is a terminal.
        transient: remove the bar when the loop ends.
        elapsed: add a time-elapsed column (loops of unknown length).
        info: add a ``{task.fields[info]}`` column (pass ``info=...`` to
            ``add_task``/``update``).
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if elapsed:
        columns.append(TimeElapsedColumn())
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    columns.append(TimeRemainingColumn())
    show = console.is_terminal if enabled is None else enabled
    return Progress(*columns, console=console, disable=not show, transient=transient)


@contextlib.contextmanager
def track(total: int | None, label: str, *, enabled: bool | None = None, transient: bool = True) -> Iterator[Callable[..., None]]:
    """A bar of ``total`` steps named ``label``; yields ``advance(n=1)``.

    ``enabled`` as in :func:`progress_bar`; a disabled bar costs nothing.
    """
    bar = progress_bar(enabled=enabled, transient=transient)
    with bar:
        task = bar.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
