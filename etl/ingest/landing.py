"""Landing records: validate them at the door, keep the good ones durably, say why for the rest.

This is the API every producer of pushed or streamed records calls (the HTTP service, the
Genesys Cloud notifications consumer, any other listener):

    landing = Landing(LandingStore(landing_url()), integrations)
    result = landing.land("berlin_push", "agent_status", [
        {"user_identifier": "anna.smith", "external_activity": "Available",
         "start_utc": "2026-11-18T09:00:00Z", "end_utc": None},
    ], idempotency_key="batch-0001")
    result.status_code, result.accepted, result.errors

Records are in the canonical shape of their table (`etl.schemas`: contacts without
`integration_id` and `interval_minutes`, which the integration gives). They are checked with
the same pandera schema the import uses, on the integration's own grid and timezone; a record
that breaks a rule is refused with every rule it broke (and handed to `rejected_rows` by the
import of its hour), the good records of the same batch are kept. When `land` returns, the
batch is committed (fsynced): a crash a moment later loses nothing. A batch id seen before
lands nothing again and returns the first answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pandas as pd
import pandera.pandas as pa

from etl.config import Integration
from etl.ingest.store import (
    HOUR_US,
    OPEN_END_US,
    Landed,
    LandingStore,
    StoredBatch,
    from_us,
    hour_floor_us,
    to_us,
)
from etl.partitions import KEY_FORMAT
from etl.schemas import AGENT_STATUS, CONTACTS, TableSpec, agent_status_schema, contact_schema
from etl.validation import DUPLICATE_RULE, OUTSIDE_RULE, SPAN_OUTSIDE_RULE, validate

KINDS = ("contacts", "agent_status")
SPECS: dict[str, TableSpec] = {"contacts": CONTACTS, "agent_status": AGENT_STATUS}
BATCH_COLUMN = "_batch"
MAX_RECORDS = 10_000
FUTURE_MARGIN = timedelta(days=1)
# An open segment counts towards the hours from its start to now, at most this far back.
OPEN_HOURS_LIMIT = 24 * 31
NOT_AN_OBJECT = "record: not a JSON object"
PRUNED_RULE = (
    "{column}: its hour was imported and its landed records pruned (older than the landing "
    "retention); a revision this late cannot be imported"
)
BATCH_REUSED = "Idempotency-Key / batch id already used for a different body"


@cache
def _door_schema(kind: str, interval_minutes: int, timezone: str) -> pa.DataFrameSchema:
    """The table's schema plus the batch number, which is part of the key at the door."""
    if kind == "contacts":
        schema = contact_schema(interval_minutes, timezone)
    else:
        schema = agent_status_schema()
    return schema.add_columns({BATCH_COLUMN: pa.Column("int64")})


def door_outside_rule(integration: Integration, column: str) -> str:
    return (
        f"{column}: before the integration's history_start "
        f"({integration.history_start:%Y-%m-%d %H:%M} UTC) or more than a day in the future"
    )


@dataclass
class LandResult:
    """The answer to one batch, as the HTTP service sends it (`body()`)."""

    integration_id: str
    kind: str
    batch_id: str
    status_code: int  # 202 all landed, 207 some refused, 422 none landed
    accepted: int
    rejected: int
    duplicates: int = 0
    errors: list[dict] = field(default_factory=list)  # {"index", "reasons"} per refused record
    held: bool = False  # landed while the integration is paused: imported on resume
    replayed: bool = False  # a retry of a batch landed before: nothing landed again
    revoked: bool = False  # its API key was rotated before it landed: nothing landed

    def body(self) -> dict:
        return {
            "integrationId": self.integration_id,
            "batchId": self.batch_id,
            "status": "held" if self.held else "landed",
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "replayed": self.replayed,
            "errors": self.errors,
        }

    @classmethod
    def from_body(cls, kind: str, status_code: int, body: dict, replayed: bool) -> LandResult:
        return cls(
            integration_id=body["integrationId"],
            kind=kind,
            batch_id=body["batchId"],
            status_code=status_code,
            accepted=body["accepted"],
            rejected=body["rejected"],
            duplicates=body["duplicates"],
            errors=body["errors"],
            held=body["status"] == "held",
            replayed=replayed,
        )


@dataclass
class Pending:
    """A batch waiting to be validated and landed."""

    integration: Integration
    kind: str
    records: Sequence[Any]
    batch_id: str
    body_hash: str
    source: str  # where it came from, for rejected rows' source_ref
    received_at: datetime
    held: bool = False
    # Records refused before validation (by index), e.g. a time without an offset.
    refused: dict[int, list[str]] = field(default_factory=dict)
    # The records as they came (e.g. in the HTTP API's field names), for rejected rows.
    raw: Sequence[Any] | None = None
    key_hash: str | None = None  # the API key it came with (see StoredBatch.key_hash)
    queued_at: float = 0.0  # monotonic time it was queued for a group commit


def latest_segments(records: Sequence[dict]) -> list[dict]:
    """The last version of each agent-status segment (user and start) in `records`, in the
    order of their last versions: a producer that made several versions of a segment before
    landing them (opened, then closed) lands the latest, since one batch may name a key once."""
    latest: dict[tuple[str, str], dict] = {}
    for record in records:
        key = (record["user_identifier"], record["start_utc"])
        latest.pop(key, None)
        latest[key] = record
    return list(latest.values())


def body_hash(records: Any) -> str:
    """A fingerprint of a batch's records, to tell a retry from a reused batch id."""
    text = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Landing:
    """Validates and lands batches for the configured integrations (see the module)."""

    def __init__(
        self,
        store: LandingStore,
        integrations: Mapping[str, Integration] | Sequence[Integration],
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        if not isinstance(integrations, Mapping):
            integrations = {i.id: i for i in integrations}
        self.integrations = dict(integrations)
        self._now = now or (lambda: datetime.now(UTC))

    # -- the producer API -------------------------------------------------------------------
    def land(
        self,
        integration_id: str,
        kind: str,
        records: Sequence[dict],
        idempotency_key: str | None = None,
        source: str | None = None,
    ) -> LandResult:
        """Validate and land one batch of canonical records; durable when it returns."""
        pending = self.pending(integration_id, kind, records, idempotency_key, source)
        return self.land_pending([pending])[0]

    def withdraw(self, integration_id: str, segments: Sequence[dict]) -> int:
        """Withdraw agent-status segments that lasted no time (canonical records; their
        `end_utc` is ignored): the open record of that agent and start is replaced by one
        every reader skips. Durable when it returns; returns how many."""
        integration = self.integrations.get(integration_id)
        if integration is None:
            raise KeyError(f"no integration {integration_id!r} in the config")
        rows = []
        for record in segments:
            start = pd.Timestamp(record["start_utc"]).tz_convert("UTC")
            withdrawn = {**record, "start_utc": start.isoformat(), "end_utc": start.isoformat()}
            rows.append(
                (
                    str(record["user_identifier"]),
                    to_us(start.to_pydatetime()),
                    json.dumps(withdrawn),
                )
            )
        self.store.withdraw(integration_id, "agent_status", rows, to_us(self._now()))
        return len(rows)

    def pending(
        self,
        integration_id: str,
        kind: str,
        records: Sequence[Any],
        idempotency_key: str | None = None,
        source: str | None = None,
        held: bool | None = None,
        refused: Mapping[int, list[str]] | None = None,
        raw: Sequence[Any] | None = None,
        key_hash: str | None = None,
    ) -> Pending:
        if kind not in KINDS:
            raise ValueError(f"unknown data kind {kind!r} (known: {', '.join(KINDS)})")
        integration = self.integrations.get(integration_id)
        if integration is None:
            raise KeyError(f"no integration {integration_id!r} in the config")
        if kind not in integration.data:
            raise ValueError(f"integration {integration_id!r} carries no {kind} data")
        if len(records) > MAX_RECORDS:
            raise ValueError(f"a batch holds at most {MAX_RECORDS} records (got {len(records)})")
        return Pending(
            integration=integration,
            kind=kind,
            records=records,
            batch_id=idempotency_key or uuid.uuid4().hex,
            body_hash=body_hash(records if raw is None else raw),
            source=source or f"landed {kind}",
            received_at=self._now(),
            held=integration.paused if held is None else held,
            refused=dict(refused or {}),
            raw=raw,
            key_hash=key_hash,
        )

    def land_pending(self, batches: Sequence[Pending]) -> list[LandResult]:
        """Validate batches (one pandera pass per integration and kind) and land them in one
        transaction: what a server does with the requests that arrived together."""
        stored = self.prepare(batches)
        landed = self.store.land(stored)
        return [
            self._result(p, s, done) for p, s, done in zip(batches, stored, landed, strict=True)
        ]

    def _result(self, pending: Pending, stored: StoredBatch, done: Landed) -> LandResult:
        if done.revoked:
            return self._nothing_landed(pending, 401, revoked=True)
        if done.conflicting_body:
            reused = [{"index": None, "reasons": [BATCH_REUSED]}]
            return self._nothing_landed(pending, 422, errors=reused, replayed=True)
        return LandResult.from_body(pending.kind, done.status_code, done.response, done.duplicate)

    @staticmethod
    def _nothing_landed(pending: Pending, status: int, **outcome: Any) -> LandResult:
        """The answer to a batch the store refused as a whole."""
        return LandResult(
            pending.integration.id,
            pending.kind,
            pending.batch_id,
            status,
            0,
            len(pending.records),
            **outcome,
        )

    # -- validation -------------------------------------------------------------------------
    def prepare(self, batches: Sequence[Pending]) -> list[StoredBatch]:
        """Each batch as the store writes it: good records, refused ones, hours touched."""
        out: list[StoredBatch | None] = [None] * len(batches)
        groups: dict[tuple[str, str], list[int]] = {}
        for n, pending in enumerate(batches):
            groups.setdefault((pending.integration.id, pending.kind), []).append(n)
        for members in groups.values():
            prepared = self._prepare_group([batches[n] for n in members])
            for n, batch in zip(members, prepared, strict=True):
                out[n] = batch
        return out  # type: ignore[return-value]

    def _prepare_group(self, batches: list[Pending]) -> list[StoredBatch]:
        """One validation over several batches of the same integration and kind: the batch
        number is part of the key, so only records of the same batch can conflict."""
        integration, kind = batches[0].integration, batches[0].kind
        spec = SPECS[kind]
        grouped_spec = dataclasses.replace(
            spec, key=(*spec.key, BATCH_COLUMN), optional=(*spec.optional, BATCH_COLUMN)
        )
        rows: list[dict] = []
        refs: list[tuple[int, int]] = []  # (batch number, record index) per row
        not_objects: dict[int, list[int]] = {}
        for b, pending in enumerate(batches):
            for index, record in enumerate(pending.records):
                if index in pending.refused:
                    continue
                if not isinstance(record, dict):
                    not_objects.setdefault(b, []).append(index)
                    continue
                rows.append({**record, BATCH_COLUMN: b, "source_ref": str(len(refs))})
                refs.append((b, index))
        frame = pd.DataFrame(rows, columns=self._columns(kind))
        if kind == "contacts":
            frame["interval_minutes"] = integration.interval_minutes
        schema = self._schema(integration, kind)
        for name, column in schema.columns.items():
            # Seconds sent as whole numbers (JSON has one number type) are seconds all the same.
            whole = name in frame and pd.api.types.is_integer_dtype(frame[name])
            if str(column.dtype) == "float64" and whole:
                frame[name] = frame[name].astype("float64")
        now = self._now()
        start, end = integration.history_start, now + FUTURE_MARGIN
        validated = validate(
            frame,
            spec=grouped_spec,
            schema=schema,
            integration_id=integration.id,
            start=start,
            end=end,
            run_id="",
        )
        outside = {
            OUTSIDE_RULE.format(column=spec.time_column),
            SPAN_OUTSIDE_RULE.format(start=spec.time_column, end=spec.end_column),
        }
        refused: dict[int, dict[int, list[str]]] = {}
        partitions: dict[tuple[int, int], int] = {}
        duplicates = [0] * len(batches)
        rejected = validated.rejected
        # (No rows to iterate is the usual case: pandas' itertuples costs a millisecond anyway.)
        for row in rejected.itertuples() if len(rejected) else ():
            b, index = refs[int(row.source_ref)]
            rules = list(row.rules)
            if rules == [DUPLICATE_RULE]:
                duplicates[b] += 1  # an exact copy in the same batch: kept once
                continue
            rules = [
                door_outside_rule(integration, spec.time_column) if r in outside else r
                for r in rules
            ]
            refused.setdefault(b, {})[index] = rules
            key_time = datetime.strptime(row.partition_key, KEY_FORMAT).replace(tzinfo=UTC)
            partitions[b, index] = to_us(key_time)
        for b, indexes in not_objects.items():
            for index in indexes:
                refused.setdefault(b, {})[index] = [NOT_AN_OBJECT]
        for b, pending in enumerate(batches):
            for index, rules in pending.refused.items():
                refused.setdefault(b, {})[index] = list(rules)
        # Good rows keep their order: row k of `good` is the k-th row not refused.
        refused_rows = {int(ref) for ref in rejected["source_ref"]}
        good = validated.good.reset_index(drop=True)
        good["_index"] = [refs[p][1] for p in range(len(refs)) if p not in refused_rows]
        records, late = self._drop_pruned(integration, kind, self._records(kind, good, integration))
        for (b, index), rules in late.items():
            refused.setdefault(b, {})[index] = rules
        per_batch: list[list] = [[] for _ in batches]
        for record in records:
            per_batch[record[4][0]].append(record)
        stored = []
        for b, pending in enumerate(batches):
            stored.append(
                self._stored(
                    pending, per_batch[b], refused.get(b, {}), partitions, duplicates[b], b
                )
            )
        return stored

    @staticmethod
    def _columns(kind: str) -> list[str]:
        spec = SPECS[kind]
        columns = [c for c in spec.all_columns if c not in ("integration_id", "interval_minutes")]
        return [*columns, BATCH_COLUMN, "source_ref"]

    @staticmethod
    def _schema(integration: Integration, kind: str) -> pa.DataFrameSchema:
        return _door_schema(kind, integration.interval_minutes, integration.timezone)

    def _records(
        self, kind: str, rows: pd.DataFrame, integration: Integration
    ) -> list[tuple[str, int, int, str, tuple[int, int], range]]:
        """(key, start_us, end_us, record JSON, (batch, record index), hours) per good row."""
        if rows.empty:
            return []
        spec = SPECS[kind]
        starts = (rows[spec.time_column].astype("int64") // 1000).tolist()
        now_us = to_us(self._now())
        out = []
        if kind == "contacts":
            step = integration.interval_minutes * 60 * 10**6
            columns = [c for c in spec.all_columns if c in rows.columns and c != "integration_id"]
            plain = rows[columns].astype(object).where(rows[columns].notna(), None)
            for values, start, index in zip(
                plain.itertuples(index=False), starts, self._refs(rows), strict=True
            ):
                record = dict(zip(columns, values, strict=True))
                record["interval_start"] = record["interval_start"].isoformat()
                for name in (
                    "offered",
                    "answered",
                    "abandoned",
                    "interval_minutes",
                    "answered_in_sl",
                ):
                    if record.get(name) is not None:
                        record[name] = int(record[name])
                key = json.dumps([record["external_queue_id"], record["channel"]])
                hour = hour_floor_us(start)
                out.append(
                    (key, start, start + step, json.dumps(record), index, range(hour, hour + 1))
                )
            return out
        # Times as integers, formatted from them: iterating a datetime column makes a
        # Timestamp per value, most of this loop's cost at 2,000 records a second.
        ends = rows["end_utc"]
        open_ends = ends.isna().tolist()
        end_ns = ends.array.asi8.tolist()
        end_us = [None if gone else ns // 1000 for gone, ns in zip(open_ends, end_ns, strict=True)]
        for user, activity, stop, start, index in zip(
            rows["user_identifier"].tolist(),
            rows["external_activity"].tolist(),
            end_us,
            starts,
            self._refs(rows),
            strict=True,
        ):
            record = {
                "user_identifier": user,
                "external_activity": activity,
                "start_utc": from_us(start).isoformat(),
                "end_utc": None if stop is None else from_us(stop).isoformat(),
            }
            until = now_us + 1 if stop is None else stop
            first = max(hour_floor_us(start), hour_floor_us(until) - OPEN_HOURS_LIMIT * HOUR_US)
            hours = range(first, max(until, first + 1), HOUR_US)
            end = OPEN_END_US if stop is None else stop
            out.append((user, start, end, json.dumps(record), index, hours))
        return out

    @staticmethod
    def _refs(rows: pd.DataFrame) -> list[tuple[int, int]]:
        return list(zip(rows[BATCH_COLUMN].tolist(), rows["_index"].tolist(), strict=True))

    def _drop_pruned(self, integration: Integration, kind: str, records: list) -> tuple:
        """Records whose every hour was pruned after its import: refused (see PRUNED_RULE)."""
        if not records:
            return records, {}
        low = min(r[5].start for r in records)
        high = max(r[5][-1] for r in records) + HOUR_US
        pruned = self.store.pruned_hours(integration.id, kind, low, high)
        if not pruned:
            return records, {}
        column = SPECS[kind].time_column
        keep, late = [], {}
        for record in records:
            if all(hour in pruned for hour in record[5]):
                late[record[4]] = [PRUNED_RULE.format(column=column)]
            else:
                keep.append(record)
        return keep, late

    def _stored(
        self,
        pending: Pending,
        records: list,
        refused: dict[int, list[str]],
        partitions: dict[tuple[int, int], int],
        duplicates: int,
        b: int,
    ) -> StoredBatch:
        arrival_hour = hour_floor_us(to_us(pending.received_at))
        rejected = []
        errors = []
        for index in sorted(refused):
            rules = refused[index]
            errors.append({"index": index, "reasons": rules})
            partition = partitions.get((b, index), arrival_hour)
            if partition < to_us(pending.integration.history_start):
                partition = arrival_hour  # unreadable or too early: the hour it arrived in
            raw = (pending.records if pending.raw is None else pending.raw)[index]
            rejected.append(
                (
                    index,
                    partition,
                    f"{pending.source}, batch {pending.batch_id}, record {index}",
                    json.dumps(raw, default=str),
                    json.dumps(rules),
                )
            )
        accepted = len(records)
        status = 202 if not errors else (207 if accepted or duplicates else 422)
        result = LandResult(
            pending.integration.id,
            pending.kind,
            pending.batch_id,
            status,
            accepted,
            len(errors),
            duplicates,
            errors,
            held=pending.held,
        )
        return StoredBatch(
            integration_id=pending.integration.id,
            kind=pending.kind,
            batch_id=pending.batch_id,
            body_hash=pending.body_hash,
            received_at_us=to_us(pending.received_at),
            status_code=status,
            response=result.body(),
            records=[(k, s, e, r) for k, s, e, r, _, _ in records],
            rejected=rejected,
            key_hash=pending.key_hash,
        )
