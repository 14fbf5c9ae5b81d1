"""Structural snapshots of a live schema, and the differences between two of them in words."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

Snapshot = dict[str, dict[str, Any]]

#: Tables that belong to the migration machinery, not to the app's schema.
MACHINERY_TABLES = frozenset({"alembic_version"})


def _type_name(column_type: Any, dialect: sa.Dialect) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:
        return type(column_type).__name__


def snapshot(connection: sa.Connection, *, exclude: frozenset[str] = MACHINERY_TABLES) -> Snapshot:
    """Describe every table: columns (type, nullability), primary key, foreign keys, uniques, indexes.

    Uses the inspector's bulk ``get_multi_*`` calls: one query per kind on PostgreSQL.
    """
    inspector = sa.inspect(connection)
    names = [t for t in inspector.get_table_names() if t not in exclude and not t.startswith("_alembic_tmp_")]
    if not names:
        return {}
    columns = inspector.get_multi_columns(filter_names=names)
    pks = inspector.get_multi_pk_constraint(filter_names=names)
    fks = inspector.get_multi_foreign_keys(filter_names=names)
    uniques = inspector.get_multi_unique_constraints(filter_names=names)
    indexes = inspector.get_multi_indexes(filter_names=names)
    result: Snapshot = {}
    for key in sorted(columns, key=lambda k: k[1]):
        table = key[1]
        result[table] = {
            "columns": {
                c["name"]: (_type_name(c["type"], connection.dialect), bool(c["nullable"]))
                for c in columns[key]
            },
            "primary key": tuple(sorted((pks.get(key) or {}).get("constrained_columns") or [])),
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in fks.get(key, [])
            ),
            "unique constraints": sorted(tuple(u["column_names"]) for u in uniques.get(key, [])),
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
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
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


def _postgresql_snapshot(connection: sa.Connection) -> Snapshot:
    """The schema from PostgreSQL's catalog in three queries, in PostgreSQL's canonical spelling."""
    result: Snapshot = {}

    def table(name: str) -> dict[str, Any] | None:
        if name in MACHINERY_TABLES:
            return None
        return result.setdefault(name, {"columns": {}, "constraints": [], "indexes": []})

    for name, column, type_, nullable in connection.exec_driver_sql(_PG_COLUMNS):
        if (entry := table(name)) is not None:
            entry["columns"][column] = (type_, bool(nullable))
    for key, query in (("constraints", _PG_CONSTRAINTS), ("indexes", _PG_INDEXES)):
        for name, definition in connection.exec_driver_sql(query):
            if (entry := table(name)) is not None:
                entry[key].append(definition)
    for entry in result.values():
        entry["constraints"].sort()
        entry["indexes"].sort()
    return result


def schema_state(connection: sa.Connection) -> SchemaState:
    """The current schema of ``connection``."""
    if connection.dialect.name == "postgresql":
        return SchemaState(snapshot=_postgresql_snapshot(connection))
    if connection.dialect.name != "sqlite":
        return SchemaState(snapshot=snapshot(connection))
    rows = connection.exec_driver_sql(
        "SELECT tbl_name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND type IN ('table', 'index') "
        "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, name"
    ).all()
    ddl: dict[str, list[str]] = {}
    for table, statement in rows:
        if table not in MACHINERY_TABLES and not table.startswith("_alembic_tmp_"):
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


def state_differences(expected: SchemaState, actual: SchemaState) -> list[str]:
    """:func:`differences` between two states, comparing structurally only the tables that changed."""
    if expected.ddl is None or actual.ddl is None:
        return differences(expected.snapshot or {}, actual.snapshot or {})
    changed = {t for t in expected.ddl.keys() & actual.ddl.keys() if expected.ddl[t] != actual.ddl[t]}
    found = [f"table {t} is missing" for t in sorted(expected.ddl.keys() - actual.ddl.keys())]
    found += [f"table {t} is extra" for t in sorted(actual.ddl.keys() - expected.ddl.keys())]
    if changed:
        found += differences(_rebuilt(expected.ddl, changed), _rebuilt(actual.ddl, changed))
    return found


def differences(expected: Snapshot, actual: Snapshot) -> list[str]:
    """What ``actual`` has that ``expected`` has not, and the other way round, one phrase each."""
    found: list[str] = []
    for table in sorted(expected.keys() - actual.keys()):
        found.append(f"table {table} is missing")
    for table in sorted(actual.keys() - expected.keys()):
        found.append(f"table {table} is extra")
    for table in sorted(expected.keys() & actual.keys()):
        want, have = expected[table], actual[table]
        for column in sorted(want["columns"].keys() - have["columns"].keys()):
            found.append(f"column {table}.{column} is missing")
        for column in sorted(have["columns"].keys() - want["columns"].keys()):
            found.append(f"column {table}.{column} is extra")
        for column in sorted(want["columns"].keys() & have["columns"].keys()):
            (want_type, want_null), (have_type, have_null) = want["columns"][column], have["columns"][column]
            if want_type != have_type:
                found.append(f"column {table}.{column} is {have_type}, expected {want_type}")
            if want_null != have_null:
                found.append(
                    f"column {table}.{column} is {'NULL' if have_null else 'NOT NULL'}, "
                    f"expected {'NULL' if want_null else 'NOT NULL'}"
                )
        for key in sorted((want.keys() | have.keys()) - {"columns"}):
            if want.get(key) != have.get(key):
                found.append(f"{key} of {table} differ: {have.get(key)!r}, expected {want.get(key)!r}")
    return found
