"""The body of env.py: run Alembic's migrations online or offline over one or several databases."""

from __future__ import annotations

import asyncio
import configparser
import logging
import logging.config
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("flask_evolve")

#: Loggers whose INFO lines users and scripts read on stderr
#: ("Detected added column …", "Running upgrade …").
_MIGRATION_LOGGERS = ("alembic", "flask_evolve")


@dataclass(frozen=True)
class Database:
    """One database to migrate.

    :param name: ``""`` for the app's default database, else the bind key.
    :param engine: a SQLAlchemy ``Engine`` or ``AsyncEngine``.
    :param metadata: the models' MetaData for that database.
    """

    name: str
    engine: Any
    metadata: MetaData

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)


ConnectionHook = Callable[[Connection], Any]


def configure_logging(config_file_name: str | None) -> None:
    """Show Alembic's progress on stderr without touching the app's own loggers.

    Flask-Migrate's env.py calls ``fileConfig()``, which disables every logger
    the app had set up. We honour an alembic.ini that has logging sections,
    but keep existing loggers alive; otherwise we only attach a stderr handler
    to Alembic's and our loggers.
    """
    parser = configparser.ConfigParser(interpolation=None)
    if config_file_name:
        try:
            parser.read(config_file_name)
        except configparser.Error:
            parser = configparser.ConfigParser(interpolation=None)
    if parser.has_section("loggers"):
        logging.config.fileConfig(config_file_name, disable_existing_loggers=False)
        ours = logging.getLogger("flask_evolve")
        if ours.level == logging.NOTSET:
            ours.setLevel(logging.INFO)
        return
    for name in _MIGRATION_LOGGERS:
        logger = logging.getLogger(name)
        # Alembic installs a NullHandler on its logger; only a real handler
        # means the app (or a previous run) already decided where lines go.
        real_handlers = [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]
        if real_handlers:
            continue
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    # One line per autogenerate plugin on every migrate is noise, not progress.
    plugins = logging.getLogger("alembic.runtime.plugins")
    if plugins.level == logging.NOTSET:
        plugins.setLevel(logging.WARNING)


def run_environment(
    context: EnvironmentContext,
    databases: list[Database],
    configure_args: Mapping[str, Any],
    *,
    multidb: bool,
    prepare_connection: Callable[[Connection], Any] | None = None,
) -> None:
    """Run the migrations of the current Alembic command.

    :param context: ``alembic.context`` as env.py sees it.
    :param databases: the default database first, then the binds (``multidb``).
    :param configure_args: extra ``context.configure()`` arguments, applied
        online and offline alike.
    :param multidb: render and run one set of functions per database, the way
        Flask-Migrate's multidb template does.
    :param prepare_connection: called on each connection before migrating.
    """
    from flask_evolve.runtime.operations import register_script_operations

    register_script_operations()
    args = dict(configure_args)
    if context.is_offline_mode():
        _run_offline(context, databases, args, multidb=multidb)
    else:
        _run_online(context, databases, args, multidb=multidb, prepare=prepare_connection)


def _multidb_tokens(name: str) -> dict[str, str]:
    return {"upgrade_token": f"{name}_upgrades", "downgrade_token": f"{name}_downgrades"}


def _run_offline(
    context: EnvironmentContext,
    databases: list[Database],
    args: dict[str, Any],
    *,
    multidb: bool,
) -> None:
    args.pop("process_revision_directives", None)
    args.setdefault("literal_binds", True)
    if not multidb:
        database = databases[0]
        context.configure(url=database.url, target_metadata=database.metadata, **args)
        with context.begin_transaction():
            context.run_migrations()
        return
    for database in databases:
        # One SQL file per database, named as Flask-Migrate names them.
        file_name = f"{database.name}.sql"
        log.info("Migrating database %s", database.name or "<default>")
        log.info("Writing output to %s", file_name)
        with open(file_name, "w") as buffer:
            context.configure(
                url=database.url,
                output_buffer=buffer,
                target_metadata=database.metadata,
                **args,
            )
            with context.begin_transaction():
                context.run_migrations(engine_name=database.name)


def _is_async(engine: Any) -> bool:
    return hasattr(engine, "sync_engine")


def _run_online(
    context: EnvironmentContext,
    databases: list[Database],
    args: dict[str, Any],
    *,
    multidb: bool,
    prepare: Callable[[Connection], Any] | None,
) -> None:
    if any(_is_async(database.engine) for database in databases):
        asyncio.run(_run_online_async(context, databases, args, multidb=multidb, prepare=prepare))
        return
    with ExitStack() as stack:
        connections = [
            stack.enter_context(_connect(database.engine, prepare)) for database in databases
        ]
        _migrate_connections(context, databases, connections, args, multidb=multidb)


@contextmanager
def _connect(engine: Engine, prepare: Callable[[Connection], Any] | None) -> Iterator[Connection]:
    with engine.connect() as connection:
        if prepare is not None:
            prepare(connection)
        yield connection


async def _run_online_async(
    context: EnvironmentContext,
    databases: list[Database],
    args: dict[str, Any],
    *,
    multidb: bool,
    prepare: Callable[[Connection], Any] | None,
) -> None:
    # AsyncEngine connections run the synchronous Alembic code through run_sync;
    # plain Engines (Flask-SQLAlchemy's) are connected directly.
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        sync_connections: list[Connection] = []
        async_connection = None
        for database in databases:
            if _is_async(database.engine):
                async_connection = await stack.enter_async_context(database.engine.connect())
                sync_connections.append(async_connection.sync_connection)
            else:
                sync_connections.append(
                    stack.enter_context(_connect(database.engine, prepare))
                )

        def migrate(_: Connection) -> None:
            if prepare is not None:
                for connection in sync_connections:
                    prepare(connection)
            _migrate_connections(context, databases, sync_connections, args, multidb=multidb)

        assert async_connection is not None
        await async_connection.run_sync(migrate)


def _comparison_args(
    context: EnvironmentContext, connection: Connection, metadata: MetaData, args: dict[str, Any]
) -> dict[str, Any]:
    """``args``, plus hooks that let autogenerate skip tables that provably match their models.

    ``Migrate(..., fast_autogenerate=False)`` compares every table in detail, as Alembic does.
    """
    from flask_evolve.autogen.pipeline import OPTIONS_ATTRIBUTE

    options = context.config.attributes.get(OPTIONS_ATTRIBUTE, {}) if context.config is not None else {}
    if not options.get("fast_autogenerate", True):
        return args
    from types import SimpleNamespace

    from flask_evolve.autogen.fingerprint import skip_unchanged_tables
    from flask_evolve.autogen.naming import convention_in_force

    # The names the naming rewriter gives unnamed constraints are the ones the database holds.
    convention = convention_in_force(
        SimpleNamespace(options=options, migration_context=SimpleNamespace(config=context.config))  # type: ignore[arg-type]
    )
    return skip_unchanged_tables(connection, metadata, args, convention)


def _migrate_connections(
    context: EnvironmentContext,
    databases: list[Database],
    connections: list[Connection],
    args: dict[str, Any],
    *,
    multidb: bool,
) -> None:
    if not multidb:
        context.configure(
            connection=connections[0],
            target_metadata=databases[0].metadata,
            **_comparison_args(context, connections[0], databases[0].metadata, args),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # All databases commit together or not at all, as in Flask-Migrate's
    # multidb template: begin everywhere, run everywhere, then commit.
    transactions = [connection.begin() for connection in connections]
    try:
        for database, connection in zip(databases, connections, strict=True):
            log.info("Migrating database %s", database.name or "<default>")
            context.configure(
                connection=connection,
                target_metadata=database.metadata,
                **_multidb_tokens(database.name),
                **_comparison_args(context, connection, database.metadata, args),
            )
            context.run_migrations(engine_name=database.name)
        for transaction in transactions:
            transaction.commit()
    except BaseException:
        for transaction in transactions:
            if transaction.is_active:
                transaction.rollback()
        raise
