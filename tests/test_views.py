"""The analysts' views over real imports: roll-ups, mappings, value types."""

from datetime import UTC, datetime, timedelta

import pytest

from etl.definitions import MAPPINGS_JOB
from tests.conftest import make_integration
from tests.helpers import definitions, fact_files, import_range

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(days=2)
SUMS = ["offered", "answered", "abandoned", "handle_time_s"]


@pytest.fixture
def imported(settings, warehouse, instance):
    integrations = [
        make_integration(id="berlin", interval_minutes=15, timezone="Europe/Berlin"),
        make_integration(id="kolkata", interval_minutes=60, timezone="Asia/Kolkata"),
    ]
    defs = definitions(settings, *integrations)
    for integration in integrations:
        assert import_range(defs, instance, integration.id, START, END).success
    return defs


def totals(warehouse, view: str, integration: str) -> dict:
    frame = warehouse.query(
        f"SELECT destination_queue, channel, {', '.join(f'sum({c}) AS {c}' for c in SUMS)} "
        f"FROM {view} WHERE destination_queue LIKE ? GROUP BY ALL ORDER BY ALL",
        [f"{integration}/%"],
    )
    return frame.round(6).to_dict(orient="list")


@pytest.mark.parametrize(
    ("integration", "views"),
    [
        ("berlin", ["queue_intervals_30", "queue_intervals_60", "queue_days"]),
        ("kolkata", ["queue_intervals_60", "queue_days"]),
    ],
)
def test_rollups_keep_sums_and_exact_aht(imported, warehouse, integration, views):
    base = totals(warehouse, "queue_intervals", integration)
    assert len(base["offered"]) == 3
    for view in views:
        assert totals(warehouse, view, integration) == base, view
    check = warehouse.query(
        """
        SELECT d.destination_queue, d.day_local, d.aht_s,
               sum(q.handle_time_s) / sum(q.answered) AS expected
        FROM queue_days d JOIN queue_intervals q
          ON q.destination_queue = d.destination_queue AND q.channel = d.channel
         AND CAST(q.interval_start_local AS DATE) = d.day_local
        GROUP BY ALL
        """
    )
    assert (check["aht_s"] - check["expected"]).abs().max() < 1e-9


def test_kolkata_rollups_follow_local_time(imported, warehouse):
    hourly = warehouse.query(
        "SELECT DISTINCT minute(interval_start) AS utc_minute, minute(interval_start_local) AS "
        "local_minute FROM queue_intervals_60 WHERE destination_queue LIKE 'kolkata/%'"
    )
    assert hourly.to_dict(orient="list") == {"utc_minute": [30], "local_minute": [0]}
    thirty = warehouse.query(
        "SELECT count(*) AS n FROM queue_intervals_30 WHERE destination_queue LIKE 'kolkata/%'"
    )
    assert thirty["n"][0] == 0  # 60-minute data does not roll down to 30 minutes
    days = warehouse.query(
        "SELECT day_local, count(*) AS n FROM queue_intervals q JOIN queue_days d USING "
        "(destination_queue, channel) WHERE destination_queue LIKE 'kolkata/%' AND "
        "CAST(q.interval_start_local AS DATE) = d.day_local GROUP BY ALL ORDER BY 1"
    )
    assert days["day_local"].astype(str).tolist()[0] == "2026-11-16"


def test_berlin_thirty_minute_rollup_has_two_intervals_each(imported, warehouse):
    counts = warehouse.query(
        "SELECT count(*) AS n FROM queue_intervals_30 WHERE destination_queue LIKE 'berlin/%'"
    )
    base = warehouse.query(
        "SELECT count(*) AS n FROM queue_intervals WHERE destination_queue LIKE 'berlin/%'"
    )
    assert counts["n"][0] * 2 == base["n"][0]


def test_remap_changes_views_without_touching_fact_files(imported, settings, warehouse, instance):
    before = fact_files(settings.warehouse_dir)
    assert any("contact_intervals" in str(p) for p in before)
    queue = warehouse.query(
        "SELECT external_queue_id FROM queues WHERE integration_id = 'berlin' LIMIT 1"
    )["external_queue_id"][0]
    old = warehouse.query(
        "SELECT sum(offered) AS n FROM queue_intervals WHERE destination_queue = ?",
        [f"berlin/{queue}"],
    )["n"][0]
    (settings.mappings_dir / "queue_mappings.csv").write_text(
        f"integration_id,external_queue_id,destination_queue\nberlin,{queue},Hotline\n"
    )
    (settings.mappings_dir / "workloads.csv").write_text(
        "workload,destination_queue\nAll,Hotline\n"
    )
    assert imported.resolve_job_def(MAPPINGS_JOB).execute_in_process(instance=instance).success
    moved = warehouse.query(
        "SELECT sum(offered) AS n FROM queue_intervals WHERE destination_queue = 'Hotline'"
    )["n"][0]
    left = warehouse.query(
        "SELECT count(*) AS n FROM queue_intervals WHERE destination_queue = ?", [f"berlin/{queue}"]
    )["n"][0]
    workload = warehouse.query("SELECT sum(offered) AS n FROM workload_intervals")["n"][0]
    assert moved == old == workload
    assert left == 0
    assert fact_files(settings.warehouse_dir) == before
    queues = warehouse.query("SELECT * FROM queues WHERE destination_queue = 'Hotline'")
    assert queues["mapped"].tolist() == [True]


def test_value_types_long_form(imported, warehouse):
    types = set(warehouse.query("SELECT DISTINCT value_type FROM queue_value_types")["value_type"])
    assert {"Calls Offered", "Calls Answered", "Calls Average Handling Time"} <= types
    assert {"Chats Offered", "Emails Average Handling Time"} <= types
    pair = warehouse.query(
        """
        SELECT v.value, q.aht_s FROM queue_value_types v JOIN queue_intervals q
          USING (destination_queue, channel, interval_start)
        WHERE v.value_type = 'Calls Average Handling Time' AND q.answered > 0 LIMIT 20
        """
    )
    assert (pair["value"] == pair["aht_s"]).all()


def test_counts_are_bigint_and_seconds_double_in_every_view(imported, warehouse):
    # sum() over integers is HUGEINT in DuckDB, which pandas turns into floats: every view
    # casts its counts to BIGINT (and its seconds are DOUBLE), so a count stays an integer.
    with warehouse.connect() as con:
        views = [
            name
            for (name,) in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal "
                "AND NOT starts_with(view_name, '_')"
            ).fetchall()
        ]
        assert {"queue_intervals", "queue_days", "workload_days", "contact_days"} <= set(views)
        for view in views:
            described = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
            types = {row[0]: row[1] for row in described}
            assert "HUGEINT" not in types.values(), (view, types)
            assert not any(t.startswith("DECIMAL") for t in types.values()), (view, types)
            for column in ("offered", "answered", "abandoned", "answered_in_sl"):
                if column in types:
                    assert types[column] == "BIGINT", (view, column, types[column])
            for column in ("handle_time_s", "aht_s", "seconds"):
                if column in types:
                    assert types[column] == "DOUBLE", (view, column, types[column])
    days = warehouse.query("SELECT offered, answered, handle_time_s FROM queue_days")
    assert [str(t) for t in days.dtypes] == ["int64", "int64", "float64"]
