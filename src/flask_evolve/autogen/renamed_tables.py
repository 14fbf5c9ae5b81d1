"""What else changed in a renamed table or column: Alembic's comparison against the renames in a savepoint."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from flask_evolve.safety.capture import quiet_alembic

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("flask_evolve")


@dataclass
class RenamedTable:
    """The changes that follow a table rename (ops on the new name) and the table as it is once renamed."""

    changes: ops.ModifyTableOps
    database_table: sa.Table


def _only_table(
    table: str, schema: str | None, hook: Callable[..., bool] | None, *, object_hook: bool
) -> Callable[..., bool]:
    def include(*args: Any) -> bool:
        if args[2 if object_hook else 1] == "table":
            if object_hook:
                return args[0].schema == schema and args[1] == table
            return (args[2].get("schema_name") or None) == schema and args[0] == table
        return hook is None or hook(*args)

    return include


def _metadata_of(migration_context: MigrationContext, key: str) -> sa.MetaData | None:
    target = migration_context.opts.get("target_metadata")
    for metadata in target if isinstance(target, (list, tuple)) else [target]:
        if metadata is not None and key in metadata.tables:
            return metadata  # type: ignore[no-any-return]
    return None


def compare_renamed_table(
    migration_context: MigrationContext,
    old: str,
    new: str,
    *,
    schema: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> RenamedTable | None:
    """Compare model table ``new`` with database table ``old`` (both in ``schema``) as if ``old``
    were already renamed, and its ``columns`` (old name to new) too.

    The renames run in a savepoint that is rolled back, so Alembic's whole comparison
    (columns, types, defaults, indexes, constraints, our comparators) sees the table and
    columns under their new names, and every op it writes is one to run after the renames.
    None when the database refuses a rename (then the pair stays drop + create).
    """
    connection = migration_context.connection
    metadata = _metadata_of(migration_context, new if schema is None else f"{schema}.{new}")
    if connection is None or metadata is None:
        return None
    quote = connection.dialect.identifier_preparer.quote
    prefix = f"{quote(schema)}." if schema is not None else ""
    opts = dict(migration_context.opts)
    opts["include_name"] = _only_table(new, schema, opts.get("include_name"), object_hook=False)
    opts["include_object"] = _only_table(new, schema, opts.get("include_object"), object_hook=True)
    opts["target_metadata"] = metadata
    try:
        savepoint = connection.begin_nested()
    except sa.exc.DBAPIError as exc:  # e.g. an AUTOCOMMIT connection: no savepoints
        log.debug("could not compare %s as %s: %s", old, new, exc)
        return None
    try:
        if old != new:
            connection.exec_driver_sql(f"ALTER TABLE {prefix}{quote(old)} RENAME TO {quote(new)}")
        for column, new_column in (columns or {}).items():
            connection.exec_driver_sql(
                f"ALTER TABLE {prefix}{quote(new)} RENAME COLUMN {quote(column)} TO {quote(new_column)}"
            )
        # The user sees these changes once, in the lines about the renames.
        with quiet_alembic():
            context = MigrationContext.configure(connection=connection, opts=opts)
            script = produce_migrations(context, metadata)
        database_table = sa.Table(new, sa.MetaData(), schema=schema, autoload_with=connection)
    except sa.exc.DBAPIError as exc:
        log.debug("could not compare %s as %s: %s", old, new, exc)
        return None
    finally:
        savepoint.rollback()
    assert script.upgrade_ops is not None
    changes = [
        sub
        for op in script.upgrade_ops.ops
        if isinstance(op, ops.ModifyTableOps) and op.schema == schema and op.table_name == new
        for sub in op.ops
    ]
    return RenamedTable(ops.ModifyTableOps(new, changes, schema=schema), database_table)
