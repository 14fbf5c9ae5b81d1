"""Drift: how the live schema differs from what its recorded revision should look like."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from flask_evolve.safety.schema import schema_state, state_differences
from flask_evolve.safety.scratch import scratch_engine
from flask_evolve.safety.verify import run_scripts

if TYPE_CHECKING:
    from alembic.config import Config


def recorded_revisions(
    connection: sa.Connection, version_table: str = "alembic_version"
) -> tuple[str, ...] | None:
    """The revisions in the version table, or None when the database has no version table."""
    if not sa.inspect(connection).has_table(version_table):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {version_table}"))
    return tuple(sorted(row[0] for row in rows))


@contextmanager
def replayed(
    config: Config, live_url: sa.URL | str, revisions: Sequence[str], scratch_url: str | None = None
) -> Iterator[sa.Connection]:
    """A scratch database migrated from base to ``revisions`` with the scripts alone."""
    with scratch_engine(live_url, scratch_url) as engine, engine.connect() as connection:
        for revision in revisions:
            run_scripts(config, connection, revision)
        yield connection


def drift(config: Config, live: sa.Engine, scratch_url: str | None = None) -> list[str] | None:
    """What the live schema has that its recorded revision does not produce (and vice versa).

    :return: the differences in words (empty: no drift), or None when the
        database records no revision (it was never migrated or stamped).
    """
    with live.connect() as connection:
        revisions = recorded_revisions(connection)
        if revisions is None:
            return None
        actual = schema_state(connection)
    with replayed(config, live.url, revisions, scratch_url) as scratch:
        expected = schema_state(scratch)
    return state_differences(expected, actual)
