"""The agent_status asset through real Dagster runs: segments split at hours, open states,
re-imports, identifiers kept exactly, overlaps rejected, DST days."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from etl.assets.agent_status import split_segments
from etl.assets.facts import source_key
from etl.config import ConfigError, parse_integrations
from etl.partitions import floor_hour
from etl.resources.sources import VENDORS, SourceResource
from etl.schemas import OVERLAP_RULE
from tests.agent_sources import rebuild_mappings, scripted, simulator_at, write_mappings
from tests.conftest import make_integration
from tests.helpers import definitions, import_range

# Tuesday 2026-11-17 in Berlin, with a margin on both sides.
WINDOW = (datetime(2026, 11, 16, 21, tzinfo=UTC), datetime(2026, 11, 18, 3, tzinfo=UTC))
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def agent_integration(**overrides):
    fields = {"id": "agents", "data": ["agent_status"], "source": {"seed": 3, "queues": 4}}
    return make_integration(**{**fields, **overrides})


def segments(warehouse, where: str = "TRUE") -> pd.DataFrame:
    return warehouse.query(
        f"SELECT * FROM agent_status_segments WHERE {where} ORDER BY user_identifier, start_utc"
    )


def sessions_seconds(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.Series:
    """Logged-in seconds per user, from login/logout of each session (a run of segments
    where each starts as the previous ends), clipped to [start, end)."""
    frame = frame.sort_values(["user_identifier", "start_utc"])
    same_user = frame["user_identifier"].eq(frame["user_identifier"].shift())
    new_session = ~(same_user & frame["start_utc"].eq(frame["end_utc"].shift()))
    session = new_session.cumsum()
    bounds = frame.groupby(session).agg(
        user=("user_identifier", "first"), login=("start_utc", "min"), logout=("end_utc", "max")
    )
    login = bounds["login"].clip(lower=pd.Timestamp(start))
    logout = bounds["logout"].clip(upper=pd.Timestamp(end))
    return (logout - login).dt.total_seconds().groupby(bounds["user"]).sum()


def test_simulated_day_round_trips(settings, warehouse, instance):
    integration = agent_integration()
    source = simulator_at(integration, LATER)
    defs = definitions(settings, integration, **{source_key(integration): source})
    result = import_range(defs, instance, integration.id, *WINDOW)
    assert result.success
    delivered = source.agent_status(*WINDOW).frame
    assert delivered["end_utc"].notna().all()
    stored = segments(warehouse)

    # Total seconds per user equal the logged-in time (login to logout, within the window).
    per_user = stored.groupby("user_identifier")["seconds"].sum()
    logged_in = sessions_seconds(delivered, *WINDOW)
    assert len(per_user) >= 10
    pd.testing.assert_series_equal(per_user, logged_in, check_names=False)

    # Pieces never cross an hour and sum back to the segments as delivered.
    assert (
        stored["start_utc"].dt.floor("h") == (stored["end_utc"] - pd.Timedelta("1us")).dt.floor("h")
    ).all()
    assert len(stored) > len(delivered)  # some segments were split
    inside = delivered[
        (delivered["start_utc"] >= WINDOW[0]) & (delivered["end_utc"] <= WINDOW[1])
    ].set_index(["user_identifier", "start_utc"])
    rebuilt = stored.groupby(["user_identifier", "segment_start_utc"])["seconds"].sum()
    rebuilt.index.names = ["user_identifier", "start_utc"]
    want = (inside["end_utc"] - inside.index.get_level_values("start_utc")).dt.total_seconds()
    assert rebuilt.loc[want.index].tolist() == want.tolist()
    assert not stored["is_open"].any()
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0
    partitions = instance.get_materialized_partitions(dg.AssetKey([integration.id, "agent_status"]))
    assert len(partitions) == 30


def test_state_across_partition_boundary_and_reimport(settings, warehouse, instance):
    integration = agent_integration(id="scripted")
    first = [
        ["Anna.Smith", "Available", "2026-11-16T09:40:00Z", ""],  # still going
        ["Ben.Jones", "On Call", "2026-11-16T09:50:00Z", "2026-11-16T10:10:00Z"],
        ["Ben.Jones", "After Call Work", "2026-11-16T10:10:00Z", "2026-11-16T10:12:00Z"],
    ]
    window = (datetime(2026, 11, 16, 9, tzinfo=UTC), datetime(2026, 11, 16, 11, tzinfo=UTC))
    defs = definitions(settings, integration, **scripted(integration, first))
    assert import_range(defs, instance, integration.id, *window).success
    anna = segments(warehouse, "user_identifier = 'Anna.Smith'")
    assert anna[["start_utc", "end_utc", "is_open"]].astype(str).values.tolist() == [
        ["2026-11-16 09:40:00+00:00", "2026-11-16 10:00:00+00:00", "False"],
        ["2026-11-16 10:00:00+00:00", "2026-11-16 11:00:00+00:00", "True"],
    ]
    ben = segments(warehouse, "user_identifier = 'Ben.Jones'")
    assert ben["seconds"].tolist() == [600.0, 600.0, 120.0]  # On Call split at 10:00

    # The source closes Anna's state at 10:20; she takes a call, then is available again.
    closed = [
        ["Anna.Smith", "Available", "2026-11-16T09:40:00Z", "2026-11-16T10:20:00Z"],
        ["Anna.Smith", "On Call", "2026-11-16T10:20:00Z", "2026-11-16T10:50:00Z"],
        ["Anna.Smith", "Available", "2026-11-16T10:50:00Z", ""],
        *first[1:],
    ]
    defs = definitions(settings, integration, **scripted(integration, closed))
    hour_10 = (window[0] + timedelta(hours=1), window[1])
    assert import_range(defs, instance, integration.id, *hour_10).success  # only hour 10
    assert import_range(defs, instance, integration.id, *window).success  # and both again
    anna = segments(warehouse, "user_identifier = 'Anna.Smith'")
    assert anna[["external_activity", "start_utc", "end_utc", "is_open"]].astype(
        str
    ).values.tolist() == [
        ["Available", "2026-11-16 09:40:00+00:00", "2026-11-16 10:00:00+00:00", "False"],
        ["Available", "2026-11-16 10:00:00+00:00", "2026-11-16 10:20:00+00:00", "False"],
        ["On Call", "2026-11-16 10:20:00+00:00", "2026-11-16 10:50:00+00:00", "False"],
        ["Available", "2026-11-16 10:50:00+00:00", "2026-11-16 11:00:00+00:00", "True"],
    ]
    assert anna["seconds"].sum() == 80 * 60
    whole = anna[anna["segment_start_utc"] == pd.Timestamp("2026-11-16 09:40", tz="UTC")]
    assert whole["seconds"].sum() == 40 * 60
    assert (whole["segment_end_utc"] == pd.Timestamp("2026-11-16 10:20", tz="UTC")).all()
    dupes = warehouse.query(
        "SELECT count(*) AS n FROM (SELECT user_identifier, start_utc FROM "
        "agent_status_segments GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dupes["n"][0] == 0
    assert len(segments(warehouse, "user_identifier = 'Ben.Jones'")) == 3


def test_open_state_in_current_hour_stops_at_import_time(settings, warehouse, instance):
    hour = floor_hour(datetime.now(UTC))
    integration = agent_integration(id="live", history_start=hour - timedelta(days=1))
    since = (hour - timedelta(minutes=30)).isoformat()
    defs = definitions(
        settings, integration, **scripted(integration, [["Anna.Smith", "Available", since, ""]])
    )
    result = import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1))
    assert result.success
    [row] = segments(warehouse).to_dict(orient="records")
    assert row["start_utc"] == hour
    assert hour < row["end_utc"] <= datetime.now(UTC)
    assert row["is_open"]
    assert pd.isna(row["segment_end_utc"])
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["complete"].value is False
    assert event.materialization.metadata["open_segments"].value == 1


def test_split_segments_cuts_open_state_at_import_time():
    frame = pd.DataFrame(
        {
            "integration_id": "x",
            "user_identifier": ["a", "b", "c"],
            "external_activity": ["Available", "On Call", "Break"],
            "start_utc": pd.to_datetime(
                ["2026-11-16T08:30Z", "2026-11-16T09:10Z", "2026-11-16T11:30Z"], utc=True
            ),
            "end_utc": pd.to_datetime([None, "2026-11-16T12:30Z", None], utc=True),
        }
    )
    start, end = datetime(2026, 11, 16, 9, tzinfo=UTC), datetime(2026, 11, 16, 12, tzinfo=UTC)
    imported_at = datetime(2026, 11, 16, 10, 15, 42, 500, tzinfo=UTC)
    pieces = split_segments(frame, make_integration(), start, end, imported_at)
    got = pieces[["user_identifier", "start_utc", "end_utc", "is_open"]]
    assert got.astype(str).values.tolist() == [
        ["a", "2026-11-16 09:00:00+00:00", "2026-11-16 10:00:00+00:00", "False"],
        ["a", "2026-11-16 10:00:00+00:00", "2026-11-16 10:15:42+00:00", "True"],
        ["b", "2026-11-16 09:10:00+00:00", "2026-11-16 10:00:00+00:00", "False"],
        ["b", "2026-11-16 10:00:00+00:00", "2026-11-16 11:00:00+00:00", "False"],
        ["b", "2026-11-16 11:00:00+00:00", "2026-11-16 12:00:00+00:00", "False"],
    ]  # c began after the import time: nothing to store yet
    assert pieces["segment_start_utc"].astype(str).tolist()[:2] == ["2026-11-16 08:30:00+00:00"] * 2


EMPLOYEES = "employee_id,name\nE1,Anna Smith\n"
ANNA = "employee_id,integration_id,external_employee_id,user_identifier\nE1,{id},A-1,Anna.Smith\n"


def test_identifiers_are_kept_exactly_and_unmatched_reported(settings, warehouse, instance):
    integration = agent_integration(id="cases", max_rejected_share=1.0)
    hour = "2026-11-16T09:{:02d}:00Z"
    variants = ["Anna.Smith", "anna.smith", "Anna.Smith ", " Anna.Smith", "ANNA.SMITH"]
    script = [[who, "Available", hour.format(0), hour.format(30)] for who in variants]
    script += [["   ", "Available", hour.format(0), hour.format(30)]]
    script += [["", "Available", hour.format(0), hour.format(30)]]
    defs = definitions(settings, integration, **scripted(integration, script))
    write_mappings(settings, employees=EMPLOYEES, employee_identifiers=ANNA.format(id="cases"))
    rebuild_mappings(defs, instance)
    start = datetime(2026, 11, 16, 9, tzinfo=UTC)
    result = import_range(defs, instance, integration.id, start, start + timedelta(hours=1))
    assert result.success

    stored = set(segments(warehouse)["user_identifier"])
    assert stored == set(variants)  # nothing trimmed, nothing case-folded
    matched = warehouse.query("SELECT DISTINCT employee_id, user_identifier FROM agent_activity")
    assert matched.values.tolist() == [["E1", "Anna.Smith"]]
    unmatched = warehouse.query(
        "SELECT user_identifier, segments, seconds, similar_identifiers, first_seen "
        "FROM unmatched_users ORDER BY user_identifier"
    )
    assert sorted(unmatched["user_identifier"]) == sorted(variants[1:])
    assert (unmatched["segments"] == 1).all()
    assert (unmatched["seconds"] == 1800).all()
    assert all(list(s) == ["Anna.Smith"] for s in unmatched["similar_identifiers"])
    rules = warehouse.query("SELECT source_ref, rules FROM rejected_rows ORDER BY source_ref")
    assert rules["source_ref"].tolist() == ["script line 6", "script line 7"]
    assert list(rules["rules"][0]) == [
        "user_identifier: not blank (spaces or invisible characters only)"
    ]
    assert "user_identifier: not empty" in list(rules["rules"][1])

    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["unmatched_users"].value == 4
    assert sorted(metadata["unmatched_user_identifiers"].value["values"]) == sorted(variants[1:])


def test_overlapping_and_impossible_segments_are_rejected(settings, warehouse, instance):
    integration = agent_integration(id="overlaps", max_rejected_share=1.0)
    t = "2026-11-16T{}:00Z"
    script = [
        ["u1", "Available", t.format("09:00"), t.format("09:30")],
        ["u1", "On Call", t.format("09:20"), t.format("09:40")],  # overlaps the one above
        ["u1", "Break", t.format("09:40"), t.format("09:55")],
        ["u1", "Break", t.format("09:40"), t.format("09:55")],  # exact copy: kept once
        ["u2", "Available", t.format("08:00"), ""],  # open ...
        ["u2", "On Call", t.format("09:30"), t.format("09:45")],  # ... so this overlaps it
        ["u3", "Available", t.format("09:10"), t.format("09:05")],  # ends before it starts
        ["u4", "Available", t.format("07:00"), t.format("08:00")],  # not in the window
        ["u5", "Available", t.format("08:50"), t.format("09:10")],  # began before: fine
    ]
    defs = definitions(
        settings, integration, **scripted(integration, script, only_overlapping=False)
    )
    start = datetime(2026, 11, 16, 9, tzinfo=UTC)
    assert import_range(defs, instance, integration.id, start, start + timedelta(hours=1)).success
    stored = segments(warehouse)
    assert stored[["user_identifier", "external_activity"]].values.tolist() == [
        ["u1", "Break"],
        ["u5", "Available"],
    ]
    assert stored["seconds"].tolist() == [900.0, 600.0]
    rejected = warehouse.query("SELECT source_ref, rules FROM rejected_rows ORDER BY source_ref")
    by_line = {
        ref: list(rules)
        for ref, rules in zip(rejected["source_ref"], rejected["rules"], strict=True)
    }
    assert by_line["script line 1"] == [OVERLAP_RULE]
    assert by_line["script line 2"] == [OVERLAP_RULE]
    assert "script line 4" not in by_line  # an exact copy is kept once, not rejected
    assert by_line["script line 5"] == [OVERLAP_RULE]
    assert by_line["script line 6"] == [OVERLAP_RULE]
    assert by_line["script line 7"] == [
        "end_utc after start_utc (empty while the agent is still in the state)"
    ]
    assert by_line["script line 8"] == ["start_utc..end_utc: does not overlap the imported window"]
    assert len(by_line) == 6
    [event] = import_range(
        defs, instance, integration.id, start, start + timedelta(hours=1)
    ).get_asset_materialization_events()
    assert event.materialization.metadata["rows_duplicate"].value == 1
    assert event.materialization.metadata["rows_rejected"].value == 6


def test_dst_day_has_25_local_hours(settings, warehouse, instance):
    # Europe/Berlin falls back on 2026-10-25: 02:00-03:00 local happens twice.
    integration = agent_integration(id="dst", history_start="2026-10-01")
    day = (datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC))
    script = [["Night.Owl", "Available", day[0].isoformat(), day[1].isoformat()]]
    defs = definitions(settings, integration, **scripted(integration, script))
    write_mappings(
        settings,
        employees="employee_id,name\nE7,Night Owl\n",
        employee_identifiers="employee_id,integration_id,external_employee_id,user_identifier\n"
        "E7,dst,,Night.Owl\n",
    )
    rebuild_mappings(defs, instance)
    assert import_range(defs, instance, integration.id, *day).success
    local = warehouse.query(
        "SELECT hour(start_local) AS h, seconds FROM agent_activity "
        "WHERE CAST(start_local AS DATE) = DATE '2026-10-25' ORDER BY start_utc"
    )
    assert len(local) == 25
    assert local["seconds"].sum() == 25 * 3600
    assert local["h"].tolist() == [0, 1, 2, 2, *range(3, 24)]
    intervals = warehouse.query(
        "SELECT interval_start_local, seconds FROM agent_activity_intervals "
        "WHERE CAST(interval_start_local AS DATE) = DATE '2026-10-25'"
    )
    assert len(intervals) == 100
    assert (intervals["seconds"] == 900).all()


def test_empty_delivery_of_a_loaded_hour_fails_unless_configured(settings, warehouse, instance):
    integration = agent_integration(id="quiet")
    hour = datetime(2026, 11, 16, 9, tzinfo=UTC)
    busy = [["Anna.Smith", "Available", "2026-11-16T09:00:00Z", "2026-11-16T09:30:00Z"]]
    defs = definitions(settings, integration, **scripted(integration, busy))
    assert import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1)).success
    assert len(segments(warehouse)) == 1
    # A source that cannot say "this hour is empty" delivers nothing: the hour keeps its row.
    defs = definitions(settings, integration, **scripted(integration, []))
    result = import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1))
    assert not result.success
    assert len(segments(warehouse)) == 1
    # Told to trust it (the source's empty answer is true), the hour is emptied.
    trusting = integration.model_copy(update={"emptied_hours": "replace"})
    defs = definitions(settings, trusting, **scripted(trusting, []))
    assert import_range(defs, instance, trusting.id, hour, hour + timedelta(hours=1)).success
    assert len(segments(warehouse)) == 0  # the source revised the hour to nothing


def test_vendor_without_agent_status_is_a_config_error(monkeypatch):
    class ContactsOnly(SourceResource):
        def contacts(self, start, end):
            raise NotImplementedError

    monkeypatch.setitem(VENDORS, "contacts_only", ContactsOnly)
    document = {
        "integrations": [
            {
                "id": "old_acd",
                "vendor": "contacts_only",
                "delivery": "on_premise",
                "interval_minutes": 30,
                "data": ["contacts", "agent_status"],
                "timezone": "Europe/Berlin",
                "history_start": "2026-01-01",
            }
        ]
    }
    with pytest.raises(ConfigError) as error:
        parse_integrations(document)
    assert (
        "integration 'old_acd': field 'data': vendor 'contacts_only' delivers no agent_status data"
    ) in str(error.value)
    assert "no contacts data" not in str(error.value)
