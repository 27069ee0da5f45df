"""The portable table format of backups: one JSON object per row, per table.

Rows are encoded the same way on every backend: times as ISO 8601 in UTC, JSON
columns as their stored text (so SQL NULL and JSON `null` stay apart), bytes as
base64. They are ordered by primary key in byte order, so the SHA-256 of a table's
encoded rows is the same on SQLite and PostgreSQL for the same data. That checksum
is what `backup verify` compares after a trial restore.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    cast,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

BATCH_ROWS = 1000
# Alembic's own table is schema state, restored by migrating, not by copying rows.
SKIPPED_TABLES = ("alembic_version",)
PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))


@dataclass
class TableSpec:
    """A table as it exists in one database: its present columns, typed from the
    qml models where the table is one of them, else as reflected."""

    table: Table
    primary_key: list[str]
    json_columns: set[str]

    @property
    def name(self) -> str:
        return self.table.name


def model_table_names() -> set[str]:
    from qml_cli.core import models

    return set(models.Base.metadata.tables)


def table_specs(connection: Connection, scope: str) -> list[TableSpec]:
    """Describe the tables of `scope` (`ml`: the qml tables, `all`: every table) in
    foreign-key order, parents first."""
    from qml_cli.core import models

    inspector = inspect(connection)
    ordered = [name for name, _ in inspector.get_sorted_table_and_fkc_names() if name]
    known = model_table_names()
    specs = []
    for name in ordered:
        if name in SKIPPED_TABLES or (scope == "ml" and name not in known):
            continue
        reflected = {column["name"]: column for column in inspector.get_columns(name)}
        model = models.Base.metadata.tables.get(name)
        columns = []
        for column_name, info in reflected.items():
            if model is not None and column_name in model.c:
                column_type = model.c[column_name].type
            else:
                column_type = info["type"]
            columns.append(Column(column_name, column_type))
        primary_key = inspector.get_pk_constraint(name).get("constrained_columns") or []
        json_columns = {c.name for c in columns if isinstance(c.type, JSON)}
        shadow = Table(name, MetaData(), *columns)
        specs.append(TableSpec(shadow, list(primary_key), json_columns))
    return specs


def encode_value(value: Any) -> Any:
    """Encode a column value for JSON: times as ISO 8601, bytes as base64."""
    if type(value) in PLAIN_TYPES:  # most values; skips the checks below
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _select(spec: TableSpec, dialect: str):
    columns = []
    for column in spec.table.c:
        if column.name in spec.json_columns:
            columns.append(column.cast(Text).label(column.name))
        else:
            columns.append(column)
    order = [spec.table.c[name] for name in spec.primary_key] or list(spec.table.c)
    if dialect == "postgresql":
        # Byte order, as SQLite sorts, whatever the database's collation.
        order = [c.collate("C") if isinstance(c.type, String) else c for c in order]
    return select(*columns).order_by(*order)


def encoded_rows(connection: Connection, spec: TableSpec) -> Iterator[str]:
    """Yield the table's rows as canonical JSON lines, in primary-key order."""
    result = connection.execution_options(
        stream_results=True, yield_per=BATCH_ROWS
    ).execute(_select(spec, connection.dialect.name))
    names = list(result.keys())
    for row in result:
        document = {
            name: encode_value(value) for name, value in zip(names, row, strict=True)
        }
        yield json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


def table_checksums(
    connection: Connection,
    specs: Iterable[TableSpec],
    on_line: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return {table: {"rows", "sha256"}}; `on_line(table, line)` receives every row."""
    summary = {}
    for spec in specs:
        digest = hashlib.sha256()
        count = 0
        for line in encoded_rows(connection, spec):
            digest.update(line.encode() + b"\n")
            count += 1
            if on_line is not None:
                on_line(spec.name, line)
        summary[spec.name] = {"rows": count, "sha256": digest.hexdigest()}
    return summary


def _decoder(column: Column, is_json: bool) -> Callable[[Any], Any]:
    if is_json:
        return lambda value: value
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return lambda value: value
    if python_type is dt.datetime:
        return lambda value: None if value is None else dt.datetime.fromisoformat(value)
    if python_type is dt.date:
        return lambda value: None if value is None else dt.date.fromisoformat(value)
    if python_type is dt.time:
        return lambda value: None if value is None else dt.time.fromisoformat(value)
    if python_type is decimal.Decimal:
        return lambda value: None if value is None else decimal.Decimal(value)
    if python_type is bytes:
        return lambda value: None if value is None else base64.b64decode(value)
    if python_type is uuid.UUID:
        return lambda value: None if value is None else uuid.UUID(value)
    return lambda value: value


class JsonText(TypeDecorator):
    """A JSON column written from its stored text, cast on the server, so that
    the text and SQL NULL arrive unchanged."""

    impl = Text
    cache_ok = False

    def __init__(self, target, cast_on_server: bool) -> None:
        super().__init__()
        self.target = target
        self.cast_on_server = cast_on_server

    def bind_expression(self, bindvalue):
        # SQLite keeps JSON as text, and its CAST(... AS JSON) would make it a number.
        return cast(bindvalue, self.target) if self.cast_on_server else bindvalue


def _insert_table(spec: TableSpec, dialect: str) -> Table:
    columns = [
        Column(
            c.name,
            JsonText(c.type, dialect == "postgresql")
            if c.name in spec.json_columns
            else c.type,
        )
        for c in spec.table.c
    ]
    return Table(spec.name, MetaData(), *columns)


def load_rows(connection: Connection, spec: TableSpec, lines: Iterable[str]) -> int:
    """Insert encoded rows into the (empty) table in batches; return the count."""
    target = _insert_table(spec, connection.dialect.name)
    decoders = {c.name: _decoder(c, c.name in spec.json_columns) for c in spec.table.c}
    statement = target.insert()
    batch: list[dict[str, Any]] = []
    count = 0
    for line in lines:
        document = json.loads(line)
        batch.append({name: decoders[name](document.get(name)) for name in decoders})
        if len(batch) >= BATCH_ROWS:
            connection.execute(statement, batch)
            count += len(batch)
            batch = []
    if batch:
        connection.execute(statement, batch)
        count += len(batch)
    return count


def clear_tables(connection: Connection, specs: list[TableSpec]) -> None:
    """Delete every row of the tables, children first; PostgreSQL tables are locked
    against concurrent writers until the transaction ends."""
    if connection.dialect.name == "postgresql" and specs:
        names = ", ".join(
            connection.dialect.identifier_preparer.quote(s.name) for s in specs
        )
        connection.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
    for spec in reversed(specs):
        connection.execute(spec.table.delete())


def reset_sequences(connection: Connection, specs: list[TableSpec]) -> None:
    """Move PostgreSQL serial sequences past the restored ids (SQLite needs nothing)."""
    if connection.dialect.name != "postgresql":
        return
    for spec in specs:
        for name in spec.primary_key:
            quoted_table = connection.dialect.identifier_preparer.quote(spec.name)
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quoted_table, "column": name},
            ).scalar()
            if sequence is None:
                continue
            quoted_column = connection.dialect.identifier_preparer.quote(name)
            connection.execute(
                text(
                    f"SELECT setval(:sequence, COALESCE(MAX({quoted_column}), 1), "
                    f"MAX({quoted_column}) IS NOT NULL) FROM {quoted_table}"
                ),
                {"sequence": sequence},
            )
