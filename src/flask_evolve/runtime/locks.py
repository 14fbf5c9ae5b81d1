"""The migration lock: one migrator per database at a time (PostgreSQL advisory lock, SQLite file lock)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from flask_evolve.errors import MigrationError, sqlstate

log = logging.getLogger("flask_evolve")

#: Printed once by a process that has to wait for another one's migration.
WAITING_MESSAGE = "waiting for another migration…"

#: Suffix of the SQLite sidecar lock file, next to the database file.
SQLITE_LOCK_SUFFIX = ".flask-evolve.lock"

_POLL_SECONDS = 0.05


class LockTimeout(Exception):
    """Another process held the migration lock for longer than the allowed wait."""

    def __init__(self, database: str, timeout: float) -> None:
        self.database = database
        self.timeout = timeout
        super().__init__(
            f"Another migration held the lock on {database} for more than {timeout:g}s: "
            f"try again when it has finished, or allow a longer wait with --lock-timeout."
        )


class LockUnavailable(Exception):
    """The lock itself could not be taken (e.g. the lock file cannot be created)."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, derived from ``name``."""
    digest = hashlib.sha256(f"flask-evolve:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_database_path(url: URL) -> str | None:
    """The file of a SQLite URL, or ``None`` for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or "mode=memory" in str(url.query.get("mode", "")):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
        if not database or database == ":memory:":
            return None
    return os.path.abspath(database)


def sqlite_lock_path(url: URL) -> str | None:
    """Where the inter-process lock file of a SQLite database lives (``None``: in memory)."""
    path = sqlite_database_path(url)
    return None if path is None else path + SQLITE_LOCK_SUFFIX


#: Synchronous drivers that reach the database of an AsyncEngine, by backend; the first importable one wins.
_SYNC_DRIVERS = {"postgresql": ("postgresql+psycopg", "postgresql+psycopg2"), "sqlite": ("sqlite+pysqlite",)}


def synchronous_engine(engine: Any) -> tuple[Engine, bool]:
    """A synchronous engine on ``engine`'s database, and whether it was made here (the caller disposes it).

    An AsyncEngine cannot be used from synchronous code, not even through its
    ``sync_engine`` outside the event loop: this opens the same URL with a
    synchronous driver instead.
    """
    sync = getattr(engine, "sync_engine", None)
    if sync is None:
        return engine, False
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    backend = sync.url.get_backend_name()
    for driver in _SYNC_DRIVERS.get(backend, ()):
        try:
            return create_engine(sync.url.set(drivername=driver), poolclass=NullPool), True
        except ImportError:
            continue
    if backend == "postgresql":
        raise MigrationError(
            "An async PostgreSQL engine needs a synchronous driver too, for the migration lock and the "
            "archive: install psycopg (pip install 'psycopg[binary]')."
        )
    return sync, False


def _lockable_engine(engine: Any) -> tuple[Engine, bool]:
    """A synchronous engine for ``engine`` and whether we created it (and must dispose it)."""
    sync = getattr(engine, "sync_engine", None)
    if sync is not None and sync.url.get_backend_name() != "postgresql":
        return sync, False  # a SQLite lock is a file next to the database: only the URL is read
    return synchronous_engine(engine)


def _wait_notice(notify: Callable[[str], None]) -> Callable[[], None]:
    said = False

    def notice() -> None:
        nonlocal said
        if not said:
            said = True
            notify(WAITING_MESSAGE)

    return notice


@contextmanager
def _sqlite_file_lock(
    url: URL, timeout: float | None, notice: Callable[[], None]
) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows
        log.warning("No migration lock for SQLite on this platform: run one migration at a time.")
        yield
        return

    path = sqlite_lock_path(url)
    if path is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise LockUnavailable(
            f"The folder of the SQLite database '{path[: -len(SQLITE_LOCK_SUFFIX)]}' does not exist: "
            f"create it, or fix the database URL."
        ) from None
    except OSError as exc:
        raise LockUnavailable(
            f"Cannot create the migration lock file '{path}' ({exc.strerror}): "
            f"make its folder writable for this user."
        ) from None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notice()
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockTimeout(_display(url), timeout or 0) from None
                        time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _postgresql_advisory_lock(
    engine: Engine, key: int, timeout: float | None, notice: Callable[[], None]
) -> Iterator[None]:
    # A dedicated connection, in autocommit, so that the session-level lock
    # outlives every transaction of the migration (autocommit_block()
    # included) and the lock session never sits "idle in transaction".
    from sqlalchemy.exc import DBAPIError

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        if not got:
            notice()
            # lock_timeout bounds advisory-lock waits too; 0 means wait for ever.
            millis = 0 if timeout is None else max(1, int(timeout * 1000))
            connection.execute(text(f"SET lock_timeout = {millis}"))
            try:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except DBAPIError as exc:
                if sqlstate(exc) == "55P03":  # lock_not_available
                    raise LockTimeout(_display(engine.url), timeout or 0) from None
                raise
            finally:
                if connection.in_transaction():
                    connection.rollback()
            connection.execute(text("RESET lock_timeout"))
        try:
            yield
        finally:
            # Closing the session would release it too; unlocking explicitly
            # hands over to the next waiter without waiting for pool cleanup.
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            except DBAPIError:
                connection.invalidate()


def _display(url: URL) -> str:
    from flask_evolve.errors import display_url

    return display_url(url)


def _identity(url: URL) -> str:
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


@contextmanager
def migration_lock(
    engines: Sequence[Any],
    *,
    name: str = "alembic_version",
    timeout: float | None = None,
    notify: Callable[[str], None] = print,
) -> Iterator[None]:
    """Hold the migration lock of every database in ``engines`` for the ``with`` block.

    Locks are taken in a fixed order (by URL) so that two processes migrating
    the same set of databases cannot deadlock each other.

    :param engines: the SQLAlchemy engines (sync or async) to lock.
    :param name: what the lock protects; processes with the same name exclude
        each other (the version table's name, so that separate migration
        histories in one database do not wait for each other).
    :param timeout: seconds to wait at most; ``None`` waits for ever.
    :param notify: called once with :data:`WAITING_MESSAGE` if we have to wait.
    :raises LockTimeout: when the wait exceeds ``timeout``.
    """
    notice = _wait_notice(notify)
    unique: dict[str, Any] = {}
    for engine in engines:
        url = getattr(engine, "sync_engine", engine).url
        unique.setdefault(_identity(url), engine)
    with ExitStack() as stack:
        for _, given in sorted(unique.items()):
            engine, created = _lockable_engine(given)
            if created:
                stack.callback(engine.dispose)
            backend = engine.url.get_backend_name()
            if backend == "sqlite":
                stack.enter_context(_sqlite_file_lock(engine.url, timeout, notice))
            elif backend == "postgresql":
                stack.enter_context(
                    _postgresql_advisory_lock(engine, advisory_key(name), timeout, notice)
                )
            else:
                log.warning(
                    "No migration lock for %s databases: run one migration at a time.", backend
                )
        yield
