"""Scratch databases: a temp SQLite file or a temporary PostgreSQL database, made and removed by us."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.pool import NullPool


class ScratchError(Exception):
    """No scratch database could be made; the message says how to provide one."""


@contextmanager
def scratch_engine(live_url: sa.URL | str, scratch_url: str | None = None) -> Iterator[sa.Engine]:
    """An empty database of the same kind as ``live_url``, removed afterwards.

    SQLite: a file in a temp directory. PostgreSQL: ``CREATE DATABASE`` on the
    same server (the user needs CREATEDB), dropped at the end. ``scratch_url``:
    that database, which must be empty; the tables made in it are dropped at the end.
    """
    if scratch_url is not None:
        engine = sa.create_engine(scratch_url, poolclass=NullPool)
        try:
            if sa.inspect(engine).get_table_names():
                raise ScratchError(f"The scratch database {engine.url!r} is not empty: give an empty one.")
            yield engine
        finally:
            _drop_everything(engine)
            engine.dispose()
        return
    url = sa.make_url(live_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="flask-evolve-scratch-")
        engine = sa.create_engine(
            url.set(database=os.path.join(directory, "scratch.db")), poolclass=NullPool
        )
        sa.event.listen(engine, "connect", _no_sqlite_durability)
        try:
            yield engine
        finally:
            engine.dispose()
            shutil.rmtree(directory, ignore_errors=True)
        return
    if backend == "postgresql":
        yield from _postgresql_scratch(url)
        return
    raise ScratchError(
        f"No automatic scratch database for {backend}: pass --scratch-url with an empty database."
    )


def _postgresql_scratch(url: sa.URL) -> Iterator[sa.Engine]:
    name = f"flask_evolve_scratch_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            # template0: nobody connects to it, so concurrent creates never collide.
            connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        raise ScratchError(
            f"Could not create a scratch database on {url.host or 'the server'} "
            f"({str(exc.orig).strip().splitlines()[0]}): grant CREATEDB or pass --scratch-url."
        ) from exc
    engine = sa.create_engine(
        url.set(database=name), poolclass=NullPool, connect_args={"options": "-c synchronous_commit=off"}
    )
    try:
        # Migrations put tables in the schemas the live database has; they seldom create them.
        with admin.connect() as live, engine.begin() as scratch:
            for schema in user_schemas(live):
                scratch.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {_quoted(scratch, schema)}"))
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            try:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except sa.exc.ProgrammingError:  # PostgreSQL < 13 has no FORCE; our engine is disposed.
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def user_schemas(connection: sa.Connection) -> list[str]:
    """PostgreSQL schemas besides ``public`` and the system ones."""
    return list(
        connection.execute(
            sa.text(
                "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' "
                "AND nspname NOT IN ('information_schema', 'public') ORDER BY nspname"
            )
        ).scalars()
    )


def _quoted(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def _no_sqlite_durability(dbapi_connection: object, _: object) -> None:
    # A scratch file is thrown away: waiting for fsync on every DDL commit is pure cost.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.execute("PRAGMA journal_mode = MEMORY")
    cursor.close()


def _drop_everything(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)


def copy_schema(source: sa.Connection, target: sa.Connection, version_table: str = "alembic_version") -> None:
    """Recreate ``source``'s tables (empty), and its recorded revisions (read from the app's
    ``version_table``) in ``target``'s ``alembic_version``, where the scripts run without env.py look."""
    if source.dialect.name == "sqlite":
        # SQLite keeps each object's own DDL: replaying it gives an exact copy.
        statements = source.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid"
            )
        ).scalars()
        for statement in statements:
            target.exec_driver_sql(statement)
    else:
        metadata = sa.MetaData()
        metadata.reflect(source)
        for schema in user_schemas(source):
            target.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {_quoted(target, schema)}"))
            metadata.reflect(source, schema=schema)
        for table in metadata.tables.values():
            for column in table.columns:
                default = column.server_default
                # A serial column's nextval() default names a sequence the copy does not
                # have; without it create_all() emits SERIAL, which makes one.
                if default is not None and "nextval(" in str(getattr(default, "arg", "")):
                    column.server_default = None
        metadata.create_all(target)
    if sa.inspect(source).has_table(version_table):
        quoted = source.dialect.identifier_preparer.quote(version_table)
        versions = source.execute(sa.text(f"SELECT version_num FROM {quoted}")).scalars().all()
        target.execute(
            sa.text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        for version in versions:
            target.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
