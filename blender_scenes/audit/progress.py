"""The audit's progress on stderr: one bar per phase (scenes read and measured, checks, pictures, a question
file's records), so stdout keeps the report's lines alone. rich, as `render` uses: it is a base dependency (tqdm
is not). Off unless asked (the CLI asks unless --quiet): library callers such as the Hub export print nothing.
On a terminal the bar moves; elsewhere (a log, CI, a test) rich prints each phase's final line once, at its end.
Imports nothing of the audit."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class Phases:
    """Bars for the phases of one audit, or nothing when not `enabled`."""

    def __init__(self, enabled: bool = False):
        self.enabled = enabled

    @contextmanager
    def phase(self, label: str, total: int) -> Iterator[Callable[..., None]]:
        """`advance(n=1)` for the bar of one phase of `total` steps; its final line stays when the phase ends."""
        if not self.enabled or total <= 0:
            yield _ignore
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        bar = Progress(TextColumn(f"audit: {label}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True))
        task = bar.add_task(label, total=total)
        with bar:
            yield lambda n=1: bar.advance(task, n)


def _ignore(n: int = 1) -> None:
    return None


SILENT = Phases(False)
