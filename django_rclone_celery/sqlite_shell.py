"""The two things backups need from the ``sqlite3`` command-line tool, for hosts without it.

``python -m django_rclone_celery.sqlite_shell dump PATH TIMEOUT_MS`` writes
what ``sqlite3 -readonly -cmd ".timeout TIMEOUT_MS" PATH .dump`` writes: the
same statements in the same order, ending with ``COMMIT;``, read in one
transaction (one snapshot), and a lock that outlasts the timeout reported as
the tool does, on an ``/**** ERROR`` line with exit status 0, so the one
completeness check (:class:`completeness.SqliteDump`) reads both. Unlike the
tool it reads the whole snapshot before writing (see :func:`dump`).
``... restore TARGET`` runs the SQL on stdin against ``TARGET``, stopping with
a non-zero exit at the first error, as ``sqlite3 -bail TARGET`` does.

A separate program rather than a thread: the connector's commands stay
commands, streamed through the one subprocess gateway like every tool's.
Standard library only, so it starts without Django.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

_IN_MEMORY = 64 << 20  # a larger dump is read into a temporary file
_ROWS = "SELECT 'INSERT INTO {name} VALUES(' || {values} || ')' FROM {table}"
# One value as the shell writes it: blobs in lower-case hex, reals with 20 digits
# (whole ones as N.0), text with line breaks on one line through replace().
_VALUE = (
    "CASE typeof({c})"
    " WHEN 'blob' THEN 'X''' || lower(hex({c})) || ''''"
    " WHEN 'real' THEN CASE"
    "  WHEN {c} = 9e999 THEN '1e999' WHEN {c} = -9e999 THEN '-1e999'"
    "  WHEN abs({c}) < 9e18 AND {c} = CAST({c} AS INTEGER) THEN CAST({c} AS INTEGER) || '.0'"
    "  ELSE printf('%!.20g', {c}) END"
    " WHEN 'text' THEN CASE"
    "  WHEN instr({c}, char(10)) OR instr({c}, char(13)) THEN drc_lines({c})"
    "  ELSE quote({c}) END"
    " ELSE quote({c}) END"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# SQLite's keywords: a name spelled like one is quoted, as the shell does.
_KEYWORDS = frozenset(
    [
        "ABORT",
        "ACTION",
        "ADD",
        "AFTER",
        "ALL",
        "ALTER",
        "ALWAYS",
        "ANALYZE",
        "AND",
        "AS",
        "ASC",
        "ATTACH",
        "AUTOINCREMENT",
        "BEFORE",
        "BEGIN",
        "BETWEEN",
        "BY",
        "CASCADE",
        "CASE",
        "CAST",
        "CHECK",
        "COLLATE",
        "COLUMN",
        "COMMIT",
        "CONFLICT",
        "CONSTRAINT",
        "CREATE",
        "CROSS",
        "CURRENT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "DATABASE",
        "DEFAULT",
        "DEFERRABLE",
        "DEFERRED",
        "DELETE",
        "DESC",
        "DETACH",
        "DISTINCT",
        "DO",
        "DROP",
        "EACH",
        "ELSE",
        "END",
        "ESCAPE",
        "EXCEPT",
        "EXCLUDE",
        "EXCLUSIVE",
        "EXISTS",
        "EXPLAIN",
        "FAIL",
        "FILTER",
        "FIRST",
        "FOLLOWING",
        "FOR",
        "FOREIGN",
        "FROM",
        "FULL",
        "GENERATED",
        "GLOB",
        "GROUP",
        "GROUPS",
        "HAVING",
        "IF",
        "IGNORE",
        "IMMEDIATE",
        "IN",
        "INDEX",
        "INDEXED",
        "INITIALLY",
        "INNER",
        "INSERT",
        "INSTEAD",
        "INTERSECT",
        "INTO",
        "IS",
        "ISNULL",
        "JOIN",
        "KEY",
        "LAST",
        "LEFT",
        "LIKE",
        "LIMIT",
        "MATCH",
        "MATERIALIZED",
        "NATURAL",
        "NO",
        "NOT",
        "NOTHING",
        "NOTNULL",
        "NULL",
        "NULLS",
        "OF",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "OTHERS",
        "OUTER",
        "OVER",
        "PARTITION",
        "PLAN",
        "PRAGMA",
        "PRECEDING",
        "PRIMARY",
        "QUERY",
        "RAISE",
        "RANGE",
        "RECURSIVE",
        "REFERENCES",
        "REGEXP",
        "REINDEX",
        "RELEASE",
        "RENAME",
        "REPLACE",
        "RESTRICT",
        "RETURNING",
        "RIGHT",
        "ROLLBACK",
        "ROW",
        "ROWS",
        "SAVEPOINT",
        "SELECT",
        "SET",
        "TABLE",
        "TEMP",
        "TEMPORARY",
        "THEN",
        "TIES",
        "TO",
        "TRANSACTION",
        "TRIGGER",
        "UNBOUNDED",
        "UNION",
        "UNIQUE",
        "UPDATE",
        "USING",
        "VACUUM",
        "VALUES",
        "VIEW",
        "VIRTUAL",
        "WHEN",
        "WHERE",
        "WINDOW",
        "WITH",
        "WITHOUT",
    ]
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unused(text: str, first: str, second: str) -> str:
    if first not in text:
        return first
    if second not in text:
        return second
    number = 0
    while f"({first}{number})" in text:
        number += 1
    return f"({first}{number})"


def _lines(text: str) -> str:
    """A text with line breaks as the shell writes it: on one line, through replace()."""
    newline = _unused(text, "\\n", "\\012") if "\n" in text else ""
    ret = _unused(text, "\\r", "\\015") if "\r" in text else ""
    body = text.replace("'", "''")
    if newline:
        body = body.replace("\n", newline)
    if ret:
        body = body.replace("\r", ret)
    out = "replace(" * (bool(newline) + bool(ret)) + f"'{body}'"
    if ret:
        out += f",'{ret}',char(13))"
    if newline:
        out += f",'{newline}',char(10))"
    return out


def _shown(name: str) -> str:
    """A name as the shell writes it: bare when it can be."""
    plain = _WORD.fullmatch(name) and name.upper() not in _KEYWORDS
    return name if plain else _ident(name)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rows(db: sqlite3.Connection, name: str) -> Iterator[str]:
    columns = [row[1] for row in db.execute(f"PRAGMA table_info({_ident(name)})")]
    if not columns:
        return
    values = " || ',' || ".join(_VALUE.format(c=_ident(c)) for c in columns)
    shown = _shown(name).replace("'", "''")  # inside the query's string literal
    for (line,) in db.execute(_ROWS.format(name=shown, table=_ident(name), values=values)):
        yield line + ";"


def statements(db: sqlite3.Connection) -> Iterator[str]:
    """The dump's statements, in the shell's order: tables with their rows (the
    sequence table last), then indexes, triggers and views."""
    yield "PRAGMA foreign_keys=OFF;"
    yield "BEGIN TRANSACTION;"
    tables = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql NOT NULL "
        "ORDER BY name = 'sqlite_sequence', rowid"
    ).fetchall()
    writable = False
    for name, sql in tables:
        if name == "sqlite_sequence":
            yield "DELETE FROM sqlite_sequence;"
        elif name == "sqlite_stat1":
            yield "ANALYZE sqlite_master;"
        elif name.startswith("sqlite_"):
            continue
        elif sql.upper().startswith("CREATE VIRTUAL TABLE"):
            if not writable:
                writable = True
                yield "PRAGMA writable_schema=ON;"
            yield (
                "INSERT INTO sqlite_master(type,name,tbl_name,rootpage,sql)"
                f"VALUES('table',{_literal(name)},{_literal(name)},0,{_literal(sql)});"
            )
            continue
        elif sql.startswith(("CREATE TABLE '", 'CREATE TABLE "')):  # as the shell does
            yield f"CREATE TABLE IF NOT EXISTS {sql[len('CREATE TABLE ') :]};"
        else:
            yield f"{sql};"
        yield from _rows(db, name)
    others = db.execute(
        "SELECT sql FROM sqlite_master WHERE sql NOT NULL "
        "AND type IN ('index', 'trigger', 'view') ORDER BY rowid"
    ).fetchall()
    for (sql,) in others:
        yield f"{sql};"
    if writable:
        yield "PRAGMA writable_schema=OFF;"
    yield "COMMIT;"


def dump(path: str, timeout_ms: int, out: BinaryIO) -> int:
    try:
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=timeout_ms / 1000, isolation_level=None
        )
    except sqlite3.Error as exc:
        sys.stderr.write(f'Error: unable to open database "{path}": {exc}\n')
        return 1
    # Read whole, then written: the read lock is never held while our reader is
    # busy, perhaps writing the run's progress into this very file (it would
    # wait for our lock while we waited for it).
    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY) as spool:
        try:
            db.create_function("drc_lines", 1, _lines, deterministic=True)
            db.execute("BEGIN")  # every read below sees one snapshot
            for line in statements(db):
                spool.write(line.encode("utf-8", "surrogateescape") + b"\n")
        except sqlite3.Error as exc:
            # As the shell: the error on its own line in the dump, which the check refuses.
            code = getattr(exc, "sqlite_errorcode", 1)
            spool.write(f"/**** ERROR: ({code}) {exc} *****/\nCOMMIT;\n".encode())
        finally:
            db.close()
        spool.seek(0)
        shutil.copyfileobj(spool, out, 1 << 20)
    return 0


def restore(target: str, source: BinaryIO) -> int:
    db = sqlite3.connect(target, isolation_level=None)
    pending = ""
    started = 0
    try:
        for number, raw in enumerate(source, start=1):
            if not pending:
                started = number
            pending += raw.decode("utf-8")
            if sqlite3.complete_statement(pending):
                db.execute(pending)
                pending = ""
        if pending.strip():
            raise sqlite3.OperationalError("incomplete SQL: " + pending.strip()[:80])
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        sys.stderr.write(f"Parse error near line {started}: {exc}\n")
        return 1
    finally:
        db.close()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "dump":
        code = dump(argv[1], int(argv[2]), sys.stdout.buffer)
        sys.stdout.flush()
        return code
    if len(argv) == 2 and argv[0] == "restore":
        return restore(argv[1], sys.stdin.buffer)
    sys.stderr.write("usage: sqlite_shell dump PATH TIMEOUT_MS | restore TARGET\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
