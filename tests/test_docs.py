"""Every command and query the documentation shows is run, so the docs cannot go stale.

The convention (docs/development.md, "Code blocks in the docs are tests"): fenced blocks in
README.md and docs/**/*.md are run by their language tag:

- `sql`: every statement runs in the demo's warehouse (read-only, as analysts open it), and
  each query returns at least one row unless the block says `-- may return no rows`;
- `console`: each line starting with `$ ` is a command, run by bash in a copy of the demo's
  project home with the virtual environment on PATH; the lines up to the next `$ ` are its
  output (stdout and stderr), matched line by line, where a line `...` stands for any lines
  and `...` inside a line for any text; a command must exit 0, or the code its line ends with
  (`$ wfm-etl dev --port 3000  # exit 2`);
- `yaml`: integrations (a file with `integrations:`, or a list of `- id:` entries) are loaded
  by the config loader and must be valid;
- `python`: run as a script in the demo's project home.

A block that must not run is preceded by `<!-- not run: <why> -->`. Any other tag (`text`,
`csv`, ...) is shown only; a fence without a tag fails here, so that nothing meant to run is
skipped by accident.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml

from etl.config import PROJECT_ROOT, ConfigError, load_integrations
from etl.resources.warehouse import Warehouse
from tests.cli_env import demo_home, home_env

RUN = {"sql", "console", "yaml", "python"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>\S.*?)\s*-->$")
EXIT = re.compile(r"\s+#\s*exit\s+(?P<code>\d+)\s*$")
EMPTY_OK = "-- may return no rows"


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown page, with the marker line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = str(path.relative_to(PROJECT_ROOT))
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        marker = NOT_RUN.match(before)
        lang = opening["info"].strip().split(" ")[0].lower()
        found.append(Block(page, i + 1, lang, "\n".join(body), marker and marker["why"]))
        i = j + 1
    return found


ALL = [block for path in pages() for block in blocks_of(path)]


def _runnable(lang: str) -> list:
    return [
        pytest.param(block, id=block.id)
        for block in ALL
        if block.lang == lang and not block.not_run
    ]


def test_every_fence_says_what_it_is() -> None:
    untagged = [block.id for block in ALL if not block.lang]
    assert not untagged, (
        "fences without a language tag (sql, console, yaml, python are run; text, csv ... are "
        f"shown only; see docs/development.md): {untagged}"
    )


def test_every_page_has_blocks_that_run() -> None:
    """The extraction itself works: the pages that show commands and queries are picked up."""
    run = {block.page for block in ALL if block.lang in RUN and not block.not_run}
    assert {"README.md", "docs/analysts.md", "docs/operations.md"} <= run


# -- sql -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory) -> Warehouse:
    home, _ = demo_home(tmp_path_factory)
    return Warehouse(root=str(home / "data" / "warehouse"))


@pytest.mark.parametrize("block", _runnable("sql"))
def test_sql_block_runs_on_the_demo_warehouse(block: Block, demo_warehouse: Warehouse) -> None:
    with demo_warehouse.connect() as con:
        statements = con.extract_statements(block.text)
        assert statements, f"{block.id}: no SQL statement in the block"
        for statement in statements:
            try:
                relation = con.sql(statement.query)
                rows = relation.fetchall() if relation is not None else None
            except duckdb.Error as exc:
                pytest.fail(f"{block.id}: {statement.query.strip()}\n{exc}", pytrace=False)
            if rows is not None and EMPTY_OK not in block.text:
                assert rows, f"{block.id}: no rows from {statement.query.strip()}"


# -- console -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    text: str
    exit_code: int
    output: list[str]


def commands_of(block: Block) -> list[Command]:
    commands: list[Command] = []
    text, output = None, []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            if text is not None:
                commands.append(_command(text, output))
            text, output = line[2:], []
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
        elif text is not None:
            output.append(line)
        i += 1
    if text is not None:
        commands.append(_command(text, output))
    return commands


def _command(text: str, output: list[str]) -> Command:
    code = EXIT.search(text)
    while output and not output[-1].strip():
        output.pop()
    return Command(EXIT.sub("", text), int(code["code"]) if code else 0, output)


def _line_pattern(expected: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")) + r"\Z")


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; a line `...` matches any lines, `...` in a line any text."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(output_matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return (
        bool(actual)
        and bool(_line_pattern(head).match(actual[0]))
        and output_matches(rest, actual[1:])
    )


@pytest.fixture(scope="module")
def console_home(tmp_path_factory) -> Path:
    """A copy of the demo's home: commands may import and compact without touching the one
    the SQL blocks read."""
    home, _ = demo_home(tmp_path_factory)
    copy = tmp_path_factory.mktemp("console") / "home"
    shutil.copytree(home, copy, symlinks=True)
    return copy


@pytest.mark.parametrize("block", _runnable("console"))
def test_console_block_runs_as_shown(block: Block, console_home: Path) -> None:
    commands = commands_of(block)
    assert commands, f"{block.id}: a console block without a `$ ` command"
    env = home_env(console_home)
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command.text],
            cwd=console_home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        shown = done.stdout.rstrip("\n").splitlines()
        assert done.returncode == command.exit_code, (
            f"{block.id}: `{command.text}` exited {done.returncode}:\n{done.stdout}"
        )
        if command.output:
            assert output_matches(command.output, shown), (
                f"{block.id}: `{command.text}` printed\n{done.stdout}\nwhere the docs show\n"
                + "\n".join(command.output)
            )


def test_output_matching_follows_the_convention() -> None:
    assert output_matches(["a ... c"], ["a b c"])
    assert output_matches(["x", "...", "z"], ["x", "y1", "y2", "z"])
    assert output_matches(["x", "...", "z"], ["x", "z"])
    assert not output_matches(["x", "z"], ["x", "y", "z"])
    assert not output_matches(["a ... c"], ["a b c d"])
    commands = commands_of(Block("p", 1, "console", "$ a \\\n  b  # exit 2\nout\n\n$ c", None))
    assert commands == [Command("a  b", 2, ["out"]), Command("c", 0, [])]


# -- yaml ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _runnable("yaml"))
def test_yaml_block_is_valid_config(block: Block, tmp_path: Path, monkeypatch) -> None:
    document = yaml.safe_load(block.text)
    if isinstance(document, list):
        document = {"integrations": document}
    assert isinstance(document, dict), f"{block.id}: YAML that is no integrations file"
    assert "integrations" in document, (
        f"{block.id}: a YAML block must be an integrations file or a list of integrations; "
        "mark a fragment `<!-- not run: ... -->`"
    )
    config = tmp_path / "integrations.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("WFM_HOME", str(tmp_path))
    try:
        integrations = load_integrations(config)
    except ConfigError as exc:
        pytest.fail(f"{block.id}: {exc}", pytrace=False)
    assert [i.id for i in integrations] == [entry["id"] for entry in document["integrations"]]


# -- python --------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _runnable("python"))
def test_python_block_runs(block: Block, tmp_path_factory) -> None:
    home, _ = demo_home(tmp_path_factory)
    done = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=home,
        env=home_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.id}:\n{done.stdout}{done.stderr}"
    assert done.stdout.strip(), f"{block.id}: printed nothing"


# -- the analysts' guide lists every view with its columns ---------------------------------

VIEW_HEADING = re.compile(r"^### (?P<names>`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*)$")
COLUMNS_LINE = re.compile(r"^Columns: (?P<columns>.+)$")


def documented_views() -> dict[str, list[str]]:
    """`### \\`view\\`` headings of docs/analysts.md and the `Columns:` line under each."""
    views: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (PROJECT_ROOT / "docs" / "analysts.md").read_text(encoding="utf-8").splitlines():
        if heading := VIEW_HEADING.match(line):
            current = [name.strip("` ") for name in heading["names"].split(",")]
        elif current and (columns := COLUMNS_LINE.match(line)):
            for name in current:
                views[name] = [c.strip(" `") for c in columns["columns"].split(",")]
            current = []
    return views


def test_analysts_guide_lists_every_view_with_its_columns(demo_warehouse: Warehouse) -> None:
    actual = {
        name: columns.split(", ")
        for name, columns in demo_warehouse.query(
            "SELECT table_name, string_agg(column_name, ', ' ORDER BY ordinal_position) AS c "
            "FROM information_schema.columns WHERE NOT starts_with(table_name, '_') GROUP BY ALL"
        ).itertuples(index=False)
    }
    # Views named `_...` are the catalog's own lists of files (docs/design.md), not for analysts.
    documented = documented_views()
    assert sorted(documented) == sorted(actual), "views documented vs views in the catalog"
    for name, columns in actual.items():
        assert documented[name] == columns, f"docs/analysts.md, view {name}"
