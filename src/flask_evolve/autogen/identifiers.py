"""Names the database would silently cut short: refused at `migrate`, before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import ops

from flask_evolve.errors import MigrationError

if TYPE_CHECKING:
    from flask_evolve.autogen.pipeline import RewriteContext

#: PostgreSQL keeps the first NAMEDATALEN - 1 bytes of a name (in the server's encoding, UTF-8 here)
#: and only says so in a NOTICE: the table then never matches its model again.
POSTGRESQL_NAME_BYTES = 63


class IdentifierTooLongError(MigrationError):
    """A table or column name of the models is longer than the database keeps."""


def kept_by_postgresql(name: str) -> str:
    """The part of ``name`` PostgreSQL keeps: at most 63 bytes of UTF-8, never half a character."""
    return name.encode("utf-8")[:POSTGRESQL_NAME_BYTES].decode("utf-8", "ignore")


def _new_names(container: Any) -> Iterator[tuple[str, str | None]]:
    """``(name, table)`` for every column name the upgrade gives the database, and
    ``(name, None)`` for every table name."""
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            yield from _new_names(op)
        elif isinstance(op, ops.CreateTableOp):
            yield op.table_name, None
            for column in op.columns:
                if isinstance(column, sa.Column):  # the others are its constraints
                    yield column.name, op.table_name
        elif isinstance(op, ops.AddColumnOp):
            yield op.column.name, op.table_name
        elif isinstance(op, ops.AlterColumnOp) and op.modify_name:
            yield op.modify_name, op.table_name
        elif isinstance(op, ops.RenameTableOp):
            yield op.new_table_name, None


def refuse_names_cut_short(ctx: RewriteContext) -> None:
    """Stop when a table or column name is longer than PostgreSQL keeps: it would create the
    shortened name, and every later `migrate` would see a table to drop and one to create."""
    if ctx.migration_context.dialect.name != "postgresql":
        return
    limit = POSTGRESQL_NAME_BYTES
    for name, table in _new_names(ctx.upgrade_ops):
        kept = kept_by_postgresql(name)
        if kept == name:
            continue
        size = len(name.encode("utf-8"))
        if table is None:
            what, fix = f"table name {name!r}", f"set __tablename__ to a name of at most {limit} bytes"
        else:
            what = f"column name {name!r} of table {table}"
            fix = f"name it in at most {limit} bytes (db.Column('short_name', ...))"
        raise IdentifierTooLongError(
            f"{what} is {size} bytes, and PostgreSQL keeps only {limit} ({kept!r}) and would never "
            f"match the model again: {fix}; nothing was written."
        )
