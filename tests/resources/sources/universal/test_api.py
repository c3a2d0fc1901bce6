"""`vendor: api`: landed records imported by the fact assets per hour; revisions replace;
refused records reach rejected_rows; pruning after import, and pruned hours refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from etl.config import Integration, Settings
from etl.ingest.landing import PRUNED_RULE, Landing
from etl.ingest.pruning import prune
from etl.ingest.store import LandingStore
from etl.resources.sources import build_source
from etl.resources.warehouse import Warehouse
from tests.helpers import definitions, import_range
from tests.ingest.server import push_integration

HOUR = timedelta(hours=1)
START = datetime(2026, 11, 18, 9, tzinfo=UTC)


def api_integration(**overrides) -> Integration:
    return Integration.model_validate(push_integration(**overrides))


def row(queue: str, start: datetime, offered: int, answered: int) -> dict:
    return {
        "external_queue_id": queue,
        "channel": "calls",
        "interval_start": start.isoformat(),
        "offered": offered,
        "answered": answered,
        "abandoned": 0,
        "handle_time_s": 60.0 * answered,
    }


def test_landed_records_are_imported_revised_and_pruned(
    settings: Settings, warehouse: Warehouse, instance: dg.DagsterInstance, monkeypatch, tmp_path
) -> None:
    url = f"sqlite:///{tmp_path / 'landing.sqlite'}"
    monkeypatch.setenv("WFM_LANDING_URL", url)
    integration = api_integration()
    store = LandingStore(url)
    landing = Landing(store, [integration], now=lambda: START + 3 * HOUR)
    rows = [row(q, START + k * timedelta(minutes=15), 10, 8) for q in ("a", "b") for k in range(8)]
    rows.append(row("a", START + 2 * HOUR, 5, 5))  # an hour not imported below
    assert landing.land("push_berlin", "contacts", rows).status_code == 202
    bad = {**rows[0], "answered": 11}
    assert landing.land("push_berlin", "contacts", [bad]).status_code == 422
    segments = [
        {
            "user_identifier": "anna",
            "external_activity": "Available",
            "start_utc": (START + timedelta(minutes=50)).isoformat(),
            "end_utc": (START + timedelta(minutes=70)).isoformat(),
        },
    ]
    assert landing.land("push_berlin", "agent_status", segments).status_code == 202

    defs = definitions(settings, integration)
    assert import_range(defs, instance, "push_berlin", START, START + 2 * HOUR).success
    totals = (
        warehouse.query("SELECT count(*) AS n, sum(offered) AS offered FROM contact_intervals")
        .iloc[0]
        .tolist()
    )
    assert totals == [16, 160]
    pieces = warehouse.query(
        "SELECT start_utc, end_utc FROM agent_status_segments ORDER BY start_utc"
    )
    assert pieces["start_utc"].dt.minute.tolist() == [50, 0]
    assert warehouse.query("SELECT sum(seconds) AS s FROM agent_status_segments")["s"][0] == 1200
    refused = warehouse.query("SELECT row_json, rules FROM rejected_rows")
    assert len(refused) == 1
    assert '"answered": 11' in refused["row_json"][0]

    # A revision re-sent later replaces the interval; re-importing never duplicates.
    revised = row("a", START, 20, 15)
    assert landing.land("push_berlin", "contacts", [revised]).status_code == 202
    assert import_range(defs, instance, "push_berlin", START, START + 2 * HOUR).success
    totals = (
        warehouse.query("SELECT count(*) AS n, sum(offered) AS offered FROM contact_intervals")
        .iloc[0]
        .tolist()
    )
    assert totals == [16, 170]

    # Eight days on, the imported hours are pruned; the warehouse keeps its rows.
    later = START + timedelta(days=8)
    deleted = prune(store, warehouse, {integration.id: integration}, now=later)
    assert deleted == {("push_berlin", "contacts"): 16, ("push_berlin", "agent_status"): 1}
    assert store.count_records("push_berlin", "contacts") == 1  # hours never imported stay
    source = build_source(integration)
    extract = source.contacts(START, START + 2 * HOUR)
    assert [(f.start, f.end) for f in extract.failed] == [
        (START, START + HOUR),
        (START + HOUR, START + 2 * HOUR),
    ]
    late = Landing(store, [integration], now=lambda: later)
    result = late.land("push_berlin", "contacts", [row("a", START, 1, 1)])
    assert result.errors == [{"index": 0, "reasons": [PRUNED_RULE.format(column="interval_start")]}]
    assert warehouse.query("SELECT sum(offered) AS o FROM contact_intervals")["o"][0] == 170
    store.dispose()
