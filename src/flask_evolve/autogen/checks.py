"""CHECK constraints: compared by their condition as the database spells it, named or not."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import ops
from alembic.util import PriorityDispatchResult, sqla_compat
from sqlalchemy.sql.elements import conv

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

    from flask_evolve.autogen.pipeline import RewriteContext

log = logging.getLogger("alembic.autogenerate.compare")

#: The scratch table on which PostgreSQL spells the models' conditions (temporary, rolled back).
PROBE_TABLE = "_evolve_check_probe"


@dataclass
class _Check:
    """One CHECK on one side: its name (None when it has none) and its condition, as spelled."""

    name: str | None
    spelling: str | None
    constraint: Any = None
    sqltext: str = ""


def _sqlite_spelling(text: str) -> str:
    # Imported here: comparators registers this module's comparator while it is imported.
    from flask_evolve.autogen.comparators import _strip_parens

    return " ".join(_strip_parens(text).split())


def _compiled(check: sa.CheckConstraint, dialect: sa.Dialect) -> str:
    return str(check.sqltext.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _pg_definitions(connection: sa.Connection, relation: str) -> dict[str, str]:
    rows = connection.execute(
        sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:relation AS regclass) AND contype = 'c'"
        ),
        {"relation": relation},
    )
    return {str(name): str(definition) for name, definition in rows}


def postgresql_spellings(
    connection: sa.Connection, table: sa.Table, conditions: Sequence[str]
) -> list[str] | None:
    """How PostgreSQL itself prints each condition (``pg_get_constraintdef``) on a table of the
    models' columns, or None when the scratch table cannot be made (a type that does not exist yet).

    PostgreSQL rewrites what it stores (``b <> ''`` becomes ``((b)::text <> ''::text)``), so only
    its own spelling compares exactly. The scratch table lives in a savepoint that is rolled back.
    """
    if not conditions:
        return []
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    try:
        columns = ", ".join(
            f"{quote(column.name)} {column.type.compile(dialect=dialect)}" for column in table.columns
        )
    except sa.exc.CompileError:
        return None
    try:
        savepoint = connection.begin_nested()
    except sa.exc.DBAPIError:  # e.g. an AUTOCOMMIT connection: no savepoints
        return None
    try:
        connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {PROBE_TABLE} ({columns})")
        for index, condition in enumerate(conditions):
            connection.exec_driver_sql(
                f"ALTER TABLE {PROBE_TABLE} ADD CONSTRAINT c{index} CHECK ({condition})"
            )
        spelled = _pg_definitions(connection, f"pg_temp.{PROBE_TABLE}")
    except sa.exc.DBAPIError as exc:
        log.debug("PostgreSQL could not spell the CHECKs of %s: %s", table.name, exc)
        return None
    finally:
        savepoint.rollback()
    return [spelled[f"c{index}"] for index in range(len(conditions))]


def _database_checks(
    autogen_context: AutogenContext, schema: str | None, tname: str, conn_table: sa.Table
) -> list[_Check]:
    reflected = autogen_context.inspector.get_check_constraints(tname, schema=schema)
    dialect = autogen_context.dialect
    assert dialect is not None
    spellings: dict[str, str] = {}
    if dialect.name == "postgresql":
        preparer = dialect.identifier_preparer
        relation = preparer.quote(tname)
        if schema is not None:
            relation = f"{preparer.quote_schema(schema)}.{relation}"
        spellings = _pg_definitions(autogen_context.connection, relation)  # type: ignore[arg-type]
    found = []
    for ck in reflected:
        name = ck.get("name")
        if name is not None and not autogen_context.run_name_filters(
            name, "check_constraint", {"table_name": tname, "schema_name": schema}
        ):
            continue
        spelling = spellings.get(name) if dialect.name == "postgresql" else _sqlite_spelling(ck["sqltext"])
        found.append(_Check(name, spelling, sqltext=str(ck["sqltext"])))
    return found


def _model_checks(autogen_context: AutogenContext, metadata_table: sa.Table) -> list[_Check]:
    dialect = autogen_context.dialect
    assert dialect is not None
    declared = sorted(
        sqla_compat.all_table_check_constraints(metadata_table), key=lambda ck: _compiled(ck, dialect)
    )
    conditions = [_compiled(ck, dialect) for ck in declared]
    spellings: Sequence[str | None]
    if dialect.name == "postgresql":
        spelled = postgresql_spellings(autogen_context.connection, metadata_table, conditions)  # type: ignore[arg-type]
        spellings = spelled if spelled is not None else [None] * len(declared)
    else:
        spellings = [_sqlite_spelling(text) for text in conditions]
    found = []
    for ck, spelling in zip(declared, spellings, strict=True):
        name = str(ck.name) if sqla_compat._constraint_is_named(ck, dialect) else None
        found.append(_Check(name, spelling, constraint=ck))
    return found


def _drop(
    autogen_context: AutogenContext, modify_table_ops: ops.ModifyTableOps, conn_table: sa.Table, ck: _Check
) -> None:
    # conv(): the name is the database's own, which a naming convention must not rewrite again
    # (ck_%(table_name)s_%(constraint_name)s would drop "ck_t_ck_t_x", which does not exist).
    name = conv(ck.name) if ck.name is not None else None
    constraint = sa.CheckConstraint(sa.text(ck.sqltext), name=name, table=conn_table)
    if ck.name is not None and not autogen_context.run_object_filters(
        constraint, ck.name, "check_constraint", True, None
    ):
        return
    # Before the column changes: a condition may not hold for a column's new type.
    modify_table_ops.ops.insert(0, ops.DropConstraintOp.from_constraint(constraint))
    log.info("Detected removed check constraint %r on table %r", ck.name or ck.sqltext, conn_table.name)


def _add(
    autogen_context: AutogenContext, modify_table_ops: ops.ModifyTableOps, tname: str, ck: _Check
) -> None:
    constraint = ck.constraint
    if getattr(constraint, "_type_bound", False):
        return  # a Boolean's or Enum's own CHECK comes and goes with its column
    if not autogen_context.run_object_filters(constraint, ck.name, "check_constraint", False, None):
        return
    modify_table_ops.ops.append(ops.AddConstraintOp.from_constraint(constraint))
    log.info("Detected added check constraint %r on table %r", ck.name or str(constraint.sqltext), tname)


def compare_checks(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    tname: str,
    conn_table: sa.Table | None,
    metadata_table: sa.Table | None,
) -> PriorityDispatchResult:
    """CHECK constraints on SQLite and PostgreSQL, named or unnamed, by condition.

    A named CHECK of the models is the database's CHECK of that name; it changed when the
    conditions differ. Every other CHECK of the models (unnamed) is matched, by condition, to
    a CHECK of the database that no named one claimed, whatever name the database, an older
    project or a naming convention gave it. What is left over in the database is dropped by
    its real name (SQLite: the table is rebuilt), what is left over in the models is added.
    Where a condition cannot be spelled exactly, nothing is reported for it (no false positives).

    Returns STOP, so that Alembic's by-name comparison does not also run.
    """
    dialect = autogen_context.dialect
    if dialect is None or dialect.name not in ("sqlite", "postgresql"):
        return PriorityDispatchResult.CONTINUE
    if conn_table is None or metadata_table is None or autogen_context.connection is None:
        return PriorityDispatchResult.CONTINUE
    database = _database_checks(autogen_context, schema, tname, conn_table)
    models = _model_checks(autogen_context, metadata_table)

    by_name = {ck.name: ck for ck in database if ck.name is not None}
    unclaimed_models: list[_Check] = []
    for ck in models:
        if ck.name is None:
            unclaimed_models.append(ck)
            continue
        existing = by_name.pop(ck.name, None)
        if existing is None:
            _add(autogen_context, modify_table_ops, tname, ck)
        elif None not in (existing.spelling, ck.spelling) and existing.spelling != ck.spelling:
            _drop(autogen_context, modify_table_ops, conn_table, existing)
            _add(autogen_context, modify_table_ops, tname, ck)
    unclaimed = [ck for ck in database if ck.name is None or ck.name in by_name]
    if any(ck.spelling is None for ck in unclaimed_models):
        return PriorityDispatchResult.STOP  # cannot tell which are the same: report nothing
    for ck in unclaimed_models:
        match = next((db for db in unclaimed if db.spelling == ck.spelling), None)
        if match is not None:
            unclaimed.remove(match)
        else:
            _add(autogen_context, modify_table_ops, tname, ck)
    for ck in unclaimed:
        if ck.spelling is not None:
            _drop(autogen_context, modify_table_ops, conn_table, ck)
    return PriorityDispatchResult.STOP


def keep_column_checks(ctx: RewriteContext) -> None:
    """Rewriter: a CHECK given on a Column survives into ``op.create_table()``.

    Alembic renders a new table's columns without their own constraints, so
    ``db.Column(db.Integer, db.CheckConstraint('a > 0'))`` would be silently lost;
    here it becomes a table-level CHECK of the created table (same condition, same name).
    """
    for tree in (ctx.upgrade_ops, ctx.downgrade_ops):
        for op in tree.ops:
            if not isinstance(op, ops.CreateTableOp):
                continue
            lifted = [
                sa.CheckConstraint(ck.sqltext, name=ck.name if isinstance(ck.name, str) else None)
                for column in op.columns
                if isinstance(column, sa.Column)
                for ck in column.constraints
                if isinstance(ck, sa.CheckConstraint) and not getattr(ck, "_type_bound", False)
            ]
            op.columns = [*op.columns, *lifted]
