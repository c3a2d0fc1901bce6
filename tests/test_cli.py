"""The command line as a user meets it: `wfm-etl import`'s lines, the demo's summary and the
SQL command it prints, `wfm-etl sql`, `wfm-etl vendors` and `wfm-etl dev` on a busy port.

Commands run as the installed `wfm-etl` in processes of their own (what a user sees includes
whatever Dagster would print), in homes under tmp_path."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import time
from datetime import UTC, datetime
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from threading import Thread

import dagster as dg
import pytest
import yaml

from etl import dev_server
from etl.config import PROJECT_ROOT, load_integrations
from etl.resources.sources import VENDORS, SourceResource
from etl.resources.warehouse import Warehouse
from etl.run_outcome import outcome
from etl.schedules.ticks import range_tags
from etl.sql_shell import Shell, complete, interactive, run_sql
from etl.vendors import vendor_infos, vendors_table
from tests.cli_env import WFM_ETL, demo_home, home_env, wfm_etl
from tests.conftest import integration_fields

RUN_ID = re.compile(r"run [0-9a-f]{8}:")
START, END = "2026-11-20T00:00", "2026-11-20T06:00"


def _project(tmp_path: Path, **overrides) -> dict[str, str]:
    """A home with one simulator integration that delivers broken rows (one an hour here)."""
    integration = integration_fields(
        **{
            "id": "cli_sim",
            "max_rejected_share": 0.5,
            "source": {"seed": 1, "queues": 2, "bad_rows_per_day": 20},
            **overrides,
        }
    )
    config = tmp_path / "integrations.yaml"
    config.write_text(yaml.safe_dump({"integrations": [integration]}))
    return home_env(tmp_path, config)


def _lines(text: str) -> list[str]:
    return [RUN_ID.sub("run <id>:", line) for line in text.splitlines()]


def _warehouse(env: dict[str, str]) -> Warehouse:
    return Warehouse(root=str(Path(env["WFM_HOME"]) / "data" / "warehouse"))


def test_import_prints_one_line_with_the_counts(tmp_path: Path) -> None:
    env = _project(tmp_path)
    done = wfm_etl(env, "import", "cli_sim", START, END)
    assert done.returncode == 0
    assert _lines(done.stdout) == [
        "cli_sim 2026-11-20 00:00 .. 2026-11-20 06:00 UTC (6 hours), run <id>: ok, "
        "42 rows loaded, 6 rejected, 0 duplicates"
    ]
    assert done.stderr == ""
    # The counts are the warehouse's.
    counts = _warehouse(env).query(
        "SELECT (SELECT count(*) FROM contact_intervals) AS loaded,"
        " (SELECT count(*) FROM rejected_rows) AS rejected"
    )
    assert counts.iloc[0].tolist() == [42, 6]


def test_failed_import_says_why_once_and_the_trace_only_when_asked(tmp_path: Path) -> None:
    env = _project(tmp_path, max_rejected_share=0.0)
    reason = (
        "integration 'cli_sim', contacts 2026-11-20 00:00..2026-11-20 06:00 UTC: 6 of 6 hours "
        "failed and were not written (they keep what they held; their rejected rows are in "
        "rejected_rows): 2026-11-20 00:00..2026-11-20 06:00 UTC (6 hours): rejected share above "
        "0%: 1 of 8 rows rejected (abandoned <= offered - answered x1; answered <= offered x1). "
        "The other 0 hours loaded. The gap sensor retries failed hours, except those that failed "
        "3 times the same way (see the `imports` view)."
    )
    done = wfm_etl(env, "import", "cli_sim", START, END)
    assert done.returncode == 1
    assert _lines(done.stdout) == [
        "cli_sim 2026-11-20 00:00 .. 2026-11-20 06:00 UTC (6 hours), run <id>: FAILED, "
        f"0 rows loaded, 6 rejected, 0 duplicates: {reason}"
    ]
    assert done.stderr.splitlines() == ["run it again with --verbose for the trace"]

    verbose = wfm_etl(env, "import", "cli_sim", START, END, "--verbose")
    assert verbose.returncode == 1
    assert _lines(verbose.stdout) == _lines(done.stdout)
    assert verbose.stderr.count("Stack Trace:") == 1
    assert "raise _hours_failed(" in verbose.stderr
    assert (verbose.stdout + verbose.stderr).count("rejected share above") == 2  # line, trace


def test_a_long_import_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    env = _project(tmp_path, max_partitions_per_run=2)
    args = ["import", "cli_sim", "2026-11-20T00:00", "2026-11-20T06:00"]
    piped = wfm_etl(env, *args)
    assert piped.returncode == 0
    assert len(piped.stdout.splitlines()) == 4  # three runs and the total, no bar
    assert not re.search(r"\d/\d runs", piped.stdout + piped.stderr)

    main, child = pty.openpty()
    process = subprocess.Popen([str(WFM_ETL), *args], env=env, stdout=child, stderr=child)
    os.close(child)
    screen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        try:
            chunk = os.read(main, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert process.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode())
    assert re.search(r"cli_sim import .* 1/3 runs, \d+ rows loaded", text)
    assert "3/3 runs, 42 rows loaded" in text
    assert "cli_sim: 3 runs, 3 ok, 0 failed; 42 rows loaded, 6 rejected, 0 duplicates" in text


def test_counts_are_read_once_per_window_and_duplicates_when_reported(tmp_path: Path) -> None:
    """A range run records the window's metadata on every hour: counted once; a source of
    `rows_duplicate` is printed (0 where a run does not report it)."""
    partitions = dg.HourlyPartitionsDefinition(start_date="2026-11-20-00:00")

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def facts(context):  # (no annotation: this module postpones them, Dagster reads it)
        window = context.partition_time_window
        return dg.MaterializeResult(
            metadata={
                "rows_written": 40,
                "rows_rejected": 3,
                "rows_duplicate": 2,
                "window_start": dg.MetadataValue.timestamp(window.start),
                "window_end": dg.MetadataValue.timestamp(window.end),
            }
        )

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def other(context):
        return dg.MaterializeResult(metadata={"rows_written": 7})  # per hour, no window

    with dg.instance_for_test() as instance:
        tags = range_tags(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 4, tzinfo=UTC))
        result = dg.materialize([facts, other], instance=instance, tags=tags)
    assert len(result.get_asset_materialization_events()) == 8
    counted = outcome(result)
    assert (counted.loaded, counted.rejected, counted.duplicates) == (40 + 4 * 7, 3, 2)
    assert counted.counts_text() == "68 rows loaded, 3 rejected, 2 duplicates"


# -- the demo and the SQL shell ------------------------------------------------------------


def test_demo_explains_coverage_and_its_printed_query_works_as_printed(tmp_path_factory) -> None:
    home, printed = demo_home(tmp_path_factory)
    lines = printed.splitlines()
    warehouse = Warehouse(root=str(home / "data" / "warehouse"))
    coverage = warehouse.query(
        "SELECT integration_id, data_kind, CAST(sum(loaded_intervals) AS BIGINT) AS loaded,"
        " CAST(sum(missing_intervals) AS BIGINT) AS missing FROM coverage GROUP BY ALL"
    )
    shipped = load_integrations(PROJECT_ROOT / "integrations.yaml")
    assert len(coverage) == sum(len(i.data) for i in shipped)  # every integration and kind
    assert (coverage["missing"] > 0).all()
    for row in coverage.itertuples(index=False):
        line = next(
            line
            for line in lines
            if line.startswith(f"{row.integration_id:<18}{row.data_kind:<14}")
        )
        assert line.split()[-2:] == [str(row.loaded), str(row.missing)]
    assert (
        "The demo imported only the last 48 hours, so the intervals before them show as "
        "missing: that is expected, not an error." in lines
    )
    assert any(line.startswith("`make dev` starts the gap sensors") for line in lines)

    # The command and the query, as printed, give the table the demo printed.
    at = lines.index("Query the views (read-only) with the project's SQL shell:")
    command = lines[at + 1].strip()
    assert command == f"{WFM_ETL.relative_to(PROJECT_ROOT)} sql"  # as `make demo` prints it
    assert lines[at + 2] == "and type a query at its prompt, e.g."
    query_end = next(i for i in range(at + 3, len(lines)) if lines[i].endswith(";"))
    query = "\n".join(line.strip() for line in lines[at + 3 : query_end + 1])
    table = lines[query_end + 1 : lines.index(next(x for x in lines if x.startswith("Demo fin")))]
    assert table[0].startswith("┌")
    assert "destination_queue" in table[1]
    done = subprocess.run(
        shlex.split(command),
        input=query,
        env=home_env(home, venv_on_path=False),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == table


def test_sql_shell_is_read_only_and_reads_scripts_and_dot_commands(tmp_path_factory) -> None:
    home, _ = demo_home(tmp_path_factory)
    env = home_env(home)
    csv = wfm_etl(env, "sql", "--csv", "-c", "SELECT count(*) AS n FROM integrations;")
    assert csv.returncode == 0
    integrations = len(load_integrations(PROJECT_ROOT / "integrations.yaml"))
    assert csv.stdout.splitlines() == ["n", str(integrations)]

    script = ".mode csv\nSELECT integration_id\nFROM integrations\nORDER BY 1;\n.tables\n"
    done = wfm_etl(env, "sql", stdin=script)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    ids = sorted(i.id for i in load_integrations(PROJECT_ROOT / "integrations.yaml"))
    assert out[: 1 + len(ids)] == ["integration_id", *ids]
    tables = set(out[1 + len(ids)].split())
    assert {"queue_days", "coverage", "rejected_rows"} <= tables
    assert not any(name.startswith("_") for name in tables)  # the catalog's own file views

    write = wfm_etl(env, "sql", "-c", "CREATE TABLE notes AS SELECT 1; SELECT 2;")
    assert write.returncode == 1
    assert write.stdout == ""
    assert "read-only" in write.stderr
    assert write.stderr.startswith("Error: ")

    missing = wfm_etl(env, "sql", "--warehouse", str(home / "nowhere"), "-c", "SELECT 1")
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"error: no warehouse in {home / 'nowhere'}: run `make demo`")


def test_interactive_shell_runs_statements_over_lines_and_goes_on_after_an_error(
    tmp_path_factory, capsys
) -> None:
    home, _ = demo_home(tmp_path_factory)
    typed = iter(
        [
            "SELECT count(*)",
            "AS n FROM integrations;",
            "SELEC 1;",
            ".mode csv",
            "SELECT 'a;b' AS t;",
            ".quit",
        ]
    )
    prompts = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    out = io.StringIO()
    with Warehouse(root=str(home / "data" / "warehouse")).connect() as con:
        assert interactive(Shell(con, out), read) == 0
    assert prompts == ["wfm> ", "...> ", "wfm> ", "wfm> ", "wfm> ", "wfm> "]
    text = out.getvalue()
    integrations = len(load_integrations(PROJECT_ROOT / "integrations.yaml"))
    assert any(line.split() == ["│", str(integrations), "│"] for line in text.splitlines())
    assert text.splitlines()[-2:] == ["t", "a;b"]
    assert 'Parser Error: syntax error at or near "SELEC"' in capsys.readouterr().err
    assert complete("SELECT ';'") is False
    assert complete("SELECT ';';") is True


def test_run_sql_prints_as_duckdb_does(tmp_path_factory) -> None:
    home, _ = demo_home(tmp_path_factory)
    out = io.StringIO()
    warehouse = Warehouse(root=str(home / "data" / "warehouse"))
    assert run_sql(warehouse, "SELECT 1 AS one;", "box", out=out) == 0
    assert out.getvalue().splitlines()[:5] == [
        "┌───────┐",
        "│  one  │",
        "│ int32 │",
        "├───────┤",
        "│     1 │",
    ]


# -- vendors ---------------------------------------------------------------------------------


def test_vendors_lists_the_registry_with_capabilities() -> None:
    done = wfm_etl(home_env(Path.cwd()), "vendors")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "vendor",
        "kind",
        "delivery",
        "arrival",
        "data",
        "user",
        "identifier",
    ]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(VENDORS)
    by_vendor = {line.split()[0]: line for line in lines[1:]}
    assert by_vendor["simulator"].split()[:2] == ["simulator", "built"]
    assert by_vendor["avaya_cms"].split() == [
        "avaya_cms",
        "vendor",
        "on_premise",
        "batch",
        "contacts",
        "-",
    ]
    assert by_vendor["talkdesk"].split() == [
        "talkdesk",
        "vendor",
        "cloud",
        "batch",
        "contacts,",
        "agent_status",
        "email",
        "address",
    ]
    assert by_vendor["csv"].split()[:7] == [
        "csv",
        "universal",
        "cloud,",
        "on_premise",
        "batch",
        "contacts,",
        "agent_status",
    ]


def test_a_newly_registered_vendor_is_listed_without_other_edits(monkeypatch) -> None:
    class AcmeSource(SourceResource):
        deliveries = ("cloud",)

        def contacts(self, start, end):
            raise NotImplementedError

    AcmeSource.__module__ = "etl.resources.sources.vendors.acme"
    monkeypatch.setitem(VENDORS, "acme", AcmeSource)
    line = next(line for line in vendors_table(vendor_infos()).splitlines() if "acme" in line)
    assert line.split() == ["acme", "vendor", "cloud", "batch", "contacts", "-"]
    # Every registered kind says how its data arrives.
    timings = {vendor: source.timing for vendor, source in VENDORS.items()}
    assert timings["api"] == ("real-time",)
    assert timings["mitel"] == timings["genesys_cloud"] == ("batch", "real-time")
    assert all(set(t) <= {"batch", "real-time"} and t for t in timings.values())
    declared = {vendor: "timing" in vars(source) for vendor, source in VENDORS.items()}
    assert declared == dict.fromkeys(VENDORS, True) | {"acme": False}


# -- make dev --------------------------------------------------------------------------------


@pytest.fixture
def busy_port():
    """A port held by a running HTTP server on loopback."""
    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_dev_on_a_busy_port_fails_naming_the_port(tmp_path: Path, busy_port: int) -> None:
    done = wfm_etl(home_env(tmp_path), "dev", "--port", str(busy_port))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: port {busy_port} on 127.0.0.1 is in use (another `make dev`, or another "
        "server): stop it, or choose a free port with `make dev PORT=<port>` "
        "(`wfm-etl dev --port <port>`)"
    ]
    assert not (tmp_path / ".dagster_home" / "storage").exists()  # nothing was started
    assert dev_server.port_in_use("127.0.0.1", busy_port)


def _free_port() -> int:
    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return port


@pytest.mark.slow
def test_dev_prints_the_url_it_serves_once_the_ui_answers(tmp_path: Path) -> None:
    env = _project(tmp_path, status="paused")  # nothing to import while it runs
    port = _free_port()
    process = subprocess.Popen(
        [str(WFM_ETL), "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("Dagster UI: "):
                ready = line.rstrip("\n")
                break
        assert ready == (
            f"Dagster UI: http://127.0.0.1:{port}  (the schedules and gap sensors are on: every "
            "integration's history is being imported; Ctrl-C stops)"
        )
        assert dev_server._answers(f"http://127.0.0.1:{port}")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
