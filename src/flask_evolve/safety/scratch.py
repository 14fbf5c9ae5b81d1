"""Scratch databases: a temp SQLite file or a temporary PostgreSQL database, made and removed by us."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flask_evolve.errors import display_url, hide_credentials

log = logging.getLogger("flask_evolve")

#: Every temporary PostgreSQL scratch database's name starts so.
SCRATCH_PREFIX = "flask_evolve_scratch_"

#: Every temporary SQLite scratch directory's name starts so (in the system temp directory).
SQLITE_SCRATCH_PREFIX = "flask-evolve-scratch-"

#: The file in a SQLite scratch directory that names its owner, as the PostgreSQL comment does.
_OWNER_FILE = "owner"

#: The comment each scratch database carries: the process that made it, and where it runs.
_OWNER = "flask-evolve scratch database of process {pid} on {host}"
_OWNER_PATTERN = re.compile(r"flask-evolve scratch database of process (\d+) on (.+)")


class ScratchError(Exception):
    """No scratch database could be made; the message says how to provide one."""


@contextmanager
def scratch_engine(live_url: sa.URL | str, scratch_url: str | None = None) -> Iterator[sa.Engine]:
    """An empty database of the same kind as ``live_url``, removed afterwards.

    SQLite: a file in a temp directory. PostgreSQL: ``CREATE DATABASE`` on the
    same server (the user needs CREATEDB), dropped at the end. ``scratch_url``:
    that database, which must hold no tables; everything the replay creates in
    it (tables, views, sequences, types, functions, schemas) is dropped at the end.
    """
    if scratch_url is not None:
        yield from _given_scratch(sa.make_url(live_url), scratch_url)
        return
    url = sa.make_url(live_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        _remove_stale_sqlite_scratch()
        directory = tempfile.mkdtemp(prefix=SQLITE_SCRATCH_PREFIX)
        # Who made it: a later run removes it if this process is killed before its own rmtree.
        with open(os.path.join(directory, _OWNER_FILE), "w", encoding="utf-8") as f:
            f.write(_OWNER.format(pid=os.getpid(), host=socket.gethostname()))
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
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            _remove_stale_scratch_databases(connection)
            # template0: nobody connects to it, so concurrent creates never collide.
            connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        raise ScratchError(
            f"Could not create a scratch database on {url.host or 'the server'} "
            f"({_driver_line(exc)}): grant CREATEDB or pass --scratch-url."
        ) from exc
    engine = sa.create_engine(
        url.set(database=name), poolclass=NullPool, connect_args={"options": "-c synchronous_commit=off"}
    )
    try:
        with admin.connect() as connection:
            # Who made it: a later run drops it if this process is killed before its own DROP.
            owner = _OWNER.format(pid=os.getpid(), host=socket.gethostname()).replace("'", "''")
            connection.execute(sa.text(f"COMMENT ON DATABASE \"{name}\" IS '{owner}'"))
        _create_live_schemas(admin, engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            _drop_database(connection, name)
        admin.dispose()


def _drop_database(admin: sa.Connection, name: str) -> None:
    """DROP DATABASE, ending the sessions still connected to it (from PostgreSQL 13 on)."""
    try:
        admin.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(admin, name)} WITH (FORCE)"))
    except sa.exc.ProgrammingError:  # PostgreSQL < 13 has no FORCE.
        admin.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(admin, name)}"))


def _owner_is_gone(comment: str | None) -> bool:
    """Whether the process named by a scratch database's comment (or SQLite owner file) ran on this
    host and has ended.

    A database without our comment, or made on another host, is never judged gone: nothing
    here can tell whether its verify still runs.
    """
    owner = _OWNER_PATTERN.fullmatch(comment or "")
    if owner is None or owner.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(owner.group(1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # PermissionError: alive, someone else's
    return False


def _remove_stale_scratch_databases(admin: sa.Connection) -> None:
    """Drop the scratch databases that a killed run (SIGKILL, power cut) could not drop itself.

    Only those whose owner process ran on this host and is gone: a concurrent run's
    database always has a live owner. Whatever fails here is left for a later run.
    """
    try:
        rows = admin.execute(
            sa.text(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE left(datname, length(:prefix)) = :prefix"
            ),
            {"prefix": SCRATCH_PREFIX},
        ).all()
    except sa.exc.DBAPIError:
        return
    removed = []
    for name, comment in rows:
        if not _owner_is_gone(comment):
            continue
        try:
            # Sessions may still be connected: the dead run's, finishing their last statement.
            _drop_database(admin, name)
        except sa.exc.DBAPIError:
            continue
        removed.append(name)
    if removed:
        from flask_evolve.runtime.logs import keep_progress_visible

        keep_progress_visible()
        log.warning(
            "Removed %d scratch database(s) that killed Flask-Evolve runs on this host left behind: %s.",
            len(removed),
            ", ".join(removed),
        )


def _remove_stale_sqlite_scratch() -> None:
    """Remove the SQLite scratch directories that a killed run (SIGKILL, power cut) left behind.

    Only those whose owner file names a process of this host that is gone: a directory with
    no owner file (an older version's, or one a live run is still making) is never touched.
    Whatever fails here is left for a later run.
    """
    root = tempfile.gettempdir()
    removed = []
    try:
        candidates = [e for e in os.scandir(root) if e.name.startswith(SQLITE_SCRATCH_PREFIX)]
    except OSError:
        return
    for entry in candidates:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            with open(os.path.join(entry.path, _OWNER_FILE), encoding="utf-8") as f:
                owner = f.read(200).strip()
        except OSError:
            continue
        if not _owner_is_gone(owner):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(entry.path)
    if removed:
        from flask_evolve.runtime.logs import keep_progress_visible

        keep_progress_visible()
        log.warning(
            "Removed %d SQLite scratch database(s) that killed Flask-Evolve runs on this host "
            "left behind: %s.",
            len(removed),
            ", ".join(sorted(removed)),
        )


def _create_live_schemas(live: sa.Engine, scratch: sa.Engine) -> None:
    """The live PostgreSQL database's own schemas, in the scratch one: migrations seldom create them."""
    with live.connect() as source, scratch.begin() as target:
        for schema in user_schemas(source):
            target.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {_quoted(target, schema)}"))


def _driver_line(exc: sa.exc.DBAPIError) -> str:
    line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    return hide_credentials(line)


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


def _given_scratch(live_url: sa.URL, scratch_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(scratch_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            found = _objects(connection)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise ScratchError(
            f"Could not connect to the scratch database {display_url(engine.url)} ({_driver_line(exc)}): "
            "check --scratch-url."
        ) from exc
    if any(kind == "TABLE" for kind, _, _ in found):
        engine.dispose()
        raise ScratchError(f"The scratch database {display_url(engine.url)} is not empty: give an empty one.")
    try:
        if engine.dialect.name == "postgresql" and live_url.get_backend_name() == "postgresql":
            live = sa.create_engine(live_url, poolclass=NullPool)
            try:
                _create_live_schemas(live, engine)
            finally:
                live.dispose()
        yield engine
    finally:
        # Someone else's database: leave it as it was found, so that the next run finds it empty.
        with engine.begin() as connection:
            for statement in _drops(connection, _objects(connection) - found):
                connection.execute(sa.text(statement))
        engine.dispose()


# Objects a replay can leave behind, as (DROP keyword, schema, name); order of the drops below.
_PG_OBJECTS = """
SELECT 'SCHEMA', NULL, nspname FROM pg_namespace
WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
       WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND t.typrelid IN (
        SELECT oid FROM pg_class WHERE relkind = 'c')))
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, n.nspname,
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""
_DROP_ORDER = [
    "SCHEMA", "VIEW", "MATERIALIZED VIEW", "TRIGGER", "TABLE", "FOREIGN TABLE", "SEQUENCE", "PROCEDURE",
    "FUNCTION", "TYPE", "DOMAIN",
]


def _objects(connection: sa.Connection) -> set[tuple[str, str | None, str]]:
    """Every object of the database a migration could have made (tables reported as ``TABLE``)."""
    if connection.dialect.name == "postgresql":
        return {tuple(row) for row in connection.execute(sa.text(_PG_OBJECTS))}  # type: ignore[misc]
    if connection.dialect.name == "sqlite":
        rows = connection.execute(
            sa.text("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND type <> 'index'")
        )
        return {(kind.upper(), None, name) for kind, name in rows}
    return {("TABLE", None, name) for name in sa.inspect(connection).get_table_names()}


def _drops(connection: sa.Connection, objects: set[tuple[str, str | None, str]]) -> list[str]:
    """DROP statements for ``objects``; IF EXISTS and CASCADE, since one drop may take others with it."""
    quote = connection.dialect.identifier_preparer.quote
    cascade = " CASCADE" if connection.dialect.name == "postgresql" else ""
    statements = []
    for kind, schema, name in sorted(objects, key=lambda o: (_DROP_ORDER.index(o[0]), o[1] or "", o[2])):
        if kind in ("PROCEDURE", "FUNCTION"):
            routine, _, arguments = name.partition("(")
            target = f"{quote(schema or '')}.{quote(routine)}({arguments}"
        else:
            target = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
        statements.append(f"DROP {kind} IF EXISTS {target}{cascade}")
    return statements


# What depends on the tables and can stop a migration (PostgreSQL refuses to change the type of a
# column a view uses, or to drop it): functions (in their own words), views and triggers, in the
# order they were made; none that an extension owns.
_PG_FUNCTIONS = """
SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND n.nspname = ANY(:schemas)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.oid
"""
_PG_VIEWS = """
SELECT CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_viewdef(c.oid),
       c.relkind = 'm'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY(:schemas)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.oid
"""
_PG_TRIGGERS = """
SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname = ANY(:schemas)
ORDER BY t.oid
"""


def _copy_postgresql_dependents(source: sa.Connection, target: sa.Connection, schemas: list[str]) -> None:
    """The live database's functions, views and triggers, in the scratch copy: a migration that
    works on bare tables may fail on the real database because of them (a view on a retyped column).
    Each goes in its own savepoint; one that cannot be made there is left out."""
    target.exec_driver_sql("SET check_function_bodies = off")  # a function may read a view made later
    views = [tuple(row) for row in source.execute(sa.text(_PG_VIEWS), {"schemas": schemas})]
    functions = source.execute(sa.text(_PG_FUNCTIONS), {"schemas": schemas}).scalars().all()
    triggers = source.execute(sa.text(_PG_TRIGGERS), {"schemas": schemas}).scalars().all()
    view_statements = [
        f"CREATE {kind} {name} AS {definition.rstrip().rstrip(';')}{' WITH NO DATA' if materialized else ''}"
        for kind, name, definition, materialized in views
    ]
    for statement in functions:
        _try(target, statement)
    # A view replaced after its dependents has a newer oid than they do: go round until none is left.
    pending = view_statements
    while pending:
        pending_after = [statement for statement in pending if not _try(target, statement)]
        if len(pending_after) == len(pending):
            break
        pending = pending_after
    for statement in triggers:
        _try(target, statement)


def _try(connection: sa.Connection, statement: str) -> bool:
    try:
        with connection.begin_nested():
            connection.exec_driver_sql(statement.replace("%", "%%"))
    except sa.exc.DBAPIError:
        return False
    return True


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
        schemas = user_schemas(source)
        for schema in schemas:
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
        _copy_postgresql_dependents(source, target, ["public", *schemas])
    if sa.inspect(source).has_table(version_table):
        quoted = source.dialect.identifier_preparer.quote(version_table)
        versions = source.execute(sa.text(f"SELECT version_num FROM {quoted}")).scalars().all()
        target.execute(
            sa.text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        for version in versions:
            target.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
