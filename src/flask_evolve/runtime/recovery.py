"""Repairs before a run: `_alembic_tmp_*` tables left by batch rebuilds that failed outside a transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect

TMP_PREFIX = "_alembic_tmp_"


class StaleRebuildError(Exception):
    """A leftover rebuild table holds the only copy of a table's rows."""


def drop_stale_rebuild_tables(engine: Any, notify: Callable[[str], None]) -> list[str]:
    """Drop the ``_alembic_tmp_<table>`` tables a failed batch rebuild left behind.

    Alembic's batch mode copies ``t`` into ``_alembic_tmp_t``, drops ``t`` and
    renames the copy. Before Flask-Evolve ran SQLite migrations in real
    transactions, a failure in between left the copy behind and every retry
    died on "table _alembic_tmp_t already exists". Call this only while holding
    the migration lock: then no rebuild is in progress, and a copy whose
    original still exists is garbage. A copy whose original is gone holds the
    only rows of that table, so it is never dropped.

    :return: the names of the dropped tables.
    :raises StaleRebuildError: when the original table is missing.
    """
    if hasattr(engine, "sync_engine") or engine.dialect.name != "sqlite":
        # AsyncEngines cannot be driven from synchronous code: async apps are not cleaned up.
        # Transactional DDL (PostgreSQL) never leaves a rebuild half done.
        return []
    dropped: list[str] = []
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names())
        quote = connection.dialect.identifier_preparer.quote
        for name in sorted(t for t in tables if t.startswith(TMP_PREFIX)):
            original = name[len(TMP_PREFIX) :]
            if original not in tables:
                raise StaleRebuildError(
                    f"Table '{original}' is missing and '{name}' holds its rows (left by a failed "
                    f"table rebuild): rename it back with ALTER TABLE {quote(name)} RENAME TO "
                    f"{quote(original)}, then run the upgrade again."
                )
            connection.exec_driver_sql(f"DROP TABLE {quote(name)}")
            notify(f"Dropped '{name}', left behind by a failed rebuild of '{original}'.")
            dropped.append(name)
    return dropped
