"""The simulator's agent days: deterministic per window, realistic, sized from its own load."""

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from etl.identifiers import EMAIL
from etl.resources.sources import build_source
from etl.resources.sources.simulator import simulated_agents
from etl.schemas import STRING, agent_status_schema, overlapping_segments
from tests.agent_sources import simulator_at
from tests.conftest import make_integration

DAY = (datetime(2026, 11, 16, 23, tzinfo=UTC), datetime(2026, 11, 17, 23, tzinfo=UTC))  # Tue
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def source(**settings):
    integration = make_integration(
        id="sim", data=["agent_status"], source={"seed": 4, "queues": 6, **settings}
    )
    return simulator_at(integration, LATER)


def clear_caches():
    simulated_agents.day_frame.cache_clear()
    simulated_agents.day_plan.cache_clear()
    simulated_agents.pool_size.cache_clear()


def test_any_window_alone_gives_the_same_segments():
    whole = source().agent_status(*DAY).frame
    clear_caches()
    middle = DAY[0] + timedelta(hours=13)
    parts = pd.concat(
        [source().agent_status(DAY[0], middle).frame, source().agent_status(middle, DAY[1]).frame]
    )
    parts = parts.drop_duplicates(["user_identifier", "start_utc"])
    parts = parts.sort_values(["user_identifier", "start_utc"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, parts)
    clear_caches()
    pd.testing.assert_frame_equal(whole, source().agent_status(*DAY).frame)
    other_seed = source(seed=5).agent_status(*DAY).frame
    assert not whole[["user_identifier", "start_utc"]].equals(
        other_seed[["user_identifier", "start_utc"]]
    )


def test_agent_days_are_valid_contiguous_and_realistic():
    frame = source().agent_status(*DAY).frame
    agent_status_schema().validate(frame.astype({"user_identifier": STRING}))
    assert overlapping_segments(frame).empty
    frame = frame.sort_values(["user_identifier", "start_utc"])
    per_user = frame.groupby("user_identifier")
    # Days are login..logout without gaps: each segment starts where the previous ended,
    # except where a user logs in again (a shift on another day).
    gaps = frame["start_utc"] - per_user["end_utc"].shift()
    assert (gaps.dropna() >= pd.Timedelta(0)).all()
    assert (gaps.dropna() == pd.Timedelta(0)).mean() > 0.99
    activities = set(frame["external_activity"])
    assert {"Available", "On Call", "After Call Work", "Break", "Lunch"} <= activities
    session = (gaps.isna() | (gaps > pd.Timedelta(0))).cumsum()
    logged_in = frame.groupby(session).agg(login=("start_utc", "min"), logout=("end_utc", "max"))
    shift = logged_in["logout"] - logged_in["login"]
    assert shift.max() < pd.Timedelta(hours=10)
    assert shift.median() > pd.Timedelta(hours=7)  # most are full shifts, some shorter
    lunches = frame[frame["external_activity"] == "Lunch"].groupby("user_identifier").size()
    assert (lunches <= 1).all()
    assert all(name.count(".") == 1 and name[0].isupper() for name in frame["user_identifier"])


def logged_in_at(frame: pd.DataFrame, moment: pd.Timestamp) -> int:
    at = (frame["start_utc"] <= moment) & (frame["end_utc"] > moment)
    return frame.loc[at, "user_identifier"].nunique()


def test_staffing_follows_the_contact_load():
    sim = source()
    frame = sim.agent_status(*DAY).frame
    contacts = sim.contacts(*DAY).frame
    morning = pd.Timestamp("2026-11-17 10:00", tz="Europe/Berlin")
    night = pd.Timestamp("2026-11-17 03:00", tz="Europe/Berlin")
    assert logged_in_at(frame, morning) > 4 * logged_in_at(frame, night) > 0
    handled = frame["external_activity"].str.startswith("On ").sum()
    answered = contacts["answered"].sum()
    assert 0.8 * answered < handled < 1.2 * answered
    work = frame[frame["external_activity"].str.startswith("On ")]
    work_s = (work["end_utc"] - work["start_utc"]).dt.total_seconds().sum()
    talk_s = contacts["talk_time_s"].sum() + contacts["hold_time_s"].sum()
    assert 0.8 * talk_s < work_s < 1.2 * talk_s


def test_open_state_at_the_simulated_now():
    integration = make_integration(id="sim", data=["agent_status"], source={"seed": 4})
    now = datetime(2026, 11, 17, 10, 7, 30, tzinfo=UTC)
    frame = simulator_at(integration, now).agent_status(now - timedelta(hours=1), now).frame
    assert (frame["start_utc"] < now).all()
    open_rows = frame[frame["end_utc"].isna()]
    assert open_rows["user_identifier"].is_unique
    assert len(open_rows) == logged_in_at(
        simulator_at(integration, LATER).agent_status(now, now + timedelta(minutes=1)).frame,
        pd.Timestamp(now),
    )
    assert len(open_rows) > 3


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("email", lambda value: EMAIL.match(value) and value == value.lower()),
        ("agent_id", str.isdigit),
        ("user_name", lambda value: "@" not in value and "." in value),
    ],
)
def test_identifier_kind_setting(kind, check):
    frame = source(user_identifiers=kind).agent_status(*DAY).frame
    assert all(check(value) for value in frame["user_identifier"].unique())


def test_agent_pool_can_be_fixed():
    frame = source(agents=5).agent_status(*DAY).frame
    assert frame["user_identifier"].nunique() <= 5


def test_dst_days_are_longer_or_shorter():
    centre = build_source(
        make_integration(data=["agent_status"], history_start="2026-03-01")
    ).centre()
    slots = {
        day: len(simulated_agents.day_plan(centre, day).occupancy)
        for day in (date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 17))
    }
    assert slots == {date(2026, 3, 29): 46, date(2026, 10, 25): 50, date(2026, 11, 17): 48}


def test_names_are_unique_in_a_large_pool():
    centre = source(agents=900).centre()
    names = [simulated_agents.user_identifier(centre, agent) for agent in range(900)]
    assert len(set(names)) == 900


def test_no_agent_overlaps_itself_across_days():
    # A late shift's overtime must never run into the same agent's early shift next day.
    variants = ({"seed": 1}, {"seed": 2}, {"agents": 12}, {"channels": ["documents", "tickets"]})
    for settings in variants:
        month = source(**settings).agent_status(
            datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
        )
        assert overlapping_segments(month.frame).empty, settings
