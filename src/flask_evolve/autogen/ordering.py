"""A fixed order for the ops Alembic emits in set-iteration order, so scripts do not depend on PYTHONHASHSEED.

Alembic finds dropped tables, dropped columns and added or dropped foreign keys (and unnamed
unique constraints) by iterating Python sets, so their order in the op tree, and so in the script
and the risk report, changes from one process to the next. Only ops whose relative order cannot
matter are reordered: consecutive siblings of one kind inside a table's ops (two foreign-key drops,
two column drops ...), and the dropped tables, which keep every table that references another
dropped table before the table it references.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from alembic.operations import ops

if TYPE_CHECKING:
    from flask_evolve.autogen.pipeline import RewriteContext

TableKey = tuple[str, str]  # (schema or "", name)
SchemaItem = TypeVar("SchemaItem", sa.Constraint, sa.Index)


def in_order(items: Iterable[SchemaItem]) -> list[SchemaItem]:
    """A table's constraints or indexes (SQLAlchemy keeps them in sets) by kind, name and columns."""

    def key(item: sa.Constraint | sa.Index) -> tuple[str, str, tuple[str, ...]]:
        name = item.name if isinstance(item.name, str) else ""
        columns = tuple(str(getattr(c, "name", c)) for c in getattr(item, "columns", ()))
        return (type(item).__name__, name, columns)

    return sorted(items, key=key)


def order_unordered_ops(ctx: RewriteContext) -> None:
    """Rewriter: put Alembic's set-ordered ops in a canonical order (first in the pipeline).

    The downgrade is Alembic's reverse of the upgrade at this point (only a hook passed to
    Alembic's command API could have run before us), so it is made again from the reordered
    upgrade, exactly as Alembic would have made it.
    """
    upgrade = ctx.upgrade_ops
    before = [id(op) for op in _walk(upgrade.ops)]
    upgrade.ops[:] = order_dropped_tables(upgrade.ops)
    for op in upgrade.ops:
        if isinstance(op, ops.ModifyTableOps):
            op.ops[:] = order_siblings(op.ops)
    if [id(op) for op in _walk(upgrade.ops)] != before:
        upgrade.reverse_into(ctx.downgrade_ops)


def _walk(op_list: Sequence[Any]) -> list[Any]:
    found = []
    for op in op_list:
        found.append(op)
        if isinstance(op, ops.OpContainer):
            found.extend(_walk(op.ops))
    return found


# -- siblings inside one table's ops -------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _drop_fk_key(op: ops.DropConstraintOp) -> tuple[Any, ...]:
    try:
        constraint = op.to_constraint()
    except Exception:  # No reverse to read the columns from: the name alone orders it.
        return (_text(op.constraint_name),)
    if not isinstance(constraint, sa.ForeignKeyConstraint):
        return (_text(op.constraint_name),)
    return (
        _text(op.constraint_name),
        tuple(constraint.column_keys),
        tuple(element.target_fullname for element in constraint.elements),
    )


def _add_fk_key(op: ops.CreateForeignKeyOp) -> tuple[Any, ...]:
    return (
        _text(op.constraint_name),
        tuple(_text(c) for c in op.local_cols),
        _text(op.kw.get("referent_schema")),
        _text(op.referent_table),
        tuple(_text(c) for c in op.remote_cols),
    )


def _add_unique_key(op: ops.CreateUniqueConstraintOp) -> tuple[Any, ...]:
    return (_text(op.constraint_name), tuple(_text(c) for c in op.columns))


def _drop_column_key(op: ops.DropColumnOp) -> tuple[Any, ...]:
    # The table's own column order when the dropped column is known (as the archive lists them).
    try:
        column = op.to_column()
        position = list(column.table.columns).index(column)
    except Exception:
        position = -1
    return (position, op.column_name)


#: Kinds of op that Alembic emits in set order, with the key that orders a run of them.
_KINDS: list[tuple[Callable[[Any], bool], str, Callable[[Any], tuple[Any, ...]]]] = [
    (
        lambda op: type(op) is ops.DropConstraintOp and op.constraint_type == "foreignkey",
        "drop foreign key",
        _drop_fk_key,
    ),
    (lambda op: type(op) is ops.CreateForeignKeyOp, "add foreign key", _add_fk_key),
    (lambda op: type(op) is ops.CreateUniqueConstraintOp, "add unique", _add_unique_key),
    (lambda op: type(op) is ops.DropColumnOp, "drop column", _drop_column_key),
]


def _kind(op: Any) -> tuple[Hashable, Callable[[Any], tuple[Any, ...]]] | None:
    for matches, name, key in _KINDS:
        if matches(op):
            return (name, _text(getattr(op, "schema", None)), _text(getattr(op, "table_name", None))), key
    return None


def order_siblings(op_list: Sequence[Any]) -> list[Any]:
    """``op_list`` with each run of consecutive same-kind, order-free ops sorted; the rest in place.

    Exact types only: a subclass (one of ours, or a plugin's) may carry an order of its own.
    """
    result: list[Any] = []
    run: list[Any] = []
    run_kind: Hashable | None = None
    run_key: Callable[[Any], tuple[Any, ...]] | None = None

    def flush() -> None:
        if run_key is not None and len(run) > 1:
            run.sort(key=run_key)
        result.extend(run)
        run.clear()

    for op in op_list:
        found = _kind(op)
        kind = found[0] if found else None
        if kind is None or kind != run_kind:
            flush()
            run_kind, run_key = (found if found else (None, None))
        if kind is None:
            result.append(op)
        else:
            run.append(op)
    flush()
    return result


# -- dropped tables ---------------------------------------------------------------------


def _table_key(schema: str | None, name: str) -> TableKey:
    return (_text(schema), name)


def _referred(fullname: str) -> TableKey:
    """The table of a foreign key's ``[schema.]table.column`` target."""
    parts = fullname.split(".")
    return (parts[-3] if len(parts) >= 3 else "", parts[-2] if len(parts) >= 2 else fullname)


def _references(group: list[Any]) -> set[TableKey]:
    """The tables a dropped table's foreign keys point to (its own reverse, and its FK drops)."""
    drop = group[-1]
    constraints: list[Any] = [c for c in getattr(getattr(drop, "_reverse", None), "columns", [])]
    if len(group) == 2:
        for op in group[0].ops:
            if isinstance(op, ops.DropConstraintOp) and op.constraint_type == "foreignkey":
                try:
                    constraints.append(op.to_constraint())
                except Exception:  # Without its reverse the table's own FKs still count.
                    continue
    found = set()
    for constraint in constraints:
        if isinstance(constraint, sa.ForeignKeyConstraint):
            for element in constraint.elements:
                try:
                    found.add(_referred(element.target_fullname))
                except Exception:  # An FK whose target cannot be named does not order anything.
                    continue
    return found


def order_dropped_tables(op_list: Sequence[Any]) -> list[Any]:
    """Reorder each run of dropped tables (``[ModifyTableOps(t)], DropTableOp(t)``) canonically.

    A table that references another dropped table comes first: its foreign keys are dropped
    (or it is) before the table they point to; otherwise by schema and name.
    """
    items: list[tuple[TableKey | None, list[Any]]] = []
    position = 0
    while position < len(op_list):
        op = op_list[position]
        following = op_list[position + 1] if position + 1 < len(op_list) else None
        if (
            type(op) is ops.ModifyTableOps
            and type(following) is ops.DropTableOp
            and (op.schema, op.table_name) == (following.schema, following.table_name)
        ):
            items.append((_table_key(following.schema, following.table_name), [op, following]))
            position += 2
        elif type(op) is ops.DropTableOp:
            items.append((_table_key(op.schema, op.table_name), [op]))
            position += 1
        else:
            items.append((None, [op]))
            position += 1

    result: list[Any] = []
    run: dict[TableKey, list[Any]] = {}
    for key, group in [*items, (None, [])]:
        if key is not None and key not in run:
            run[key] = group
            continue
        for table in _referencing_first(run):
            result.extend(run[table])
        run = {key: group} if key is not None else {}
        if key is None:
            result.extend(group)
    return result


def _referencing_first(run: dict[TableKey, list[Any]]) -> list[TableKey]:
    """The run's tables, each after every table that references it; ties (and cycles) by name."""
    references = {table: (_references(group) & run.keys()) - {table} for table, group in run.items()}
    remaining = set(run)
    ordered = []
    while remaining:
        ready = [t for t in remaining if not any(t in references[other] for other in remaining)]
        chosen = min(ready or remaining)
        ordered.append(chosen)
        remaining.discard(chosen)
    return ordered
