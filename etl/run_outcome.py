"""What one import run did, read from its Dagster events: rows loaded, rejected and kept once
as duplicates, and why it failed.

The counts come from the fact assets' materialization metadata (`rows_written`,
`rows_rejected`, `rows_duplicate`; a key a run did not report counts 0). A range run records
one materialization per hourly partition; the window's last hour carries the window's counts
(earlier runs' hours each carried them), so each (asset, window) is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

COUNT_KEYS = {"loaded": "rows_written", "rejected": "rows_rejected", "duplicates": "rows_duplicate"}
# Dagster's own wrappers around the exception a step raised: the reason is their cause.
WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
# The reason of a failure shows on one line: longer ones are cut here (the trace is whole).
MAX_REASON = 2000


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    reason: str = ""  # why it failed, one line; empty for a run that succeeded
    trace: str = ""  # the failures' stack traces (`--verbose`)

    def counts_text(self) -> str:
        return f"{self.loaded} rows loaded, {self.rejected} rejected, {self.duplicates} duplicates"


def _value(metadata: dict, key: str) -> int:
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, int | float) else 0


def _counts(events: Iterable[dg.DagsterEvent]) -> dict[str, int]:
    totals = dict.fromkeys(COUNT_KEYS, 0)
    seen = set()
    for event in events:
        materialization = event.step_materialization_data.materialization
        metadata = dict(materialization.metadata)
        if not any(key in metadata for key in COUNT_KEYS.values()):
            continue  # an hour of a range: its window's last hour carries the counts
        window = (
            materialization.asset_key,
            getattr(metadata.get("window_start"), "value", None),
            getattr(metadata.get("window_end"), "value", None),
        )
        if window[1] is None:  # no window stated: each partition's metadata is its own
            window = (*window, materialization.partition)
        if window in seen:
            continue
        seen.add(window)
        for name, key in COUNT_KEYS.items():
            totals[name] += _value(metadata, key)
    return totals


def _root(error: SerializableErrorInfo) -> SerializableErrorInfo:
    while error.cls_name in WRAPPERS and error.cause is not None:
        error = error.cause
    return error


def _one_line(text: str) -> str:
    line = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 3] + "..."


def _failures(events: Sequence[dg.DagsterEvent]) -> tuple[list[str], list[str], int]:
    """The distinct reasons of the run's failed steps (else of the run itself), their traces,
    and the rows the failed steps rejected (written to the quarantine all the same)."""
    reasons: list[str] = []
    traces: list[str] = []
    rejected = 0
    for event in events:
        if event.is_step_failure:
            data = event.step_failure_data
            user = data.user_failure_data
            error = data.error
            reason = user.description if user and user.description else None
            if user is not None:
                metadata = dict(user.metadata or {})
                rejected += _value(metadata, "rows_rejected") or _value(metadata, "rejected_rows")
        elif event.is_run_failure:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            reason = None
        else:
            continue
        if reason is None and error is not None:
            root = _root(error)
            reason = root.message.strip() or root.cls_name or ""
        if reason is None:
            continue
        reason = _one_line(reason)
        if event.is_run_failure and reasons:
            continue  # the run failed because of the steps already named
        if reason not in reasons:
            reasons.append(reason)
            if error is not None:
                traces.append(error.to_string().rstrip())
    return reasons, traces, rejected


def outcome(result: dg.ExecuteInProcessResult) -> RunOutcome:
    """The counts and, for a failed run, the reason (once) and its trace."""
    counts = _counts(result.get_asset_materialization_events())
    if result.success:
        return RunOutcome(True, **counts)
    reasons, traces, rejected = _failures(result.all_events)
    counts["rejected"] += rejected
    reason = "; ".join(reasons) or "the run failed; its log in the Dagster UI says why"
    return RunOutcome(False, **counts, reason=reason, trace="\n\n".join(traces))
