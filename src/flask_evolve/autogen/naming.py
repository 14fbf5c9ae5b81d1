"""Constraint names: the default naming convention, and a name for every constraint left unnamed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from flask_evolve.autogen.pipeline import RewriteContext

#: The convention from SQLAlchemy's documentation ("Configuring Constraint Naming Conventions").
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: alembic.ini section and key that turn the convention on for a project
#: (``flask db init`` writes ``naming_convention = default`` in new projects).
INI_SECTION = "flask_evolve"
INI_KEY = "naming_convention"

_KINDS = {"unique": "uq", "foreignkey": "fk", "check": "ck", "primary": "pk"}


class _Tokens(dict[str, str]):
    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        referred_table: str,
        referred_columns: Sequence[str],
        name: str,
    ) -> None:
        super().__init__(table_name=table, referred_table_name=referred_table, constraint_name=name)
        self.table = table
        self.columns = list(columns)
        self.referred_columns = list(referred_columns)

    def __missing__(self, key: str) -> str:
        for prefix, columns, table in (
            ("referred_column_", self.referred_columns, self["referred_table_name"]),
            ("column_", self.columns, self.table),
        ):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            attribute = rest.rsplit("_", 1)[-1]
            names = [f"{table}_{c}" if attribute == "label" else c for c in columns]
            if rest.startswith("0N_"):
                return "".join(names)
            if rest.startswith("0_N_"):
                return "_".join(names)
            position = rest.split("_", 1)[0]
            if position.isdigit() and int(position) < len(names):
                return names[int(position)]
        raise KeyError(key)


def convention_name(
    kind: str,
    table: str,
    columns: Sequence[str],
    *,
    referred_table: str = "",
    referred_columns: Sequence[str] = (),
    constraint_name: str = "",
    condition: str = "",
    convention: Mapping[str, Any] = NAMING_CONVENTION,
    max_length: int | None = None,
) -> str:
    """The name ``convention`` gives a constraint (``kind``: ``uq``, ``fk``, ``ck``, ``pk``, ``ix``).

    Deterministic: an unnamed CHECK, which the convention can only name through
    ``%(constraint_name)s``, is named by a hash of its condition.
    """
    template = convention.get(kind) or NAMING_CONVENTION[kind]
    if not isinstance(template, str):
        template = NAMING_CONVENTION[kind]
    if not constraint_name and "%(constraint_name)s" in template:
        constraint_name = hashlib.md5(condition.encode()).hexdigest()[:8]
    tokens = _Tokens(table, columns, referred_table, referred_columns, constraint_name)
    try:
        name = template % tokens
    except (KeyError, TypeError, ValueError):
        name = NAMING_CONVENTION[kind] % tokens
    if max_length and len(name) > max_length:
        # The same truncation SQLAlchemy applies to long convention names.
        name = name[: max_length - 8] + "_" + hashlib.md5(name.encode()).hexdigest()[-4:]
    return name


def convention_in_force(ctx: RewriteContext) -> dict[str, str] | None:
    """The convention to apply to every unnamed constraint, or None (existing projects).

    ``Migrate(naming_convention=...)`` wins over ``[flask_evolve] naming_convention``
    in alembic.ini: ``"default"`` (or ``True``) for :data:`NAMING_CONVENTION`, a
    dict for your own, ``"off"`` (or ``False``) for none.
    """
    value: Any = ctx.options.get("naming_convention")
    config = ctx.migration_context.config
    if value is None and config is not None and config.file_config.has_section(INI_SECTION):
        value = config.get_section_option(INI_SECTION, INI_KEY)
    if isinstance(value, Mapping):
        return dict(value)
    if value is True or (isinstance(value, str) and value.strip().lower() in ("default", "true", "on")):
        return dict(NAMING_CONVENTION)
    return None


def _max_length(ctx: RewriteContext) -> int | None:
    dialect = ctx.migration_context.dialect
    length = getattr(dialect, "max_identifier_length", None)
    return length if isinstance(length, int) and length < 1000 else None


def _walk(container: Any) -> Iterator[tuple[Any, Any]]:
    from alembic.operations import ops

    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            for sub in op.ops:
                yield op, sub
        else:
            yield container, op


def _name_for_op(op: Any, convention: Mapping[str, Any], max_length: int | None) -> str | None:
    from alembic.operations import ops

    if isinstance(op, ops.CreateUniqueConstraintOp):
        return convention_name("uq", op.table_name, op.columns, convention=convention, max_length=max_length)
    if isinstance(op, ops.CreateForeignKeyOp):
        return convention_name(
            "fk",
            op.source_table,
            op.local_cols,
            referred_table=op.referent_table,
            referred_columns=op.remote_cols,
            convention=convention,
            max_length=max_length,
        )
    if isinstance(op, ops.CreateCheckConstraintOp):
        return convention_name(
            "ck", op.table_name, [], condition=str(op.condition), convention=convention, max_length=max_length
        )
    if isinstance(op, ops.DropConstraintOp):
        reverse = getattr(op, "_reverse", None)
        if reverse is None:
            return None
        return _name_for_op(reverse, convention, max_length)
    return None


def _constraint_name(
    constraint: sa.Constraint, table: str, convention: Mapping[str, Any], max_length: int | None
) -> str | None:
    columns = [c.name for c in constraint.columns] if hasattr(constraint, "columns") else []
    if isinstance(constraint, sa.PrimaryKeyConstraint):
        return convention_name("pk", table, columns, convention=convention, max_length=max_length)
    if isinstance(constraint, sa.UniqueConstraint):
        return convention_name("uq", table, columns, convention=convention, max_length=max_length)
    if isinstance(constraint, sa.ForeignKeyConstraint):
        targets = [e.target_fullname.split(".") for e in constraint.elements]
        return convention_name(
            "fk",
            table,
            list(constraint.column_keys),
            referred_table=targets[0][-2] if targets else "",
            referred_columns=[t[-1] for t in targets],
            convention=convention,
            max_length=max_length,
        )
    if isinstance(constraint, sa.CheckConstraint):
        return convention_name(
            "ck", table, [], condition=str(constraint.sqltext), convention=convention, max_length=max_length
        )
    return None


def _is_unnamed(constraint: sa.Constraint) -> bool:
    return not isinstance(constraint.name, str) or not constraint.name


def _named_create_table(op: Any, convention: Mapping[str, Any], max_length: int | None) -> Any:
    from alembic.operations import ops

    table = op.to_table()
    changed = False
    for constraint in table.constraints:
        if not _is_unnamed(constraint) or getattr(constraint, "_type_bound", False):
            continue
        name = _constraint_name(constraint, table.name, convention, max_length)
        if name:
            constraint.name = name
            changed = True
    if not changed:
        return op
    named = ops.CreateTableOp.from_table(table)
    named.if_not_exists = op.if_not_exists
    return named


def _name_tree(
    container: Any,
    convention: Mapping[str, Any] | None,
    max_length: int | None,
    fallback: Mapping[str, Any],
) -> list[str]:
    """Name the unnamed constraints of one op tree; return the tables whose batch must name reflected ones."""
    from alembic.operations import ops

    needs_reflected_names: list[str] = []
    for index, op in enumerate(list(container.ops)):
        if convention is not None and isinstance(op, ops.CreateTableOp):
            container.ops[index] = _named_create_table(op, convention, max_length)
    for parent, op in _walk(container):
        name_attr = "constraint_name"
        if not hasattr(op, name_attr) or getattr(op, name_attr):
            continue
        name = _name_for_op(op, fallback, max_length)
        if name is None:
            continue
        setattr(op, name_attr, name)
        if isinstance(op, ops.DropConstraintOp) and isinstance(parent, ops.ModifyTableOps):
            needs_reflected_names.append(parent.table_name)
    return needs_reflected_names


def _with_batch_convention(container: Any, tables: Sequence[str], convention: Mapping[str, Any]) -> None:
    from alembic.operations import ops

    from flask_evolve.autogen.batch import BatchTableOps

    for index, op in enumerate(container.ops):
        if isinstance(op, ops.ModifyTableOps) and op.table_name in tables:
            container.ops[index] = BatchTableOps.from_modify(op, naming_convention=dict(convention))


def _dropped_sqlite_uniques(ctx: RewriteContext) -> list[tuple[str, list[str], bool]]:
    """Unnamed UNIQUE constraints the database has and the models no longer declare (SQLite),
    each with whether a column of it is dropped too (the rebuild drops it then).

    Alembic cannot see their removal on SQLite (it has no name to drop), so the
    rows would keep failing the old uniqueness while the models say otherwise,
    and a downgrade that brings a dropped column back would leave it out.
    """
    context = ctx.migration_context
    if context.dialect.name != "sqlite" or context.bind is None:
        return []
    metadata = context.opts.get("target_metadata")
    metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
    models = {t.name: t for m in metadatas if m is not None for t in m.tables.values() if t.schema is None}
    from flask_evolve.autogen.fingerprint import proven_unchanged

    inspector = sa.inspect(context.bind)
    existing = set(inspector.get_table_names())
    # A table whose CREATE statement is the model's has exactly the model's uniques.
    unchanged = proven_unchanged(context)
    found = []
    for name, table in models.items():
        if name not in existing or name in unchanged:
            continue
        declared = {
            frozenset(c.name for c in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        } | {frozenset(c.name for c in index.columns) for index in table.indexes if index.unique}
        for unique in inspector.get_unique_constraints(name):
            columns = list(unique["column_names"])
            if unique.get("name") or frozenset(columns) in declared:
                continue
            found.append((name, columns, not set(columns) <= set(table.c.keys())))
    return found


def _add_to_group(tree: Any, group: Any, *, first: bool) -> None:
    """Put ``group``'s ops into the tree's changes of the same table (first or last), else add it."""
    from alembic.operations import ops

    from flask_evolve.autogen.batch import BatchTableOps

    for index, op in enumerate(tree.ops):
        if type(op) in (ops.ModifyTableOps, BatchTableOps) and op.table_name == group.table_name:
            merged = BatchTableOps.from_modify(op, **group.batch_kwargs)
            merged.ops[:] = [*group.ops, *merged.ops] if first else [*merged.ops, *group.ops]
            tree.ops[index] = merged
            return
    if first:
        tree.ops.insert(0, group)
    else:
        tree.ops.append(group)


def _add_sqlite_unique_drops(
    ctx: RewriteContext, convention: Mapping[str, Any], max_length: int | None
) -> None:
    from alembic.operations import ops

    from flask_evolve.autogen.batch import BatchTableOps

    for table, columns, column_dropped in _dropped_sqlite_uniques(ctx):
        name = convention_name("uq", table, columns, convention=convention, max_length=max_length)
        constraint = sa.UniqueConstraint(*columns, name=name)
        sa.Table(table, sa.MetaData(), *(sa.Column(c) for c in columns), constraint)
        drop = ops.DropConstraintOp.from_constraint(constraint)
        batch_kwargs = {"naming_convention": {"uq": convention.get("uq", NAMING_CONVENTION["uq"])}}
        if column_dropped:
            # The rebuild that drops the column drops the constraint; the downgrade re-adds the
            # column, so it re-creates the constraint after it (Alembic saw neither).
            _add_to_group(ctx.downgrade_ops, BatchTableOps(table, [drop.reverse()]), first=False)
            continue
        # Into the table's other changes if it has some: one rebuild (SQLite) for all of them.
        _add_to_group(ctx.upgrade_ops, BatchTableOps(table, [drop], batch_kwargs=batch_kwargs), first=False)
        _add_to_group(
            ctx.downgrade_ops, BatchTableOps(table, [drop.reverse()], batch_kwargs=batch_kwargs), first=True
        )
        ctx.note(f"Detected removed unnamed unique constraint on {table}({', '.join(columns)}) (SQLite)")


def name_constraints(ctx: RewriteContext) -> None:
    """Rewriter: no constraint name of None survives into the script.

    With a convention in force (new projects), unnamed constraints of new tables
    are named too; otherwise only where a name is needed (Alembic would render
    ``None`` and the migration would fail), so existing projects see no churn.
    """
    convention = convention_in_force(ctx)
    max_length = _max_length(ctx)
    fallback = convention or NAMING_CONVENTION
    _add_sqlite_unique_drops(ctx, fallback, max_length)
    # A table the downgrade re-creates gets back the names it had (none, on SQLite),
    # so only the upgrade names new tables' constraints by the convention.
    for tree, tree_convention in ((ctx.upgrade_ops, convention), (ctx.downgrade_ops, None)):
        tables = _name_tree(tree, tree_convention, max_length, fallback)
        # Only SQLite has reflected constraints without a name; PostgreSQL drops by the real one.
        if tables and ctx.migration_context.dialect.name == "sqlite":
            _with_batch_convention(tree, tables, fallback)
