"""Drift: how the live schema differs from what its recorded revision should look like."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flask_evolve.safety.capture import is_multidb_script
from flask_evolve.safety.schema import VERSION_TABLE, Difference, schema_state, state_differences
from flask_evolve.safety.scratch import scratch_engine
from flask_evolve.safety.verify import run_scripts

if TYPE_CHECKING:
    from alembic.config import Config


def recorded_revisions(
    connection: sa.Connection, version_table: str = VERSION_TABLE
) -> tuple[str, ...] | None:
    """The revisions in the version table, or None when the database has no version table."""
    if not sa.inspect(connection).has_table(version_table):
        return None
    quoted = connection.dialect.identifier_preparer.quote(version_table)
    rows = connection.execute(sa.text(f"SELECT version_num FROM {quoted}"))
    return tuple(sorted(row[0] for row in rows))


def version_table_of(compare_args: Mapping[str, Any] | None) -> str:
    """The app's version table: ``context.configure(version_table=...)``, else Alembic's."""
    return (compare_args or {}).get("version_table") or VERSION_TABLE


@contextmanager
def replayed(
    config: Config,
    live_url: sa.URL | str,
    revisions: Sequence[str],
    scratch_url: str | None = None,
    version_table: str = VERSION_TABLE,
    bind: str | None = None,
) -> Iterator[sa.Connection]:
    """A scratch database migrated from base to ``revisions`` with the scripts alone.

    :param bind: in a multi-database folder, the database to replay (its
        ``upgrade_<bind>()``); ``None``: the default one.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    recorded = [script.get_revision(r) for r in revisions]
    if bind is None and any(r is not None and is_multidb_script(r) for r in recorded):
        bind = ""
    with scratch_engine(live_url, scratch_url) as engine, engine.connect() as connection:
        for revision in revisions:
            run_scripts(config, connection, revision, script=script, bind=bind, version_table=version_table)
        yield connection


def drift(
    config: Config,
    live: sa.Engine,
    scratch_url: str | None = None,
    *,
    compare_args: Mapping[str, Any] | None = None,
    bind: str | None = None,
) -> list[str] | None:
    """What the live schema has that its recorded revision does not produce (and vice versa).

    Tables and columns the app leaves out of migrations (its ``include_name`` /
    ``include_object`` in ``compare_args``) are not drift, nor are the version
    table and the archive.

    :param bind: in a multi-database folder, which database ``live`` is (``None``: the default one).
    :return: the differences in words (empty: no drift), or None when the
        database records no revision (it was never migrated or stamped).
    """
    version_table = version_table_of(compare_args)
    with live.connect() as connection:
        revisions = recorded_revisions(connection, version_table)
        if revisions is None:
            return None
        actual = schema_state(connection, version_table)
        with replayed(config, live.url, revisions, scratch_url, version_table, bind) as scratch:
            found = state_differences(schema_state(scratch, version_table), actual)
            return [str(d) for d in found if _managed(d, compare_args or {}, (connection, scratch))]


def _managed(difference: Difference, compare_args: Mapping[str, Any], sides: Sequence[sa.Connection]) -> bool:
    """Whether the app's include filters keep what ``difference`` is about in its migrations."""
    include_name = compare_args.get("include_name")
    include_object = compare_args.get("include_object")
    table, column = difference.table, difference.column
    if include_name is not None:
        if not include_name(table, "table", {"schema_name": None}):
            return False
        parents = {"table_name": table, "schema_name": None, "schema_qualified_table_name": table}
        if column is not None and not include_name(column, "column", parents):
            return False
    if include_object is None:
        return True
    # include_object wants the reflected object: read it from the side that has it.
    for connection in sides:
        if sa.inspect(connection).has_table(table):
            reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
            if column is None or column in reflected.c:
                break
    else:
        return True
    if not include_object(reflected, table, "table", True, None):
        return False
    if column is not None and column in reflected.c:
        return bool(include_object(reflected.c[column], column, "column", True, None))
    return True
