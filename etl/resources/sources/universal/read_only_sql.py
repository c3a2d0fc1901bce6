"""One read-only statement: the check a database source's query passes before it runs.

The database source promises that it only reads the customer's database. The server enforces
most of that (a read-only session and transaction: see `database.py`), but a read-only
transaction still lets some statements act: MariaDB's `SELECT ... INTO OUTFILE` writes a file
on the server, PostgreSQL's `COPY ... TO PROGRAM` runs a program, and psycopg2 sends every
query with PostgreSQL's simple protocol, which runs several statements from one string (a
smuggled `COMMIT; BEGIN READ WRITE; DELETE ...` deletes). So the query's text is checked
first, with sqlglot's tokenizer and parser for the server's dialect, read as that server reads
it (PostgreSQL's `standard_conforming_strings`, MariaDB/MySQL's `NO_BACKSLASH_ESCAPES` and
`ANSI_QUOTES` change where a string ends):

1. Tokens: exactly one statement (semicolons in strings, comments and dollar-quoted strings
   are the tokenizer's business); it begins with SELECT, WITH, VALUES or TABLE; no INTO; the
   SQL in a MariaDB/MySQL executable comment (`/*! ... */`, which the server runs and a
   tokenizer skips) is checked as the server would run it; bind parameters (`:window_start`)
   never inside a string or a quoted name, where SQLAlchemy would still replace them.
2. Tree: the parsed statement is a query and holds no statement that writes (a WITH ... AS
   (DELETE ...)), no INTO, no locking clause (FOR UPDATE / SHARE, LOCK IN SHARE MODE) and none
   of the functions whose effect a read-only transaction does not stop (server files, other
   connections, other sessions).
3. A statement the parser cannot read (sqlglot does not know every dialect's every clause) is
   checked on its tokens instead: no write keyword and no locking clause anywhere. It then
   runs as written, and the result says it was checked on tokens only.

The query is never rewritten from the parse: the server gets the text as written, less its
closing semicolon and what follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from sqlalchemy.sql.elements import TextClause
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

# SQLAlchemy's backend names -> sqlglot's dialect names (others are tried under their own).
DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
}
QUERY_STARTS = {TokenType.SELECT, TokenType.WITH, TokenType.VALUES, TokenType.TABLE}
# Statements that only read, though they are no query to import.
READING_STARTS = {"SHOW", "DESCRIBE", "DESC", "EXPLAIN", "HELP"}
# Parts of a tree that write, change the session or the transaction, or run something else.
WRITING_NODES: tuple[type[exp.Expr], ...] = (
    exp.DML,  # INSERT, UPDATE, DELETE, MERGE, COPY
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
    exp.Set,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Grant,
    exp.Revoke,
    exp.LoadData,
    exp.Export,
    exp.Kill,
    exp.Analyze,
    exp.Refresh,
    exp.Cache,
    exp.Uncache,
    exp.Use,
)
# Keyword tokens that only a writing statement holds: checked when the parser cannot read the
# query (a column named like one of them must then be quoted).
WRITING_TOKENS = {
    TokenType.INSERT,
    TokenType.UPDATE,
    TokenType.DELETE,
    TokenType.MERGE,
    TokenType.CREATE,
    TokenType.DROP,
    TokenType.ALTER,
    TokenType.TRUNCATE,
    TokenType.COMMIT,
    TokenType.ROLLBACK,
    TokenType.BEGIN,
    TokenType.COMMAND,
    TokenType.SET,
    TokenType.PRAGMA,
    TokenType.ATTACH,
    TokenType.DETACH,
    TokenType.COPY,
    TokenType.GRANT,
    TokenType.REVOKE,
    TokenType.LOCK,
    TokenType.RENAME,
    TokenType.EXECUTE,
    TokenType.LOAD,
}
# Functions whose effect the read-only transaction does not stop: they write server files,
# open other connections or act on other sessions. Not a complete list: the database user's
# rights are what stop the rest (docs/sources/database.md).
OUTSIDE_FUNCTIONS = {
    "lo_export",
    "lo_import",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "dblink",
    "dblink_exec",
    "dblink_send_query",
    "dblink_connect",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "set_config",
    "sys_exec",
    "sys_eval",
    "load_extension",
}
# A MariaDB/MySQL executable comment's text (after `/*`): `!50000 ...`, `M!100100 ...`.
EXECUTABLE_COMMENT = re.compile(r"^M?!\d*(.*)$", re.DOTALL)
# What follows FOR in a locking clause: FOR UPDATE, FOR SHARE, FOR NO KEY UPDATE, FOR KEY SHARE.
LOCK_MODES = {"UPDATE", "SHARE", "NO", "KEY"}
STRING_TOKENS = {
    TokenType.STRING,
    TokenType.HEREDOC_STRING,
    TokenType.BYTE_STRING,
    TokenType.BIT_STRING,
    TokenType.HEX_STRING,
    TokenType.NATIONAL_STRING,
    TokenType.RAW_STRING,
    TokenType.UNICODE_STRING,
    TokenType.IDENTIFIER,
}


class RefusedQueryError(ValueError):
    """The query is not exactly one read-only statement. `wrote`: it tried to write (or to
    change the session or the transaction), rather than being merely no query."""

    def __init__(self, reason: str, wrote: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wrote = wrote


@dataclass(frozen=True)
class Lexing:
    """How the server reads SQL text: its dialect and the settings that move where a string
    ends. `backslash_escapes` None: the dialect's default (PostgreSQL, SQLite: off; MariaDB,
    MySQL: on)."""

    dialect: str
    backslash_escapes: bool | None = None
    ansi_quotes: bool = False

    @classmethod
    def of_backend(cls, backend: str) -> Lexing:
        """SQLAlchemy's backend name -> its sqlglot dialect; one sqlglot does not know is read
        with sqlglot's standard SQL dialect ("")."""
        name = DIALECTS.get(backend, backend)
        return cls(name if Dialect.get(name) is not None else "")


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed: `text` is the statement as written, without its closing semicolon
    and anything after it; `parameters` the bind parameters it uses (outside comments);
    `parsed` False: checked on its tokens only (`parse_error` says why the parser could not
    read it)."""

    text: str
    parameters: tuple[str, ...]
    parsed: bool
    parse_error: str | None = None


@lru_cache(maxsize=256)  # the same query is checked at every tick
def check_query(sql: str, lexing: Lexing) -> CheckedQuery:
    """`sql` if it is exactly one read-only query as `lexing`'s server reads it; otherwise
    RefusedQueryError saying what it tried."""
    dialect = Dialect.get_or_raise(lexing.dialect)
    try:
        tokens = _tokenizer(lexing).tokenize(sql)
    except TokenError as exc:
        raise RefusedQueryError(
            f"it cannot be read as {lexing.dialect or 'standard'} SQL ({_first_line(exc)}), so "
            "it cannot be checked to be one read-only statement",
            wrote=False,
        ) from None
    statements = _split(tokens)
    if not statements:
        raise RefusedQueryError("it is empty: there is no statement in it", wrote=False)
    if len(statements) > 1:
        labels = [_label(s) for s in statements]
        writes = [label for label, s in zip(labels, statements, strict=True) if _writes(s)]
        said = f"it is {len(statements)} statements ({', '.join(labels)}), not one"
        if writes:
            said += f": it tried to write ({', '.join(writes)})"
        raise RefusedQueryError(said + "; a query must be exactly one SELECT", wrote=bool(writes))
    unwrapped = _unwrapped(sql, tokens) if lexing.dialect == "mysql" else None
    if unwrapped is not None:
        check_query(unwrapped, lexing)  # what the server runs of it must pass too
    [statement] = statements
    _check_start(statement)
    _check_tokens(statement)
    parameters = _check_binds(sql, statement)
    text = sql[: statement[-1].end + 1]
    try:
        trees = dialect.parser().parse(statement, text)
    except ParseError as exc:
        _check_unparsed(statement)
        return CheckedQuery(text, parameters, parsed=False, parse_error=_first_line(exc))
    for tree in trees:
        if tree is not None:
            _check_tree(tree)
    return CheckedQuery(text, parameters, parsed=True)


@cache
def _tokenizer(lexing: Lexing) -> Tokenizer:
    """The dialect's tokenizer, with the quotes and escapes the server's settings give."""
    dialect = Dialect.get_or_raise(lexing.dialect)
    base: type[Tokenizer] = dialect.tokenizer_class
    changes: dict[str, object] = {}
    escapes = [e for e in base.STRING_ESCAPES if e != "\\"]
    if lexing.backslash_escapes is not None:
        changes["STRING_ESCAPES"] = [*escapes, "\\"] if lexing.backslash_escapes else escapes
    if lexing.ansi_quotes:  # MariaDB/MySQL ANSI_QUOTES: "..." is an identifier
        quotes = [q for q in base.QUOTES if q != '"']
        changes["QUOTES"] = quotes
        changes["IDENTIFIERS"] = [*base.IDENTIFIERS, '"']
        if "STRING_ESCAPES" not in changes:
            changes["STRING_ESCAPES"] = list(base.STRING_ESCAPES)
        changes["STRING_ESCAPES"] = [e for e in changes["STRING_ESCAPES"] if e != '"']
    if not changes:
        return base(dialect=dialect)
    return type(f"{base.__name__}Session", (base,), changes)(dialect=dialect)


def _split(tokens: list[Token]) -> list[list[Token]]:
    """The statements: tokens between semicolons, empty ones left out."""
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def _label(statement: list[Token]) -> str:
    return statement[0].text.upper() if statement[0].token_type not in STRING_TOKENS else "?"


def _leading(statement: list[Token]) -> Token:
    """The first token after any opening parentheses: `(SELECT ...)` is a query too."""
    for token in statement:
        if token.token_type != TokenType.L_PAREN:
            return token
    return statement[0]


def _writes(statement: list[Token]) -> bool:
    """Whether a statement (not the query) does more than read."""
    first = _leading(statement)
    if first.token_type in QUERY_STARTS:
        return any(t.token_type in WRITING_TOKENS | {TokenType.INTO} for t in statement)
    if first.text.upper() in READING_STARTS:  # EXPLAIN ANALYZE runs the statement it explains
        words = " ".join(t.text for t in statement[1:]).upper().split()
        return "ANALYZE" in words or "ANALYSE" in words
    return True


def _check_start(statement: list[Token]) -> None:
    first = _leading(statement)
    if first.token_type in QUERY_STARTS:
        return
    label = _label(statement)
    if _writes(statement):
        raise RefusedQueryError(
            f"it tried to write: it is {_a(label)} statement, and a query must be one SELECT",
            wrote=True,
        )
    raise RefusedQueryError(f"it is {_a(label)} statement, not a SELECT", wrote=False)


def _unwrapped(sql: str, tokens: list[Token]) -> str | None:
    """MariaDB and MySQL run the SQL inside `/*! ... */` (MariaDB also `/*M! ... */`, both
    perhaps with a version number): the text with those comments opened up, as the server
    reads it, or None if there are none."""
    text = sql
    for token in tokens:
        for comment in token.comments:
            body = EXECUTABLE_COMMENT.match(comment)
            if body and f"/*{comment}*/" in text:
                text = text.replace(f"/*{comment}*/", f" {body.group(1)} ", 1)
    return None if text == sql else text


def _check_tokens(statement: list[Token]) -> None:
    """What no query may hold, whether the parser can read it or not."""
    if any(t.token_type == TokenType.INTO for t in statement):
        raise RefusedQueryError(_INTO, wrote=True)


def _check_unparsed(statement: list[Token]) -> None:
    """A query the parser cannot read: no write keyword and no locking clause anywhere."""
    for i, token in enumerate(statement):
        after = statement[i + 1] if i + 1 < len(statement) else None
        if token.token_type == TokenType.FOR and after and after.text.upper() in LOCK_MODES:
            raise RefusedQueryError(_locks(f"FOR {after.text.upper()}"), wrote=True)
        if token.token_type == TokenType.LOCK and after and after.token_type == TokenType.IN:
            raise RefusedQueryError(_locks("LOCK IN SHARE MODE"), wrote=True)
        if token.token_type in WRITING_TOKENS:
            raise RefusedQueryError(
                f"it tried to write: it holds {token.text.upper()}, and a query must only read",
                wrote=True,
            )


def _check_binds(sql: str, statement: list[Token]) -> tuple[str, ...]:
    """The parameters that stand where a value belongs (a token of their own). SQLAlchemy
    replaces `:name` wherever it stands: in a comment that is harmless, in a string literal or
    a quoted name it would change the text, so it is refused there."""
    quoted = [(t.start, t.end) for t in statement if t.token_type in STRING_TOKENS]
    code = {t.start for t in statement if t.token_type not in STRING_TOKENS}
    names = []
    for match in TextClause._bind_params_regex.finditer(sql):
        at = match.start()
        if any(start <= at <= end for start, end in quoted):
            raise RefusedQueryError(
                f"the parameter {match.group(0)} stands inside a quoted string or name, where "
                f"it would still be replaced by its value; write \\{match.group(0)} for the "
                "text itself, or move the parameter out of the quotes",
                wrote=False,
            )
        if at in code:
            names.append(match.group(1))
    return tuple(names)


def _check_tree(tree: exp.Expr) -> None:
    if not isinstance(tree, exp.Query | exp.Values):
        raise RefusedQueryError(
            f"it tried to write: it is {_a(type(tree).__name__.upper())} statement, and a "
            "query must be one SELECT",
            wrote=True,
        )
    for node in tree.walk():
        if isinstance(node, WRITING_NODES):
            what = node.key.upper()
            raise RefusedQueryError(
                f"it tried to write: it holds {_a(what)} (e.g. WITH ... AS ({what} ...)), and "
                "a query must only read",
                wrote=True,
            )
        if isinstance(node, exp.Into):
            raise RefusedQueryError(_INTO, wrote=True)
        if isinstance(node, exp.Lock):
            raise RefusedQueryError(_locks(_lock_clause(node)), wrote=True)
        if isinstance(node, exp.Func) and _function(node) in OUTSIDE_FUNCTIONS:
            raise RefusedQueryError(
                f"it tried to write: it calls {_function(node)}(), which acts outside the "
                "read-only transaction (server files, other connections or sessions)",
                wrote=True,
            )


def _function(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _lock_clause(node: exp.Lock) -> str:
    update, key = node.args.get("update"), node.args.get("key")
    if update:
        return "FOR NO KEY UPDATE" if key else "FOR UPDATE"
    return "FOR KEY SHARE" if key else "FOR SHARE (LOCK IN SHARE MODE)"


_INTO = (
    "it tried to write: SELECT ... INTO stores the result (in a table, a variable or a file on "
    "the database server: INTO OUTFILE / DUMPFILE) instead of returning it"
)


def _locks(clause: str) -> str:
    return (
        f"it tried to write: {clause} locks the rows it reads as a write would, blocking the "
        "customer's own writes; a query must only read"
    )


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'AEIOU' else 'a'} {word}"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
