"""What surrounds a run that changes the database: the migration lock, real transactions, repairs, backup."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import current_app

from flask_evolve.errors import MigrationError
from flask_evolve.extension import checked_lock_timeout

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

    from flask_evolve.extension import Migrate


def notify(message: str) -> None:
    """Print a progress or waiting line on stderr, where Alembic's own lines go."""
    print(message, file=sys.stderr, flush=True)


#: env.py files that migrate every bind: ours (`multidb=True`) and Flask-Migrate's multidb one.
_MULTIDB_ENV = re.compile(r"multidb\s*=\s*True|bind_names|get_engine\(bind=")


def is_multidb(config: AlembicConfig) -> bool:
    location = config.get_main_option("script_location") or ""
    try:
        with open(os.path.join(location, "env.py"), encoding="utf-8") as f:
            return bool(_MULTIDB_ENV.search(f.read()))
    except OSError:
        return False


def _migrated_engines(config: AlembicConfig) -> list[Any]:
    from flask_evolve.environment import app_databases

    return [database.engine for database in app_databases(multidb=is_multidb(config))]


@contextmanager
def _run_configure_args(engines: Sequence[Any], single_transaction: bool | None) -> Iterator[None]:
    """Add the transaction settings of this run to ``configure_args`` for its length.

    Old Flask-Migrate env.py files read ``configure_args`` too, so they get the
    same transactions as ours.
    """
    from flask_evolve.runtime.transactions import is_transactional

    args = current_app.extensions["migrate"].configure_args
    added: dict[str, Any] = {}
    if single_transaction is not None:
        added["transaction_per_migration"] = not single_transaction
    elif "transaction_per_migration" not in args:
        added["transaction_per_migration"] = True
    # SQLite's DDL rolls back once runtime.transactions gives it real BEGINs;
    # Alembic assumes otherwise unless told.
    if "transactional_ddl" not in args and is_transactional(engines[0]):
        added["transactional_ddl"] = True
    saved = {key: args[key] for key in added if key in args}
    args.update(added)
    try:
        yield
    finally:
        for key in added:
            args.pop(key, None)
        args.update(saved)


@contextmanager
def migration_run(
    migrate: Migrate,
    config: AlembicConfig,
    *,
    sql: bool,
    lock_timeout: float | None,
    single_transaction: bool | None = None,
    backup: bool = False,
    clean_stale: bool = False,
) -> Iterator[None]:
    """Lock, make transactions real, repair and back up around a run that changes the database.

    Offline (``--sql``) runs touch no database and take no lock.

    :param lock_timeout: seconds to wait for the lock (``None``: ``Migrate(lock_timeout=...)``,
        else for ever).
    :param single_transaction: one transaction for the whole run (``None``: the configured default).
    :param backup: copy each SQLite database first.
    :param clean_stale: drop ``_alembic_tmp_*`` tables left by failed rebuilds (upgrade).
    """
    from flask_evolve.runtime.operations import register_script_operations

    # Before env.py runs: old Flask-Migrate env.py files and apps' own never register them.
    register_script_operations()
    if sql:
        yield
        return
    from flask_evolve.runtime.backup import backup_sqlite, restore_hint
    from flask_evolve.runtime.locks import migration_lock, sqlite_database_path
    from flask_evolve.runtime.recovery import drop_stale_rebuild_tables
    from flask_evolve.runtime.transactions import real_transactions

    engines = _migrated_engines(config)
    if backup:
        for engine in engines:
            _check_backup_possible(engine)
    if lock_timeout is None:
        # Checked again: the options are a public dict an app may change after Migrate().
        try:
            lock_timeout = checked_lock_timeout(migrate.evolve_options.get("lock_timeout"))
        except ValueError as exc:
            raise MigrationError(str(exc)) from None
    version_table = current_app.extensions["migrate"].configure_args.get("version_table")
    with migration_lock(
        engines,
        name=version_table or "alembic_version",
        timeout=lock_timeout,
        notify=notify,
    ):
        if clean_stale:
            for engine in engines:
                drop_stale_rebuild_tables(engine, notify)
        backups: list[tuple[str, str]] = []
        if backup:
            for engine in engines:
                copy = backup_sqlite(engine)
                source = sqlite_database_path(getattr(engine, "sync_engine", engine).url) or ""
                notify(f"Backed up '{source}' to '{copy}'.")
                backups.append((copy, source))
        with real_transactions(engines), _run_configure_args(engines, single_transaction):
            try:
                yield
            except BaseException:
                for copy, source in backups:
                    notify(restore_hint(copy, source))
                raise


def _check_backup_possible(engine: Any) -> None:
    from flask_evolve.runtime.locks import sqlite_database_path

    url = getattr(engine, "sync_engine", engine).url
    if url.get_backend_name() != "sqlite":
        raise MigrationError(
            f"--backup works on SQLite only, and this database is {url.get_backend_name()}: "
            f"take a backup with your database's own tools (e.g. pg_dump), then upgrade without --backup."
        )
    if sqlite_database_path(url) is None:
        raise MigrationError("--backup needs a SQLite file, and this database is in memory.")
