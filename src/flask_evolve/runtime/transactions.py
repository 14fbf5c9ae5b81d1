"""Transactions that really roll back: SQLite DDL inside BEGIN…COMMIT, FK checks, autocommit-block notices."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("flask_evolve")

#: sqlite3.LEGACY_TRANSACTION_CONTROL (Python 3.12+): the driver's pre-3.12 transaction handling.
_LEGACY = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)


class ForeignKeyViolation(Exception):
    """A migration would leave rows that violate a foreign key; it was rolled back."""


def _sync_engine(engine: Any) -> Engine:
    return getattr(engine, "sync_engine", engine)


def _pragma(dbapi_connection: Any, statement: str) -> list[Any]:
    # Through a cursor: sqlite3 connections and SQLAlchemy's aiosqlite adapter both have one.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def report_autocommit_block(connection: Connection) -> None:
    """Say that statements now run outside any transaction (``autocommit_block()``)."""
    log.warning(
        "Running statements outside a transaction (autocommit_block): what this migration ran "
        "before the block is committed, and the block itself cannot be rolled back."
    )


class _AutocommitReporter:
    """Reports ``autocommit_block()`` use on databases that already have transactional DDL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def install(self) -> None:
        event.listen(self.engine, "set_connection_execution_options", self.on_options)

    def remove(self) -> None:
        event.remove(self.engine, "set_connection_execution_options", self.on_options)

    def on_options(self, connection: Connection, options: dict[str, Any]) -> None:
        if options.get("isolation_level") == "AUTOCOMMIT":
            report_autocommit_block(connection)


class _SQLiteTransactions(_AutocommitReporter):
    """Engine listeners that give pysqlite real transactions for the length of a run.

    pysqlite (Python < 3.12 style "legacy transaction control") never emits
    BEGIN before DDL, so each CREATE/ALTER/DROP commits on its own and a failed
    migration stays half applied. SQLAlchemy's documented recipe
    (:ref:`pysqlite_serializable`) switches the driver's own transaction
    handling off (``isolation_level = None``) and emits BEGIN when SQLAlchemy
    begins. Foreign key enforcement cannot change inside a transaction, so a
    database that enforces foreign keys gets them switched off before BEGIN
    (table rebuilds need that), checked with ``PRAGMA foreign_key_check``
    before COMMIT, and switched back on afterwards.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        # id(dbapi connection) -> (connection, isolation_level, foreign_keys, autocommit before);
        # sqlite3 connections cannot be weakly referenced, and a run is short.
        self.touched: dict[int, tuple[Any, Any, int, Any]] = {}

    def install(self) -> None:
        super().install()
        event.listen(self.engine, "begin", self.on_begin)
        event.listen(self.engine, "commit", self.on_commit)

    def remove(self) -> None:
        super().remove()
        event.remove(self.engine, "begin", self.on_begin)
        event.remove(self.engine, "commit", self.on_commit)
        for dbapi_connection, isolation_level, foreign_keys, autocommit in self.touched.values():
            self._restore(dbapi_connection, isolation_level, foreign_keys, autocommit)
        self.touched.clear()

    @staticmethod
    def _restore(dbapi_connection: Any, isolation_level: Any, foreign_keys: int, autocommit: Any) -> None:
        try:
            if getattr(dbapi_connection, "in_transaction", False):
                return
            if foreign_keys:
                _pragma(dbapi_connection, "PRAGMA foreign_keys = ON")
            dbapi_connection.isolation_level = isolation_level
            if autocommit != _LEGACY:
                dbapi_connection.autocommit = autocommit
        except Exception:  # a closed connection has nothing left to restore
            log.debug("could not restore SQLite connection settings", exc_info=True)

    @staticmethod
    def _autocommit(connection: Connection) -> bool:
        return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"

    def on_begin(self, connection: Connection) -> None:
        if self._autocommit(connection):
            return
        dbapi_connection = connection.connection.dbapi_connection
        if id(dbapi_connection) not in self.touched:
            autocommit = getattr(dbapi_connection, "autocommit", _LEGACY)
            if autocommit != _LEGACY:
                # Python 3.12+ connections opened with autocommit=True/False ignore
                # isolation_level; legacy control makes the recipe below apply.
                dbapi_connection.autocommit = _LEGACY
            foreign_keys = _pragma(dbapi_connection, "PRAGMA foreign_keys")[0][0]
            self.touched[id(dbapi_connection)] = (
                dbapi_connection,
                dbapi_connection.isolation_level,
                foreign_keys,
                autocommit,
            )
            if foreign_keys:
                _pragma(dbapi_connection, "PRAGMA foreign_keys = OFF")
        if dbapi_connection.isolation_level is not None:
            dbapi_connection.isolation_level = None
        # IMMEDIATE: take the write lock now, while a busy timeout can still
        # wait for it, instead of failing halfway when a reader upgrades.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def on_commit(self, connection: Connection) -> None:
        if self._autocommit(connection):
            return
        dbapi_connection = connection.connection.dbapi_connection
        state = self.touched.get(id(dbapi_connection))
        if state is None or not state[2]:
            return
        violations = _pragma(dbapi_connection, "PRAGMA foreign_key_check")
        if violations:
            tables = sorted({f"{row[0]} → {row[2]}" for row in violations})
            raise ForeignKeyViolation(
                f"The migration would leave {len(violations)} row(s) violating foreign keys "
                f"({', '.join(tables)}); it was rolled back: fix the data in the migration, "
                f"then run it again."
            )


def _sqlite_file(engine: Engine) -> str | None:
    from flask_evolve.runtime.locks import sqlite_database_path

    if engine.dialect.name != "sqlite":
        return None
    path = sqlite_database_path(engine.url)
    return os.path.realpath(path) if path else None


class _EnginesOfTheRun:
    """Gives the same transactions to engines an env.py builds itself on a migrated SQLite file.

    Flask-Migrate's env.py files up to 2.x call ``engine_from_config(..., poolclass=NullPool)``
    on the app's URL instead of using its engine: without this, their DDL would commit
    statement by statement. A class-level listener sees each such engine on its first
    connection, before Alembic begins a transaction on it.
    """

    def __init__(self, known: set[int], files: set[str]) -> None:
        self.known = known
        self.files = files
        self.installed: list[_SQLiteTransactions] = []

    def install(self) -> None:
        event.listen(Engine, "engine_connect", self.on_connect)

    def remove(self) -> None:
        event.remove(Engine, "engine_connect", self.on_connect)
        for listeners in self.installed:
            listeners.remove()
        self.installed.clear()

    def on_connect(self, connection: Connection) -> None:
        engine = connection.engine
        if id(engine) in self.known:
            return
        self.known.add(id(engine))
        if _sqlite_file(engine) in self.files:
            listeners = _SQLiteTransactions(engine)
            listeners.install()
            # Holds the engine, so that its id is not reused by another during the run.
            self.installed.append(listeners)


@contextmanager
def real_transactions(engines: Sequence[Any]) -> Iterator[None]:
    """Make migrations on ``engines`` all-or-nothing for the ``with`` block.

    SQLite engines get real transactions (see :class:`_SQLiteTransactions`);
    every engine reports statements run in an ``autocommit_block()``. The
    listeners are removed, and the SQLite connections given back their
    settings, when the block ends, so the app's own use of its engine is
    unchanged afterwards. An engine that env.py builds on the same SQLite file
    during the block gets the same transactions (see :class:`_EnginesOfTheRun`).
    """
    with ExitStack() as stack:
        seen: set[int] = set()
        files: set[str] = set()
        for given in engines:
            engine = _sync_engine(given)
            if id(engine) in seen:
                continue
            seen.add(id(engine))
            listeners: _SQLiteTransactions | _AutocommitReporter
            if engine.dialect.name == "sqlite":
                listeners = _SQLiteTransactions(engine)
                files.add(_sqlite_file(engine) or "")
            else:
                listeners = _AutocommitReporter(engine)
            listeners.install()
            stack.callback(listeners.remove)
        files.discard("")
        if files:
            others = _EnginesOfTheRun(seen, files)
            others.install()
            stack.callback(others.remove)
        yield


def is_transactional(engine: Any) -> bool:
    """Whether DDL on ``engine`` can be rolled back once :func:`real_transactions` is active."""
    return _sync_engine(engine).dialect.name in {"sqlite", "postgresql"}
