"""Downgrades that re-add a dropped NOT NULL column to a populated table: placeholder default, then none."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import ops

if TYPE_CHECKING:
    from flask_evolve.autogen.pipeline import RewriteContext


def placeholder(column_type: sa.types.TypeEngine[Any]) -> str | sa.ColumnElement[Any] | None:
    """A value every row can hold while the column is NOT NULL without a default.

    The archive-before-drop rewriter replaces it with the rows' old values.
    """
    if isinstance(column_type, sa.Enum):
        return column_type.enums[0] if column_type.enums else None
    if isinstance(column_type, sa.Boolean):
        return sa.false()
    if isinstance(column_type, (sa.Integer, sa.Numeric)):
        return "0"
    if isinstance(column_type, sa.String):
        return ""
    if isinstance(column_type, sa.DateTime):
        return datetime.datetime(1970, 1, 1).isoformat(" ")
    if isinstance(column_type, sa.Date):
        return "1970-01-01"
    if isinstance(column_type, sa.Time):
        return "00:00:00"
    return None


def _needs_placeholder(column: sa.Column[Any]) -> bool:
    return (
        not column.nullable
        and column.server_default is None
        and not column.primary_key
        and not isinstance(column.server_default, (sa.Computed, sa.Identity))
    )


def restore_not_null_columns(ctx: RewriteContext) -> None:
    """In the downgrade, re-add each NOT NULL column without a default as
    ``NOT NULL DEFAULT <placeholder>`` and then drop the default, so the old
    schema comes back exactly even when the table has rows.

    A UNIQUE column, or a type without a sensible placeholder, is re-added
    nullable instead (one placeholder for all rows would break the unique key).
    """
    for group in ctx.downgrade_ops.ops:
        if not isinstance(group, ops.ModifyTableOps):
            continue
        rewritten: list[ops.MigrateOperation] = []
        for op in group.ops:
            rewritten.append(op)
            if not isinstance(op, ops.AddColumnOp) or not _needs_placeholder(op.column):
                continue
            # The column is the reflected one that DropColumnOp.reverse() handed over, not the models'.
            column = op.column
            value = None if column.unique else placeholder(column.type)
            if value is None:
                column.nullable = True
                continue
            column.server_default = sa.DefaultClause(value)  # type: ignore[arg-type]
            rewritten.append(
                ops.AlterColumnOp(
                    group.table_name,
                    column.name,
                    schema=group.schema,
                    existing_type=column.type,
                    existing_nullable=False,
                    existing_server_default=column.server_default,
                    modify_server_default=None,
                )
            )
        group.ops[:] = rewritten
