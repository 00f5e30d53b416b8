"""Progress bars of the model tools (perplexity, quantisation, fine-tuning), drawn with
rich on stderr (or on `file`, a stream to the terminal kept while libllama's stderr is
captured), by default only when stderr is a terminal: output that goes to a file or a
pipe stays free of bar redraws."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


def wanted(progress: bool | None) -> bool:
    """Whether to draw a bar: as asked, else only on a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class Bar:
    """One task's bar; `update` sets how far it got and an optional note (a loss)."""

    def __init__(self, description: str, total: float, show: bool, file: Any = None) -> None:
        self.description = description
        self._progress: Any = None
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True) if file is None else Console(file=file),
                transient=True,
            )
            self._task = self._progress.add_task(description, total=total, note="")

    def __enter__(self) -> Bar:
        if self._progress is not None:
            try:
                self._progress.start()
            except BaseException:
                # a Ctrl-C while rich starts: it has already put its proxies in place
                # of sys.stdout and sys.stderr, and only stop() gives them back
                self._progress.stop()
                raise
        return self

    def update(self, completed: float, note: str = "", total: float | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, note=note, total=total)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
