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


def _not_null_without_value(column: sa.Column[Any]) -> bool:
    """NOT NULL and nothing gives existing rows a value: no server default."""
    return not column.nullable and column.server_default is None and not column.primary_key


def _unique_in(group: ops.ModifyTableOps, column: sa.Column[Any]) -> bool:
    """Whether the column had a unique key: reflected with it, or re-created by the downgrade."""
    name = column.name
    table = getattr(column, "table", None)
    if isinstance(table, sa.Table):
        keys = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        keys += [i for i in table.indexes if i.unique]
        if any(name in [c.name for c in key.columns] for key in keys):
            return True
    for op in group.ops:
        if isinstance(op, ops.AddConstraintOp) and op.constraint_type == "unique":
            columns = list(getattr(op, "columns", ()))
        elif isinstance(op, ops.CreateIndexOp) and op.unique:
            columns = [getattr(c, "name", c) for c in op.columns]
        else:
            continue
        if name in columns:
            return True
    return False


def _distinct_fill(ctx: RewriteContext, group: ops.ModifyTableOps, column: sa.Column[Any]) -> str | None:
    """``UPDATE`` giving each row its own placeholder (from its primary key), for a unique column."""
    table = column.table if isinstance(getattr(column, "table", None), sa.Table) else None
    primary = list(table.primary_key.columns) if table is not None else []
    if len(primary) != 1 or not isinstance(column.type, (sa.String, sa.Integer, sa.Numeric)):
        return None
    dialect = ctx.migration_context.dialect
    quote = dialect.identifier_preparer.quote
    target = quote(group.table_name)
    if group.schema:
        target = f"{dialect.identifier_preparer.quote_schema(group.schema)}.{target}"
    key = quote(primary[0].name)
    value = (
        key
        if isinstance(column.type, sa.Integer)
        else f"CAST({key} AS {column.type.compile(dialect=dialect)})"
    )
    # Every row: the column was only just added, and a server default gave them all one value.
    return f"UPDATE {target} SET {quote(column.name)} = {value}"


def dropping_default(group: ops.ModifyTableOps, column: sa.Column[Any]) -> ops.AlterColumnOp:
    """Drop the temporary server default a NOT NULL column was just added with, to fill the rows."""
    return ops.AlterColumnOp(
        group.table_name,
        column.name,
        schema=group.schema,
        existing_type=column.type,
        existing_nullable=False,
        existing_server_default=column.server_default,
        modify_server_default=None,
    )


def restore_not_null_columns(ctx: RewriteContext) -> None:
    """In the downgrade, re-add each NOT NULL column without a default so that it works
    on a table with rows, and the old schema still comes back exactly.

    - usually as ``NOT NULL DEFAULT <placeholder>``, then the default is dropped;
    - a UNIQUE column is added nullable, each row gets its own placeholder (from
      its primary key), then it becomes NOT NULL;
    - a foreign key column, or a type without a sensible placeholder, is re-added nullable.
    """
    result: list[ops.MigrateOperation] = []
    for group in ctx.downgrade_ops.ops:
        if not isinstance(group, ops.ModifyTableOps):
            result.append(group)
            continue
        rewritten: list[ops.MigrateOperation] = []
        for op in group.ops:
            column = op.column if isinstance(op, ops.AddColumnOp) else None
            unique_not_null = (
                column is not None
                and not column.nullable
                and not column.primary_key
                and (column.unique or _unique_in(group, column))
            )
            if column is None or not (unique_not_null or _not_null_without_value(column)):
                rewritten.append(op)
                continue
            # The column is the reflected one that DropColumnOp.reverse() handed over, not the models'.
            if unique_not_null:
                fill = None if column.foreign_keys else _distinct_fill(ctx, group, column)
                column.nullable = True
                if fill is None:
                    rewritten.append(op)
                    continue
                # Added, filled row by row, then NOT NULL: the UPDATE sits between two
                # groups so that the SQLite planner keeps that order.
                result.append(ops.ModifyTableOps(group.table_name, [op], schema=group.schema))
                result.append(ops.ExecuteSQLOp(fill))
                rewritten.append(
                    ops.AlterColumnOp(
                        group.table_name,
                        column.name,
                        schema=group.schema,
                        existing_type=column.type,
                        existing_nullable=True,
                        modify_nullable=False,
                    )
                )
                continue
            # A placeholder would reference a parent row that does not exist.
            value = None if column.foreign_keys else placeholder(column.type)
            rewritten.append(op)
            if value is None:
                column.nullable = True
                continue
            column.server_default = sa.DefaultClause(value)  # type: ignore[arg-type]
            rewritten.append(dropping_default(group, column))
        group.ops[:] = rewritten
        result.append(group)
    ctx.downgrade_ops.ops[:] = result
