"""What the command line prints about import runs: one line per run, and a progress bar.

Each run ends in one line: its window, run id, outcome and counts (rows loaded, rejected and
kept once as duplicates), and for a failed run the reason, once; the trace only on request.
While runs go on, a terminal shows a progress bar (runs done of runs planned, rows so far),
drawn by rich: it keeps the bar below the printed lines, redraws in place, and stays off
where the output is not a terminal (CI logs, pipes), so what is captured is the lines alone.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from etl.backfills import ManualRun
from etl.partitions import HOUR
from etl.windows import Window

TRACE_HINT = "run it again with --verbose for the trace"


def window_text(window: Window) -> str:
    start, end = window
    hours = int((end - start) / HOUR)
    return f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({hours} hours)"


def run_line(integration_id: str, run: ManualRun) -> str:
    """The one line a run ends in."""
    result = run.outcome
    status = "ok" if result.success else "FAILED"
    line = (
        f"{integration_id} {window_text(run.window)}, run {run.run_id[:8]}: {status}, "
        f"{result.counts_text()}"
    )
    return line if result.success else f"{line}: {result.reason}"


def total_line(integration_id: str, runs: list[ManualRun]) -> str:
    failed = sum(not run.success for run in runs)
    loaded = sum(run.outcome.loaded for run in runs)
    rejected = sum(run.outcome.rejected for run in runs)
    duplicates = sum(run.outcome.duplicates for run in runs)
    return (
        f"{integration_id}: {len(runs)} runs, {len(runs) - failed} ok, {failed} failed; "
        f"{loaded} rows loaded, {rejected} rejected, {duplicates} duplicates"
    )


class RunPrinter:
    """Prints each run's line as it ends (a `RunWatcher`), with a live bar on a terminal."""

    def __init__(
        self,
        integration_id: str,
        verbose: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.integration_id, self.verbose = integration_id, verbose
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.runs: list[ManualRun] = []
        console = Console(file=self.out, highlight=False)
        self.progress: Progress | None = None
        if console.is_terminal and not console.is_dumb_terminal:
            self.progress = Progress(
                TextColumn(f"{integration_id} import"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} runs, {task.fields[rows]} rows loaded"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
        self.task = None

    def __enter__(self) -> RunPrinter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def planned(self, runs: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("import", total=runs, rows=0)

    def finished(self, run: ManualRun) -> None:
        self.runs.append(run)
        self._print(run_line(self.integration_id, run))
        if not run.success and self.verbose and run.outcome.trace:
            self._print(run.outcome.trace, self.err)
        if self.progress is not None and self.task is not None:
            rows = sum(done.outcome.loaded for done in self.runs)
            self.progress.update(self.task, advance=1, rows=rows)

    def close(self) -> None:
        """The closing lines: a total when there was more than one run, the --verbose hint."""
        if len(self.runs) > 1:
            self._print(total_line(self.integration_id, self.runs))
        if not self.verbose and any(not run.success for run in self.runs):
            self._print(TRACE_HINT, self.err)

    def _print(self, text: str, file: TextIO | None = None) -> None:
        file = file or self.out
        if self.progress is not None and file is self.out:
            # Above the bar, never wrapped (the lines are the record of what ran).
            self.progress.console.print(text, markup=False, soft_wrap=True)
        else:
            print(text, file=file, flush=True)
