from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from etl.config import ConfigError, Settings, load_integrations, parse_integrations
from tests.helpers import definitions, fixed_clock

GOOD = {
    "id": "berlin",
    "vendor": "simulator",
    "delivery": "cloud",
    "interval_minutes": 15,
    "data": ["contacts"],
    "timezone": "Europe/Berlin",
    "history_start": "2026-01-01",
}


def _error(*integrations: dict, defaults: dict | None = None) -> str:
    document = {"integrations": list(integrations)}
    if defaults:
        document["defaults"] = defaults
    with pytest.raises(ConfigError) as info:
        parse_integrations(document, origin="integrations.yaml")
    return str(info.value)


def test_shipped_demo_config_is_valid():
    integrations = load_integrations(Path(__file__).parents[1] / "integrations.yaml")
    by_id = {i.id: i for i in integrations}
    assert len(integrations) >= 3
    intervals = {(i.interval_minutes, i.timezone, i.delivery) for i in integrations}
    assert (15, "Europe/Berlin", "cloud") in intervals
    assert any(m == 30 and tz == "America/New_York" for m, tz, _ in intervals)
    assert (60, "Asia/Kolkata", "on_premise") in intervals
    assert all(i.vendor for i in by_id.values())


def test_defaults_apply_and_fields_are_typed():
    [integration] = parse_integrations(
        {"defaults": {"revision_window_hours": 5}, "integrations": [GOOD]}
    )
    assert integration.revision_window_hours == 5
    assert integration.history_start.isoformat() == "2026-01-01T00:00:00+00:00"
    assert integration.data == ("contacts",)
    assert not integration.paused


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"vendor": "acme_acd"}, "integration 'berlin': field 'vendor': unknown vendor 'acme_acd'"),
        ({"interval_minutes": 20}, "integration 'berlin': field 'interval_minutes'"),
        ({"timezone": "Europe/Berlyn"}, "field 'timezone': Value error, unknown IANA timezone"),
        ({"delivery": "hybrid"}, "integration 'berlin': field 'delivery'"),
        ({"data": ["contacts", "emails"]}, "integration 'berlin': field 'data.1'"),
        ({"settle_minutes": 15}, "settle_minutes (15) must be shorter than the interval"),
        ({"status": "stopped"}, "integration 'berlin': field 'status'"),
        ({"colour": "blue"}, "integration 'berlin': field 'colour': Extra inputs"),
        ({"source": {"seed": "x"}}, "integration 'berlin': field 'source.seed'"),
        ({"source": {"speed": 3}}, "field 'source.speed': unknown setting for simulator"),
        (
            {"source": {"password": "hunter2"}},
            "field 'source.password': secret given inline; put it in an environment variable "
            "and name the variable in password_env",
        ),
        (
            {"source": {"url": "postgresql://u:hunter2@db/x"}},
            "field 'source.url': URL with an inline password",
        ),
    ],
)
def test_bad_field_names_integration_and_field(change, expected):
    message = _error({**GOOD, **change})
    assert message.startswith("integrations.yaml is invalid:")
    assert expected in message
    assert "hunter2" not in message


def test_missing_field_and_duplicate_id_are_both_reported():
    incomplete = {k: v for k, v in GOOD.items() if k != "timezone"}
    message = _error(GOOD, {**GOOD}, {**incomplete, "id": "other"})
    assert "integration 'berlin': field 'id': duplicate id 'berlin'" in message
    assert "integration 'other': field 'timezone': Field required" in message


def test_settings_from_env_and_missing_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"integrations": [GOOD]}))
    settings = Settings.from_env({"WFM_INTEGRATIONS": str(path), "WFM_HOME": str(tmp_path)})
    assert settings.integrations_path == path
    assert settings.warehouse_dir == tmp_path / "data" / "warehouse"
    assert [i.id for i in load_integrations(settings.integrations_path)] == ["berlin"]
    with pytest.raises(ConfigError, match="integrations file not found"):
        load_integrations(tmp_path / "absent.yaml")
    (tmp_path / "broken.yaml").write_text("integrations: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_integrations(tmp_path / "broken.yaml")


def test_history_start_in_the_future_is_a_config_error(settings):
    with fixed_clock(datetime(2026, 11, 18, 10, 20, tzinfo=UTC)):
        message = _error({**GOOD, "history_start": "2026-11-18T11:00:00Z"})
        assert (
            "integration 'berlin': field 'history_start': Value error, 2026-11-18 11:00 UTC is "
            "in the future (now 2026-11-18 10:20 UTC): the first hour to import must have begun"
        ) in message
        # the current hour has begun: it is a valid start, and its definitions load
        [current] = parse_integrations(
            {"integrations": [{**GOOD, "history_start": "2026-11-18T10:00Z"}]}
        )
        assert definitions(settings, current).resolve_job_def("berlin_import")


def test_emptied_hours_is_fail_or_replace():
    assert "field 'emptied_hours'" in _error({**GOOD, "emptied_hours": "keep"})
    [integration] = parse_integrations({"integrations": [{**GOOD, "emptied_hours": "replace"}]})
    assert integration.emptied_hours == "replace"
