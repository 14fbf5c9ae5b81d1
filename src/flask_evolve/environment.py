"""What a Flask-Evolve env.py calls: find the app's databases and models, then run the core environment."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import current_app
from sqlalchemy import MetaData

from flask_evolve.runtime.environment import Database, configure_logging, run_environment


def _extension_state() -> Any:
    return current_app.extensions["migrate"]


def bind_names() -> list[str]:
    """The bind keys of the app's extra databases, in the order Flask-Migrate uses."""
    binds = current_app.config.get("SQLALCHEMY_BINDS")
    if binds is not None:
        return list(binds.keys())
    get_bind_names = getattr(_extension_state().db, "bind_names", None)
    return list(get_bind_names()) if get_bind_names else []


def _engine(db: Any, bind: str | None) -> Any:
    engines = getattr(db, "engines", None)
    if engines is not None:
        return engines.get(bind) if bind else db.engine
    # Flask-SQLAlchemy < 3 and Alchemical expose get_engine().
    return db.get_engine(bind=bind) if bind else db.get_engine()


def _metadata(db: Any, bind: str | None) -> MetaData:
    metadatas = getattr(db, "metadatas", None)
    if metadatas is not None:
        return metadatas[bind]
    if bind is None:
        return db.metadata
    subset = MetaData()
    for table in db.metadata.tables.values():
        if table.info.get("bind_key") == bind:
            table.to_metadata(subset)
    return subset


def default_engine() -> Any:
    """The engine of the app's default database (an AsyncEngine for aioflask/Alchemical apps)."""
    return _engine(_extension_state().migrate.require_db(), None)


def app_databases(*, multidb: bool) -> list[Database]:
    """The default database, then (``multidb``) one entry per bind."""
    db = _extension_state().migrate.require_db()
    databases = [Database("", _engine(db, None), _metadata(db, None))]
    if multidb:
        databases += [Database(b, _engine(db, b), _metadata(db, b)) for b in bind_names()]
    return databases


def _load_postgresql_enum_support() -> None:
    """Enum values added/removed, enum types created and dropped with their tables (PostgreSQL).

    alembic-postgresql-enum (the ``postgresql`` extra) registers its comparator
    and its ``op.sync_enum_values`` when imported; without it, enum changes go
    undetected as in Flask-Migrate.
    """
    with contextlib.suppress(ImportError):
        import alembic_postgresql_enum  # noqa: F401


def run_migrations(*, multidb: bool = False) -> None:
    """Run the current Alembic command for the Flask app in context.

    This is the whole of a Flask-Evolve env.py, so that fixes reach existing
    projects with a package upgrade.

    :param multidb: migrate every ``SQLALCHEMY_BINDS`` database too, each with
        its own ``upgrade_<bind>()`` / ``downgrade_<bind>()`` functions.
    """
    from alembic import context

    configure_logging(context.config.config_file_name)
    databases = app_databases(multidb=multidb)
    if any(d.engine.dialect.name == "postgresql" for d in databases):
        _load_postgresql_enum_support()
    # Alembic reads sqlalchemy.url for `--sql` and from custom code in the ini.
    context.config.set_main_option("sqlalchemy.url", databases[0].url.replace("%", "%%"))
    for database in databases[1:]:
        context.config.set_section_option(
            database.name, "sqlalchemy.url", database.url.replace("%", "%%")
        )
    run_environment(
        context,
        databases,
        _extension_state().configure_args,
        multidb=multidb,
    )
