"""Structural snapshots of a live schema, and the differences between two of them in words."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flask_evolve.runtime.archive_ops import is_archive_table

Snapshot = dict[str, dict[str, Any]]

#: Alembic's version table, unless the app names another (``context.configure(version_table=...)``).
VERSION_TABLE = "alembic_version"


def is_machinery(name: str, version_table: str = VERSION_TABLE) -> bool:
    """Whether a table belongs to the migration machinery, not to the app's schema.

    The version table, a batch rebuild's temporary copy and the archive that
    lossless downgrades keep (which a downgrade creates and the next upgrade
    empties, so replays see it come and go).
    """
    if name in (version_table, VERSION_TABLE):
        return True
    return name.startswith("_alembic_tmp_") or is_archive_table(name)


def _type_name(column_type: Any, dialect: sa.Dialect) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:
        return type(column_type).__name__


def canonical_default(text: str | None) -> str | None:
    """A reflected server default, spelled one way for every way of writing it.

    ``'0'``, ``0``, ``(0)`` and PostgreSQL's ``'0'::integer`` are all ``0``;
    ``'x'`` and ``'x'::character varying`` are ``'x'``; ``CURRENT_TIMESTAMP`` and
    ``now()`` are ``now()``. Other expressions keep their text, whitespace collapsed.
    """
    if text is None:
        return None
    # The same reduction autogenerate uses to decide whether a default changed.
    from flask_evolve.autogen.comparators import _canonical_sql

    canonical = _canonical_sql(text)
    if canonical is None:
        return " ".join(text.split())
    kind, value = canonical
    if kind == "now":
        return "now()"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return "'" + value.replace("'", "''") + "'"
    # 1, 1.0 and 1e0 are one number; "normalize" alone would turn 10 into 1E+1.
    return str(number.normalize()) if number != number.to_integral_value() else str(int(number))


def _check_texts(inspector: Any, names: list[str]) -> dict[Any, list[dict[str, Any]]]:
    try:
        return inspector.get_multi_check_constraints(filter_names=names)
    except NotImplementedError:
        return {}


def snapshot(connection: sa.Connection, *, version_table: str = VERSION_TABLE) -> Snapshot:
    """Describe every table: columns (type, nullability, server default), primary key, foreign keys,
    uniques, CHECK constraints (SQLAlchemy reads SQLite's from the CREATE TABLE text), indexes.

    Uses the inspector's bulk ``get_multi_*`` calls: one query per kind on PostgreSQL.
    """
    inspector = sa.inspect(connection)
    names = [t for t in inspector.get_table_names() if not is_machinery(t, version_table)]
    if not names:
        return {}
    columns = inspector.get_multi_columns(filter_names=names)
    pks = inspector.get_multi_pk_constraint(filter_names=names)
    fks = inspector.get_multi_foreign_keys(filter_names=names)
    uniques = inspector.get_multi_unique_constraints(filter_names=names)
    indexes = inspector.get_multi_indexes(filter_names=names)
    checks = _check_texts(inspector, names)
    result: Snapshot = {}
    for key in sorted(columns, key=lambda k: k[1]):
        table = key[1]
        result[table] = {
            "columns": {
                c["name"]: (
                    _type_name(c["type"], connection.dialect),
                    bool(c["nullable"]),
                    canonical_default(c.get("default")),
                )
                for c in columns[key]
            },
            "primary key": tuple(sorted((pks.get(key) or {}).get("constrained_columns") or [])),
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in fks.get(key, [])
            ),
            "unique constraints": sorted(tuple(u["column_names"]) for u in uniques.get(key, [])),
            "check constraints": sorted(" ".join(str(c["sqltext"]).split()) for c in checks.get(key, [])),
            "indexes": sorted(
                (tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in indexes.get(key, [])
                if not i.get("duplicates_constraint")
            ),
        }
    return result


@dataclass
class SchemaState:
    """A schema as seen at one moment.

    On SQLite: each table's own DDL (table and indexes), read in one query; tables whose DDL is
    identical are identical, and only the others are compared structurally, from that DDL rebuilt
    in memory. Elsewhere: the structural snapshot.
    """

    snapshot: Snapshot | None = None
    ddl: dict[str, tuple[str, ...]] | None = None


_PG_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
"""
_PG_CONSTRAINTS = """
SELECT c.relname, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = current_schema()::regnamespace
"""
_PG_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
"""


def _postgresql_snapshot(connection: sa.Connection, version_table: str) -> Snapshot:
    """The schema from PostgreSQL's catalog in three queries, in PostgreSQL's canonical spelling."""
    result: Snapshot = {}

    def table(name: str) -> dict[str, Any] | None:
        if is_machinery(name, version_table):
            return None
        return result.setdefault(name, {"columns": {}, "constraints": [], "indexes": []})

    for name, column, type_, nullable, default in connection.exec_driver_sql(_PG_COLUMNS):
        if (entry := table(name)) is not None:
            entry["columns"][column] = (type_, bool(nullable), canonical_default(default))
    for key, query in (("constraints", _PG_CONSTRAINTS), ("indexes", _PG_INDEXES)):
        for name, definition in connection.exec_driver_sql(query):
            if (entry := table(name)) is not None:
                entry[key].append(definition)
    for entry in result.values():
        entry["constraints"].sort()
        entry["indexes"].sort()
    return result


def schema_state(connection: sa.Connection, version_table: str = VERSION_TABLE) -> SchemaState:
    """The current schema of ``connection``, the migration machinery's tables left out."""
    if connection.dialect.name == "postgresql":
        return SchemaState(snapshot=_postgresql_snapshot(connection, version_table))
    if connection.dialect.name != "sqlite":
        return SchemaState(snapshot=snapshot(connection, version_table=version_table))
    rows = connection.exec_driver_sql(
        "SELECT tbl_name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND type IN ('table', 'index') "
        "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, name"
    ).all()
    ddl: dict[str, list[str]] = {}
    for table, statement in rows:
        if not is_machinery(table, version_table):
            ddl.setdefault(table, []).append(statement)
    return SchemaState(ddl={t: tuple(statements) for t, statements in ddl.items()})


@functools.cache
def _memory_engine() -> sa.Engine:
    # NullPool: every connection is a fresh, empty in-memory database; the engine (and its
    # dialect initialisation) is made once.
    return sa.create_engine("sqlite://", poolclass=NullPool)


def _rebuilt(ddl: dict[str, tuple[str, ...]], tables: set[str]) -> Snapshot:
    with _memory_engine().connect() as connection:
        for table in sorted(tables):
            for statement in ddl[table]:
                connection.exec_driver_sql(statement)
        return snapshot(connection)


@dataclass(frozen=True)
class Difference:
    """One way two schemas differ, in words, with the table (and column) it is about."""

    table: str
    column: str | None
    text: str

    def __str__(self) -> str:
        return self.text


def state_differences(expected: SchemaState, actual: SchemaState) -> list[Difference]:
    """:func:`differences` between two states, comparing structurally only the tables that changed."""
    if expected.ddl is None or actual.ddl is None:
        return differences(expected.snapshot or {}, actual.snapshot or {})
    changed = {t for t in expected.ddl.keys() & actual.ddl.keys() if expected.ddl[t] != actual.ddl[t]}
    found = [Difference(t, None, f"table {t} is missing") for t in sorted(expected.ddl.keys() - actual.ddl)]
    found += [Difference(t, None, f"table {t} is extra") for t in sorted(actual.ddl.keys() - expected.ddl)]
    if changed:
        found += differences(_rebuilt(expected.ddl, changed), _rebuilt(actual.ddl, changed))
    return found


def differences(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """What ``actual`` has that ``expected`` has not, and the other way round, one phrase each."""
    found: list[Difference] = []
    for table in sorted(expected.keys() - actual.keys()):
        found.append(Difference(table, None, f"table {table} is missing"))
    for table in sorted(actual.keys() - expected.keys()):
        found.append(Difference(table, None, f"table {table} is extra"))
    for table in sorted(expected.keys() & actual.keys()):
        found += _table_differences(table, expected[table], actual[table])
    return found


def _table_differences(table: str, want: dict[str, Any], have: dict[str, Any]) -> list[Difference]:
    found: list[Difference] = []

    def column(name: str, text: str) -> None:
        found.append(Difference(table, name, f"column {table}.{name} {text}"))

    for name in sorted(want["columns"].keys() - have["columns"].keys()):
        column(name, "is missing")
    for name in sorted(have["columns"].keys() - want["columns"].keys()):
        column(name, "is extra")
    for name in sorted(want["columns"].keys() & have["columns"].keys()):
        (want_type, want_null, want_default) = want["columns"][name]
        (have_type, have_null, have_default) = have["columns"][name]
        if want_type != have_type:
            column(name, f"is {have_type}, expected {want_type}")
        if want_null != have_null:
            column(name, f"is {_nullable_words(have_null)}, expected {_nullable_words(want_null)}")
        if want_default != have_default:
            column(name, f"has {_default_words(have_default)}, expected {_default_words(want_default)}")
    for key in sorted((want.keys() | have.keys()) - {"columns"}):
        wanted, had = want.get(key), have.get(key)
        if wanted == had:
            continue
        if not isinstance(wanted, list) or not isinstance(had, list):
            text = f"{key} of {table} is {_words(had)}, expected {_words(wanted)}"
            found.append(Difference(table, None, text))
            continue
        kind = "index" if key == "indexes" else key.removesuffix("s")
        found += [
            Difference(table, None, f"{kind} {_words(i, kind)} on {table} is {state}")
            for state, items, other in (("missing", wanted, had), ("extra", had, wanted))
            for i in items
            if i not in other
        ]
    return found


def _nullable_words(nullable: bool) -> str:
    return "NULL" if nullable else "NOT NULL"


def _default_words(default: str | None) -> str:
    return "no server default" if default is None else f"server default {default}"


def _words(item: Any, kind: str = "") -> str:
    """A snapshot entry in SQL-like words: ``(a, b)``, ``UNIQUE (email)``, ``(team_id) -> team(id)``."""
    if isinstance(item, str):
        return item
    if kind == "index":
        columns, unique = item
        return f"{'UNIQUE ' if unique else ''}{_words(columns)}"
    if kind == "foreign key":
        columns, referred, referred_columns = item
        return f"{_words(columns)} -> {referred}{_words(referred_columns)}"
    if isinstance(item, tuple) and all(isinstance(i, str) for i in item):
        return f"({', '.join(item)})"
    return repr(item)
