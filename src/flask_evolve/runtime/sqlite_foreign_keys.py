"""SQLite foreign-key enforcement during migrations: off while tables are rebuilt, restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection


@contextmanager
def foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Turn ``PRAGMA foreign_keys`` off for the migration, then back to what it was.

    A table rebuild drops the old table; with enforcement on, that DROP deletes
    (or cascade-deletes) the rows of every child table. The pragma is a no-op
    inside a transaction, so it is set on the raw driver connection before
    any transaction starts; each rebuild checks its foreign keys itself
    (``op.check_foreign_keys``) before the migration commits.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    if raw is None or getattr(raw, "in_transaction", False):
        yield
        return
    was_on = raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    if was_on:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if was_on and not getattr(raw, "in_transaction", False):
            raw.execute("PRAGMA foreign_keys=ON")
