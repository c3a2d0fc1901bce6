"""The Avaya CMS preset on real PostgreSQL and MariaDB servers, across both DST changes.

An `hsplit` table is filled for the spring-forward day (2026-03-08) and the fall-back day
(2026-11-01) in America/New_York, imported through the real asset path (range runs), and the
warehouse is compared with what was inserted: every interval keyed on starttime_utc, the two
01:00 and 01:30 rows of the fall-back day both kept, no 02:00 rows on the spring day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from etl.resources.sources.vendors.avaya_cms import AvayaCmsSource
from tests.conftest import make_integration
from tests.helpers import definitions, import_range

NEW_YORK = ZoneInfo("America/New_York")
SPRING = date(2026, 3, 8)
FALL = date(2026, 11, 1)
URL_ENV = "WFM_TEST_CMS_URL"

METADATA = sa.MetaData()
HSPLIT = sa.Table(
    "hsplit",
    METADATA,
    sa.Column("row_date", sa.Date, nullable=False),
    sa.Column("starttime", sa.SmallInteger, nullable=False),
    sa.Column("starttime_utc", sa.BigInteger, nullable=False),
    sa.Column("intrvl", sa.SmallInteger, nullable=False),
    sa.Column("acd", sa.SmallInteger, nullable=False),
    sa.Column("split", sa.SmallInteger, nullable=False),
    sa.Column("callsoffered", sa.Integer, nullable=False),
    sa.Column("acdcalls", sa.Integer, nullable=False),
    sa.Column("abncalls", sa.Integer, nullable=False),
    sa.Column("acdtime", sa.Integer, nullable=False),
    sa.Column("acwtime", sa.Integer, nullable=False),
    sa.Column("holdtime", sa.Integer, nullable=False),
    sa.Column("acceptable", sa.Integer, nullable=False),
)


def local_day_utc(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), NEW_YORK).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), NEW_YORK)
    return start, end.astimezone(UTC)


def hsplit_rows(day: date, splits=(1, 2, 3), acd: int = 1) -> list[dict]:
    """One row per split and 30-minute interval of the local day, as the CMS writes them."""
    start, end = local_day_utc(day)
    rows = []
    moment, i = start, 0
    while moment < end:
        local = moment.astimezone(NEW_YORK)
        for split in splits:
            offered = 10 + (i * 7 + split) % 13
            answered = offered - 2
            rows.append(
                {
                    "row_date": local.date(),
                    "starttime": local.hour * 100 + local.minute,
                    "starttime_utc": int(moment.timestamp()),
                    "intrvl": 30,
                    "acd": acd,
                    "split": split,
                    "callsoffered": offered,
                    "acdcalls": answered,
                    "abncalls": 1,
                    "acdtime": answered * 200 + split,
                    "acwtime": answered * 30,
                    "holdtime": (i % 4) * 15,
                    "acceptable": answered - 1,
                }
            )
        moment += timedelta(minutes=30)
        i += 1
    return rows


def cms_integration(**source):
    return make_integration(
        id="cms_newyork",
        vendor="avaya_cms",
        delivery="on_premise",
        interval_minutes=30,
        timezone="America/New_York",
        history_start="2026-03-01",
        source={"url_env": URL_ENV, "splits": [1, 2], **source},
    )


def fill_hsplit(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    METADATA.create_all(engine)
    with engine.begin() as con:
        con.execute(HSPLIT.insert(), rows)
    engine.dispose()


@pytest.fixture(params=["pg_url", "mysql_url"])
def cms_url(request, monkeypatch) -> str:
    url = request.getfixturevalue(request.param)
    monkeypatch.setenv(URL_ENV, url)
    return url


def test_hsplit_across_both_dst_changes_lands_keyed_on_utc(cms_url, settings, warehouse, instance):
    inserted = hsplit_rows(SPRING) + hsplit_rows(FALL)
    inserted += hsplit_rows(FALL, splits=(1,), acd=2)  # another ACD: excluded by `acd: 1`
    fill_hsplit(cms_url, inserted)
    integration = cms_integration(acd=1)
    defs = definitions(settings, integration)

    for day in (SPRING, FALL):
        start, end = local_day_utc(day)
        assert import_range(defs, instance, integration.id, start, end).success

    stored = warehouse.query(
        "SELECT external_queue_id, channel, interval_start, interval_minutes, offered, answered,"
        " abandoned, handle_time_s, talk_time_s, hold_time_s, acw_time_s, answered_in_sl"
        " FROM contact_intervals ORDER BY interval_start, external_queue_id"
    )
    expected = pd.DataFrame(
        [r for r in inserted if r["split"] in (1, 2) and r["acd"] == 1]
    ).sort_values(["starttime_utc", "split"], ignore_index=True)
    assert len(stored) == len(expected) == 2 * (46 + 50)
    assert list(stored["external_queue_id"]) == [str(s) for s in expected["split"]]
    assert set(stored["channel"]) == {"calls"}
    assert set(stored["interval_minutes"]) == {30}
    assert [int(t.timestamp()) for t in stored["interval_start"]] == list(expected["starttime_utc"])
    assert list(stored["offered"]) == list(expected["callsoffered"])
    assert list(stored["answered"]) == list(expected["acdcalls"])
    assert list(stored["abandoned"]) == list(expected["abncalls"])
    handle = expected["acdtime"] + expected["acwtime"] + expected["holdtime"]
    assert list(stored["handle_time_s"]) == list(handle.astype(float))
    assert list(stored["talk_time_s"]) == list(expected["acdtime"].astype(float))
    assert list(stored["hold_time_s"]) == list(expected["holdtime"].astype(float))
    assert list(stored["acw_time_s"]) == list(expected["acwtime"].astype(float))
    assert list(stored["answered_in_sl"]) == list(expected["acceptable"])

    # Fall back: local 01:00 and 01:30 happen twice; both land, an hour apart in UTC.
    split1 = stored[stored["external_queue_id"] == "1"].set_index("interval_start")
    for utc_hour in (5, 6):
        for minute in (0, 30):
            assert pd.Timestamp(2026, 11, 1, utc_hour, minute, tz="UTC") in split1.index
    first, second = (
        pd.Timestamp("2026-11-01 05:00", tz="UTC"),
        pd.Timestamp("2026-11-01 06:00", tz="UTC"),
    )
    fall = expected[(expected["split"] == 1) & (expected["starttime"] == 100)]
    fall = fall[fall["row_date"] == FALL]
    assert len(fall) == 2  # the CMS wrote local 01:00 twice
    assert split1.loc[first, "offered"] == fall.iloc[0]["callsoffered"]
    assert split1.loc[second, "offered"] == fall.iloc[1]["callsoffered"]
    # Spring forward: 01:30 EST is followed by 03:00 EDT, nothing in between.
    spring = split1.loc["2026-03-08 06:00":"2026-03-08 07:30"].index
    assert list(spring) == [
        pd.Timestamp("2026-03-08 06:00", tz="UTC"),
        pd.Timestamp("2026-03-08 06:30", tz="UTC"),
        pd.Timestamp("2026-03-08 07:00", tz="UTC"),
        pd.Timestamp("2026-03-08 07:30", tz="UTC"),
    ]
    local = [t.tz_convert(NEW_YORK).strftime("%H:%M") for t in spring]
    assert local == ["01:00", "01:30", "03:00", "03:30"]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_split_list_and_window_bound_the_query(cms_url, monkeypatch):
    """Only the configured splits and the window's rows are read (starttime_utc bounds)."""
    fill_hsplit(cms_url, hsplit_rows(FALL))
    source = AvayaCmsSource.from_integration(cms_integration(splits=[2]))
    start = datetime(2026, 11, 1, 5, tzinfo=UTC)
    extract = source.contacts(start, start + timedelta(hours=2))
    frame = extract.frame
    assert list(frame["external_queue_id"].unique()) == ["2"]
    assert list(frame["interval_start"]) == list(
        pd.date_range("2026-11-01 05:00", periods=4, freq="30min", tz="UTC")
    )
    assert extract.description.endswith("4 row(s) read with COPY") == ("postgresql" in cms_url)


def test_agent_status_is_not_offered(cms_url):
    source = AvayaCmsSource.from_integration(cms_integration())
    with pytest.raises(NotImplementedError, match="contact data only"):
        source.agent_status(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
