"""Structural snapshots of a live schema, and the differences between two of them in words."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

Snapshot = dict[str, dict[str, Any]]

#: Tables that belong to the migration machinery, not to the app's schema.
MACHINERY_TABLES = frozenset({"alembic_version"})


def _type_name(column_type: Any, dialect: sa.Dialect) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:
        return type(column_type).__name__


def snapshot(connection: sa.Connection, *, exclude: frozenset[str] = MACHINERY_TABLES) -> Snapshot:
    """Describe every table: columns (type, nullability), primary key, foreign keys, uniques, indexes."""
    inspector = sa.inspect(connection)
    result: Snapshot = {}
    for table in sorted(inspector.get_table_names()):
        if table in exclude or table.startswith("_alembic_tmp_"):
            continue
        columns = {
            c["name"]: (_type_name(c["type"], connection.dialect), bool(c["nullable"]))
            for c in inspector.get_columns(table)
        }
        pk = inspector.get_pk_constraint(table)
        result[table] = {
            "columns": columns,
            "primary key": tuple(sorted(pk.get("constrained_columns") or [])),
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique constraints": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
        }
    return result


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
        for key in ("primary key", "foreign keys", "unique constraints", "indexes"):
            if want[key] != have[key]:
                found.append(f"{key} of {table} differ: {have[key]!r}, expected {want[key]!r}")
    return found
