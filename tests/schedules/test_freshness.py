"""Freshness of real-time integrations: an asset check per real-time data kind, evaluated by a
sensor (passed while records come, WARN past the threshold or before any record) and shown
on the asset, and runnable by hand; batch integrations have none."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from etl.config import Integration, Settings
from etl.definitions import build_definitions
from etl.ingest.landing import Landing
from etl.ingest.store import LandingStore
from etl.schedules.freshness import (
    build_freshness_checks,
    build_freshness_sensor,
    real_time_kinds,
)
from tests.conftest import FIXED_NOW, make_integration
from tests.helpers import fixed_clock

PUSH = {
    "id": "push_berlin",
    "vendor": "api",
    "delivery": "cloud",
    "interval_minutes": 15,
    "data": ["agent_status"],
    "timezone": "Europe/Berlin",
    "history_start": "2026-11-01",
    "source": {"freshness_warn_seconds": 120},
}
KEY = dg.AssetKey(["push_berlin", "agent_status"])


def land_one(url: str, integration: Integration, at) -> None:
    store = LandingStore(url)
    record = {
        "user_identifier": "anna",
        "external_activity": "Available",
        "start_utc": at.isoformat(),
        "end_utc": None,
    }
    Landing(store, [integration], now=lambda: at).land("push_berlin", "agent_status", [record])
    store.dispose()


def test_the_sensor_evaluates_the_check_and_warns_when_stale(tmp_path, instance) -> None:
    url = f"sqlite:///{tmp_path / 'landing.sqlite'}"
    integration = Integration.model_validate(PUSH)
    sensor = build_freshness_sensor(integration, {"agent_status": KEY}, url)
    with fixed_clock(FIXED_NOW):
        empty = sensor(dg.build_sensor_context(instance=instance))
    (never,) = empty.asset_events
    assert isinstance(never, dg.AssetCheckEvaluation)
    assert (never.asset_key, never.check_name, never.passed) == (KEY, "freshness", False)
    assert never.severity == dg.AssetCheckSeverity.WARN
    assert empty.skip_reason.skip_message == "agent_status: no agent_status record landed yet"

    land_one(url, integration, FIXED_NOW - timedelta(seconds=30))
    for now, seconds, passed in (
        (FIXED_NOW, 30.0, True),
        (FIXED_NOW + timedelta(seconds=90), 120.0, True),  # at the threshold: still fresh
        (FIXED_NOW + timedelta(minutes=5), 330.0, False),
    ):
        with fixed_clock(now):
            result = sensor(dg.build_sensor_context(instance=instance))
        check, observation = result.asset_events
        assert (check.asset_key, check.check_name) == (KEY, "freshness")
        assert check.passed is passed
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["seconds_since_last_record"].value == seconds
        assert check.metadata["freshness_warn_seconds"].value == 120
        assert observation.asset_key == KEY
        assert observation.metadata["seconds_since_last_record"].value == seconds
        assert observation.metadata["stale"].value is not passed
        assert ("stale" in result.skip_reason.skip_message) is not passed


def test_the_check_shows_on_the_asset_and_runs_by_hand(tmp_path, instance) -> None:
    url = f"sqlite:///{tmp_path / 'landing.sqlite'}"
    integration = Integration.model_validate(PUSH)
    land_one(url, integration, FIXED_NOW - timedelta(seconds=400))
    (check,) = build_freshness_checks(integration, {"agent_status": KEY}, url)
    with fixed_clock(FIXED_NOW):
        result = dg.materialize(
            [check, dg.AssetSpec(KEY)], instance=instance, selection=dg.AssetSelection.checks(check)
        )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["seconds_since_last_record"].value == 400.0
    # The sensor's evaluations are stored like the run's: the latest shows on the asset.
    sensor = build_freshness_sensor(integration, {"agent_status": KEY}, url)
    land_one(url, integration, FIXED_NOW - timedelta(seconds=10))
    with fixed_clock(FIXED_NOW):
        events = sensor(dg.build_sensor_context(instance=instance)).asset_events
    assert events[0].passed is True


def test_real_time_integrations_get_the_check_and_batch_ones_do_not(tmp_path) -> None:
    mitel = make_integration(
        id="mitel_oslo",
        vendor="mitel",
        delivery="on_premise",
        data=["agent_status"],
        timezone="Europe/Oslo",
        source={"host": "127.0.0.1"},
    )
    genesys = {
        "vendor": "genesys_cloud",
        "delivery": "cloud",
        "data": ["contacts", "agent_status"],
        "revision_window_hours": 72,
    }
    source = {"client_id": "c", "client_secret_env": "X"}
    live = make_integration(id="gc_live", **genesys, source={**source, "notifications": {}})
    batch = make_integration(id="gc_batch", **genesys, source=source)
    push = Integration.model_validate({**PUSH, "data": ["contacts", "agent_status"]})
    assert real_time_kinds(push) == ("contacts", "agent_status")
    assert real_time_kinds(mitel) == ("agent_status",)
    assert real_time_kinds(live) == ("agent_status",)
    assert real_time_kinds(batch) == ()
    assert real_time_kinds(make_integration(id="sim")) == ()

    mappings = tmp_path / "mappings"
    mappings.mkdir()
    settings = Settings(
        integrations_path=tmp_path / "integrations.yaml",
        warehouse_dir=tmp_path / "warehouse",
        mappings_dir=mappings,
    )
    defs = build_definitions(settings, [push, mitel, live, batch])
    checks = {
        key
        for spec in defs.resolve_asset_graph().asset_check_keys
        if (key := spec).name == "freshness"
    }
    assert checks == {
        dg.AssetCheckKey(dg.AssetKey(["push_berlin", "contacts"]), "freshness"),
        dg.AssetCheckKey(dg.AssetKey(["push_berlin", "agent_status"]), "freshness"),
        dg.AssetCheckKey(dg.AssetKey(["mitel_oslo", "agent_status"]), "freshness"),
        dg.AssetCheckKey(dg.AssetKey(["gc_live", "agent_status"]), "freshness"),
    }
    sensors = {s.name for s in defs.sensors if s.name.endswith("_freshness_sensor")}
    assert sensors == {
        "push_berlin_freshness_sensor",
        "mitel_oslo_freshness_sensor",
        "gc_live_freshness_sensor",
    }
    # Imports do not run the freshness check (the sensor does).
    job = defs.resolve_job_def("push_berlin_import")
    assert all(key.name != "freshness" for key in job.asset_layer.asset_graph.asset_check_keys)
