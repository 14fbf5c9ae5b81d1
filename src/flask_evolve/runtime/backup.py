"""Online SQLite backups before a migration, through SQLite's backup API."""

from __future__ import annotations

import os
import shlex
import sqlite3
import time
from pathlib import Path
from typing import Any

from flask_evolve.runtime.locks import sqlite_database_path


class BackupError(Exception):
    """No backup could be taken; nothing was migrated."""


def backup_sqlite(engine: Any, *, now: float | None = None) -> str:
    """Copy the SQLite database of ``engine`` next to it and return the copy's path.

    The copy goes through ``sqlite3.Connection.backup``, so it is consistent
    even while other processes use the database.
    """
    url = getattr(engine, "sync_engine", engine).url
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"--backup works on SQLite only, and this database is {url.get_backend_name()}: "
            f"take a backup with your database's own tools (e.g. pg_dump), then upgrade without --backup."
        )
    source_path = sqlite_database_path(url)
    if source_path is None:
        raise BackupError("--backup needs a SQLite file, and this database is in memory.")
    if not os.path.exists(source_path):
        raise BackupError(f"No database file at '{source_path}' to back up.")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    target = f"{source_path}.{stamp}.backup"
    counter = 1
    while os.path.exists(target):
        counter += 1
        target = f"{source_path}.{stamp}-{counter}.backup"
    try:
        source = sqlite3.connect(Path(source_path).as_uri() + "?mode=ro", uri=True)
        try:
            destination = sqlite3.connect(target)
            try:
                source.backup(destination)
            finally:
                destination.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        if os.path.exists(target):
            os.unlink(target)
        raise BackupError(f"Could not back up '{source_path}' ({exc}): nothing was migrated.") from None
    return target


def restore_hint(backup_path: str, database_path: str) -> str:
    """One line telling how to put a backup back."""
    return (
        f"To restore the database as it was before this upgrade: "
        f"cp {shlex.quote(backup_path)} {shlex.quote(database_path)}"
    )
