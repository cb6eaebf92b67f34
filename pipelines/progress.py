"""What `tongxing run` shows while it works.

On a terminal: a rich progress bar per stage (tables ingested, then the analysis and publishing), cleared
as it finishes so only the result and warnings stay on screen. Not on a terminal (CI, cron, a pipe): quiet,
unless `--verbose`, which prints one plain line per table (and the CLI then each stage's time) — logs stay
greppable and free of control characters.
"""
from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, verbose: bool = False, stream: TextIO | None = None, interactive: bool | None = None):
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._bar = None
        self._task = None
        self._stage: str | None = None

    @property
    def active(self) -> bool:
        return self.interactive or self.verbose

    def stage(self, name: str, total: int | None = None) -> None:
        """A new stage begins (the previous one ends); `total` steps when known."""
        self._end_stage()
        self._stage = name
        if self.interactive:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, SpinnerColumn, \
                    TextColumn, TimeElapsedColumn
                self._bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(file=self.stream, force_terminal=True), transient=True)
                self._bar.start()
            self._task = self._bar.add_task(name, total=total)

    def __call__(self, message: str) -> None:
        """One step of the current stage (a table done)."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, description=f"{self._stage}: {message}")
        elif self.verbose:
            print(f"  {message}", file=self.stream, flush=True)

    def _end_stage(self) -> None:
        if self._stage is None:
            return
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
        self._stage = None

    def close(self) -> None:
        self._end_stage()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def stage(progress, name: str, total: int | None = None) -> None:
    """Start a stage on `progress` when it is a `Progress` (tests pass plain callables, or None)."""
    if isinstance(progress, Progress):
        progress.stage(name, total)
