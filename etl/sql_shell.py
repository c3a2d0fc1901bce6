"""`wfm-etl sql`: an SQL shell on the warehouse's catalog, opened read-only.

It is the project's own DuckDB (so it reads the catalog whatever DuckDB version wrote it;
the `duckdb` CLI on PyPI lags the library and cannot open a newer database file), through the
warehouse's own connection: read-only, session time zone UTC, as the analysts' guide assumes.
Results print as DuckDB's CLI prints them (its box rendering) or as CSV (`--csv`).

SQL comes from `-c`, from standard input when it is not a terminal (a script or a pipe), or
interactively, statement by statement (each ends with `;`), with a few dot commands.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Callable
from typing import TextIO

import duckdb

from etl.resources.warehouse import Warehouse

PROMPT, CONTINUE = "wfm> ", "...> "
HELP = """\
Statements end with ';'. The catalog is read-only: every view of the analysts' guide.
  .tables            the views
  .schema VIEW       a view's columns and types
  .mode box|csv      how results print (box: as DuckDB's CLI; csv: for other tools)
  .help              this text
  .quit              leave (or Ctrl-D)"""
# Statements whose result is a table to print; the others (SET, PRAGMA ...) print nothing.
RESULT_TYPES = {"SELECT", "EXPLAIN"}


class Shell:
    def __init__(self, con: duckdb.DuckDBPyConnection, out: TextIO, mode: str = "box") -> None:
        self.con, self.out, self.mode = con, out, mode
        self.buffer = ""

    def run(self, text: str) -> None:
        """Run every statement in `text`, printing each result; raises duckdb.Error."""
        for statement in self.con.extract_statements(text):
            query = statement.query.strip()
            if statement.type.name in RESULT_TYPES:
                self._print(self.con.sql(query))
            else:
                self.con.execute(query)

    def feed(self, line: str) -> bool:
        """One line of input: a dot command, or part of a statement, run once it ends with
        `;`. False when it asks to quit; raises duckdb.Error (and forgets the statement)."""
        if not self.buffer and line.strip().startswith("."):
            return self.dot_command(line)
        self.buffer += line + "\n"
        if complete(self.buffer):
            text, self.buffer = self.buffer, ""
            self.run(text)
        return True

    def finish(self) -> None:
        """At the end of the input: run a last statement that has no `;`."""
        text, self.buffer = self.buffer, ""
        if text.strip():
            self.run(text)

    def _print(self, relation: duckdb.DuckDBPyRelation) -> None:
        if self.mode == "csv":
            writer = csv.writer(self.out, lineterminator="\n")
            writer.writerow(relation.columns)
            writer.writerows(relation.fetchall())
            return
        with contextlib.redirect_stdout(self.out):  # DuckDB's renderer prints to sys.stdout
            relation.show()

    def dot_command(self, line: str) -> bool:
        """Handle `.command`; False when it asks to quit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip().rstrip(";")
        if name in (".quit", ".exit", ".q"):
            return False
        if name == ".help":
            print(HELP, file=self.out)
        elif name == ".tables":
            # `_...` views are the catalog's own lists of files, not for analysts.
            shown = self.con.execute("SHOW TABLES").fetchall()
            names = [row[0] for row in shown if not row[0].startswith("_")]
            print("  ".join(names), file=self.out)
        elif name == ".schema" and arg:
            self._print(self.con.sql(f"DESCRIBE {duckdb_identifier(arg)}"))
        elif name == ".mode" and arg in ("box", "csv"):
            self.mode = arg
        else:
            print(f"unknown command {line.strip()!r}; .help lists them", file=self.out)
        return True


def duckdb_identifier(name: str) -> str:
    """A view name as a quoted identifier (a name is DDL, not a value: it cannot be bound)."""
    return '"' + name.replace('"', '""') + '"'


def complete(text: str) -> bool:
    """Whether `text` ends a statement: its last character outside strings, quoted names and
    comments is `;` (a `;` inside a string does not end the statement)."""
    state, last, i = "", "", 0
    while i < len(text):
        char, pair = text[i], text[i : i + 2]
        if state == "--":
            state = "" if char == "\n" else state
        elif state == "/*":
            if pair == "*/":
                state, i = "", i + 1
        elif state in ("'", '"'):
            state = "" if char == state else state  # a doubled quote reopens at once
        elif pair in ("--", "/*"):
            state, i = pair, i + 1
        elif char in ("'", '"'):
            state = char
        elif not char.isspace():
            last = char
        i += 1
    return state in ("", "--") and last == ";"


def interactive(shell: Shell, read: Callable[[str], str] = input) -> int:
    """Read statements until `.quit` or end of input; an error is shown and the shell goes on."""
    with contextlib.suppress(ImportError):  # not on every platform; works without it
        import readline  # noqa: F401  (line editing and history for input())
    print("Connected read-only to the warehouse's catalog. Type .help for help.", file=shell.out)
    while True:
        try:
            line = read(CONTINUE if shell.buffer else PROMPT)
        except EOFError:
            print(file=shell.out)
            return 0
        except KeyboardInterrupt:
            print(file=shell.out)
            shell.buffer = ""
            continue
        try:
            if not shell.feed(line):
                return 0
        except duckdb.Error as exc:
            print(f"Error: {exc}", file=sys.stderr)


def run_sql(
    warehouse: Warehouse,
    command: str | None,
    mode: str,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """`wfm-etl sql`: 0, or 1 when a statement of a script or `-c` failed (the rest is not run)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    with warehouse.connect() as con:
        shell = Shell(con, out, mode)
        if command is None and stdin.isatty():
            return interactive(shell)
        text = command if command is not None else stdin.read()
        try:
            for line in text.splitlines():
                if not shell.feed(line):
                    return 0
            shell.finish()
        except duckdb.Error as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    return 0
