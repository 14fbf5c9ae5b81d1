"""Guards around risky type changes (values they would alter, enum values rows still hold, the
sequence a SERIAL column owns) and foreign-key integrity after SQLite rebuilds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations, ops

from flask_evolve.errors import MigrationError

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

    from flask_evolve.autogen.pipeline import RewriteContext


class DataConversionError(MigrationError):
    """A type change would alter or lose stored values."""


class ForeignKeyViolationError(MigrationError):
    """Rows reference parents that do not exist."""


@Operations.register_operation("ensure_lossless_type_change")
class EnsureLosslessTypeChangeOp(MigrateOperation):
    """Stop before a column changes type if any stored value would change or be lost.

    ``new_type`` is the target type as SQL (``"INTEGER"``, ``"VARCHAR(10)"``).
    """

    def __init__(self, table_name: str, column_name: str, new_type: str, *, schema: str | None = None):
        self.table_name = table_name
        self.column_name = column_name
        self.new_type = new_type
        self.schema = schema

    @classmethod
    def ensure_lossless_type_change(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        new_type: str,
        *,
        schema: str | None = None,
    ) -> None:
        operations.invoke(cls(table_name, column_name, new_type, schema=schema))

    def reverse(self) -> MigrateOperation:
        # The check writes nothing, so there is nothing to undo.
        return self


@Operations.register_operation("check_foreign_keys")
class CheckForeignKeysOp(MigrateOperation):
    """After a SQLite table rebuild: fail if any row references a missing parent."""

    def __init__(self, table_name: str | None = None):
        self.table_name = table_name

    @classmethod
    def check_foreign_keys(cls, operations: Operations, table_name: str | None = None) -> None:
        operations.invoke(cls(table_name))

    def reverse(self) -> MigrateOperation:
        return CheckForeignKeysOp(self.table_name)


def _quoted(connection: sa.Connection, name: str, schema: str | None = None) -> str:
    preparer = connection.dialect.identifier_preparer
    return (preparer.quote_schema(schema) + "." if schema else "") + preparer.quote(name)


def lossy_value(
    connection: sa.Connection, table_name: str, column_name: str, new_type: str, schema: str | None = None
) -> str | None:
    """What a stored value of the column would suffer as ``new_type`` (naming one such value), or None
    when every value converts unchanged."""
    table = _quoted(connection, table_name, schema)
    column = connection.dialect.identifier_preparer.quote(column_name)
    if connection.dialect.name == "sqlite":
        # SQLite keeps what the new affinity cannot represent and CAST would turn 'abc' into 0:
        # compare each value with its conversion under the column's own affinity.
        query = (
            f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL "
            f"AND CAST({column} AS {new_type}) IS NOT {column} LIMIT 1"
        )
        bad = connection.exec_driver_sql(query).fetchall()
    else:
        # A value is kept when it comes back from the new type unchanged: 1.5000 as NUMERIC(10, 2) and
        # back is 1.5000, 1.2345 is not; 3.50 as FLOAT is; 1 as BOOLEAN is, 2 is not; '012' as INTEGER
        # is not; a TIMESTAMP given a time zone is. Compared as text: not every type has an equality.
        try:
            with connection.begin_nested():
                current = connection.execute(
                    sa.text(
                        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass(:table) AND attname = :column"
                    ),
                    {"table": table, "column": column_name},
                ).scalar()
                converted = f"CAST({column} AS {new_type})"
                back = f"CAST({converted} AS {current})" if current else converted
                query = (
                    f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL AND "
                    f"CAST({back} AS TEXT) IS DISTINCT FROM CAST({column} AS TEXT) LIMIT 1"
                )
                bad = connection.exec_driver_sql(query).fetchall()
        except sa.exc.DBAPIError as exc:
            # The database's own words name the value: invalid input syntax for type integer: "A1".
            return str(exc.orig).splitlines()[0] if exc.orig else str(exc)
    return f"value {bad[0][0]!r} would be altered or lost" if bad else None


@Operations.implementation_for(EnsureLosslessTypeChangeOp)
def _ensure_lossless(operations: Operations, operation: EnsureLosslessTypeChangeOp) -> None:
    if operations.migration_context.as_sql:
        return
    bind = operations.get_bind()
    why = lossy_value(bind, operation.table_name, operation.column_name, operation.new_type, operation.schema)
    if why is not None:
        raise DataConversionError(
            f"cannot change {operation.table_name}.{operation.column_name} to {operation.new_type}: "
            f"{why}; fix or remove such values first, nothing was changed."
        )


@Operations.implementation_for(CheckForeignKeysOp)
def _check_foreign_keys(operations: Operations, operation: CheckForeignKeysOp) -> None:
    connection = operations.get_bind()
    if operations.migration_context.as_sql or connection.dialect.name != "sqlite":
        return
    pragma = "PRAGMA foreign_key_check"
    if operation.table_name:
        pragma += f"({_quoted(connection, operation.table_name)})"
    rows = connection.exec_driver_sql(pragma).fetchall()
    if rows:
        table, rowid, parent, _ = rows[0]
        raise ForeignKeyViolationError(
            f"{len(rows)} row(s) of {table} reference missing rows of {parent} (first: rowid {rowid}) "
            f"after rebuilding {operation.table_name or 'tables'}: point those rows at existing {parent} "
            f"rows or delete them first; nothing was changed."
        )


@renderers.dispatch_for(EnsureLosslessTypeChangeOp)
def _render_ensure_lossless(autogen_context: AutogenContext, op: EnsureLosslessTypeChangeOp) -> str:
    schema = f", schema={op.schema!r}" if op.schema else ""
    return f"op.ensure_lossless_type_change({op.table_name!r}, {op.column_name!r}, {op.new_type!r}{schema})"


@renderers.dispatch_for(CheckForeignKeysOp)
def _render_check_foreign_keys(autogen_context: AutogenContext, op: CheckForeignKeysOp) -> str:
    return f"op.check_foreign_keys({op.table_name!r})"


class AlterColumnUsingOp(ops.AlterColumnOp):
    """An ``alter_column`` that states how PostgreSQL converts the old values (``postgresql_using``)."""


@renderers.dispatch_for(AlterColumnUsingOp)
def _render_alter_column_using(autogen_context: AutogenContext, op: AlterColumnUsingOp) -> str:
    plain = ops.AlterColumnOp.__new__(ops.AlterColumnOp)
    plain.__dict__.update(op.__dict__)
    text = renderers.dispatch(plain)(autogen_context, plain)
    assert text.endswith(")")
    indent = " " * 11
    return f"{text[:-1]},\n{indent}postgresql_using={op.kw['postgresql_using']!r})"


def widens(old: Any, new: Any) -> bool:
    """True when every value of ``old`` is kept as is by ``new`` (no check needed)."""
    if isinstance(old, sa.Enum) or isinstance(new, sa.Enum):
        return False
    if _exact_numeric(old) and _exact_numeric(new):
        # As many digits before and after the point: NUMERIC(12, 2) -> NUMERIC(14, 4).
        if new.precision is None:
            return True
        if old.precision is None:
            return False
        old_scale, new_scale = old.scale or 0, new.scale or 0
        return new_scale >= old_scale and new.precision - new_scale >= old.precision - old_scale
    if isinstance(old, sa.DateTime) and isinstance(new, sa.DateTime):
        # With or without a time zone, an instant stays that instant (PostgreSQL reads naive values
        # in the session's TimeZone); only fewer fractional digits would round stored values.
        old_digits, new_digits = getattr(old, "precision", None), getattr(new, "precision", None)
        return new_digits is None or (old_digits is not None and new_digits >= old_digits)
    if isinstance(old, sa.String) and isinstance(new, sa.String):
        if new.length is None:
            return True
        return old.length is not None and new.length >= old.length
    if isinstance(old, sa.Integer) and isinstance(new, sa.Integer):
        return _integer_rank(new) >= _integer_rank(old)
    return False


def _integer_rank(type_: Any) -> int:
    # SmallInteger and BigInteger are subclasses of Integer: test them first.
    if isinstance(type_, sa.BigInteger):
        return 2
    if isinstance(type_, sa.SmallInteger):
        return 0
    return 1


def _exact_numeric(type_: Any) -> bool:
    return isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float)


def _type_changes(container: Any) -> list[tuple[Any, ops.AlterColumnOp, int]]:
    found = []
    for index, op in enumerate(container.ops):
        if isinstance(op, ops.ModifyTableOps):
            for inner in op.ops:
                if isinstance(inner, ops.AlterColumnOp) and inner.modify_type is not None:
                    found.append((op, inner, index))
    return found


def guard_type_changes(ctx: RewriteContext) -> None:
    """Precede every narrowing type change with a check that stops before any value changes.

    On PostgreSQL the ``alter_column`` also gets ``postgresql_using`` so that values
    that do convert (``'12'`` → ``12``) are converted instead of failing. A native enum
    losing a value that rows still hold is refused before the script is written.
    """
    refuse_enum_value_removal(ctx)
    retype_owned_sequences(ctx)
    dialect = ctx.migration_context.dialect
    for container in (ctx.upgrade_ops, ctx.downgrade_ops):
        inserted = 0
        for group, alter, index in _type_changes(container):
            old, new = alter.existing_type, alter.modify_type
            if old is None or widens(old, new):
                continue
            new_sql = new.compile(dialect=dialect)
            if container is ctx.upgrade_ops:
                refuse_lossy_type_change(ctx, group, alter, new_sql)
            check = EnsureLosslessTypeChangeOp(
                alter.table_name, alter.column_name, new_sql, schema=alter.schema
            )
            container.ops.insert(index + inserted, check)
            inserted += 1
            if dialect.name == "postgresql":
                column = dialect.identifier_preparer.quote(alter.column_name)
                using = AlterColumnUsingOp.__new__(AlterColumnUsingOp)
                using.__dict__.update(alter.__dict__)
                using.kw = dict(alter.kw, postgresql_using=f"{column}::{new_sql}")
                group.ops[group.ops.index(alter)] = using


def _live_column(ctx: RewriteContext, group: ops.ModifyTableOps, alter: ops.AlterColumnOp) -> tuple[str, str]:
    """The table and column names the live database has now (a rename earlier in the same
    migration has not happened yet)."""
    table = next(
        (op.table_name for op in ctx.upgrade_ops.ops
         if isinstance(op, ops.RenameTableOp) and op.new_table_name == group.table_name),
        group.table_name,
    )
    column = alter.column_name
    for op in group.ops[: group.ops.index(alter)]:
        if isinstance(op, ops.AlterColumnOp) and op.modify_name == column:
            column = op.column_name
    return table, column


class FollowSequenceTypeOp(ops.ExecuteSQLOp):
    """PostgreSQL (``op.execute``): give the sequence a serial column owns the column's integer type.

    The sequence is found when the statement runs (it may have been renamed since the script
    was written); an identity column's sequence, which follows its column by itself, gets the
    same type again.
    """

    def __init__(self, connection: sa.Connection, table: str, column: str, schema: str | None, type_sql: str):
        self.table_name, self.column_name, self.schema, self.type_sql = table, column, schema, type_sql
        target = _quoted(connection, table, schema)
        literal_table, literal_column = target.replace("'", "''"), column.replace("'", "''")
        super().__init__(
            f"DO $$DECLARE owned text := pg_get_serial_sequence('{literal_table}', '{literal_column}'); "
            f"BEGIN IF owned IS NOT NULL THEN EXECUTE 'ALTER SEQUENCE ' || owned || ' AS {type_sql}'; "
            f"END IF; END$$"
        )


def retype_owned_sequences(ctx: RewriteContext) -> None:
    """On PostgreSQL, follow an integer column's type change (INTEGER to BIGINT, and back on
    downgrade) with its serial sequence's: ``ALTER COLUMN ... TYPE`` leaves a SERIAL's sequence
    at INTEGER, so a table moved to BIGINT to get past 2,147,483,647 ids still stops there."""
    connection = ctx.migration_context.connection
    if connection is None or ctx.migration_context.as_sql or connection.dialect.name != "postgresql":
        return
    retyped: set[tuple[str | None, str, str]] = set()  # (schema, table, column) as after the upgrade
    for group, alter, _ in _type_changes(ctx.upgrade_ops):
        old, new = alter.existing_type, alter.modify_type
        if not (isinstance(old, sa.Integer) and isinstance(new, sa.Integer)):
            continue
        table, column = _live_column(ctx, group, alter)
        owned = connection.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": _quoted(connection, table, alter.schema), "column": column},
        ).scalar()
        if owned is None:
            continue
        name = alter.modify_name or alter.column_name
        retyped.add((alter.schema, group.table_name, name))
        type_sql = new.compile(dialect=connection.dialect)
        follow = FollowSequenceTypeOp(connection, group.table_name, name, alter.schema, type_sql)
        group.ops.insert(group.ops.index(alter) + 1, follow)
    for group, alter, _ in _type_changes(ctx.downgrade_ops):
        if (alter.schema, group.table_name, alter.column_name) not in retyped:
            continue
        name = alter.modify_name or alter.column_name
        type_sql = alter.modify_type.compile(dialect=connection.dialect)
        follow = FollowSequenceTypeOp(connection, group.table_name, name, alter.schema, type_sql)
        group.ops.insert(group.ops.index(alter) + 1, follow)


def refuse_lossy_type_change(
    ctx: RewriteContext, group: ops.ModifyTableOps, alter: ops.AlterColumnOp, new_sql: str
) -> None:
    """At `migrate`: stop before the script is written when the live rows hold a value that
    ``op.ensure_lossless_type_change`` would stop `upgrade` on."""
    connection = ctx.migration_context.connection
    if connection is None or ctx.migration_context.as_sql:
        return
    table, column = _live_column(ctx, group, alter)
    inspector = sa.inspect(connection)
    if not inspector.has_table(table, schema=alter.schema) or column not in {
        c["name"] for c in inspector.get_columns(table, schema=alter.schema)
    }:
        return  # made by this same migration: no rows to lose yet
    why = lossy_value(connection, table, column, new_sql, alter.schema)
    if why is not None:
        name = alter.modify_name or alter.column_name
        raise DataConversionError(
            f"cannot change {group.table_name}.{name} to {new_sql}: {why}, so `flask db upgrade` would "
            f"stop there: fix or remove such values first, or keep the column's type; nothing was written."
        )


def rows_holding(
    connection: sa.Connection, table: str, column: str, values: list[str], schema: str | None, array: bool
) -> tuple[int, str] | None:
    """``(rows, first value)``: how many rows of ``table.column`` hold one of ``values`` (an enum
    array column: any element), and the first such value in the enum's order; None if no row does."""
    target = _quoted(connection, table, schema)
    quoted = connection.dialect.identifier_preparer.quote(column)
    held = f"{quoted}::text[] && CAST(:values AS text[])" if array else f"{quoted}::text = ANY(:values)"
    with connection.begin_nested():
        rows = connection.execute(sa.text(f"SELECT count(*) FROM {target} WHERE {held}"), {"values": values})
        count = int(rows.scalar() or 0)
        if not count:
            return None
        elements = f"unnest({quoted})::text" if array else f"{quoted}::text"
        present = connection.execute(
            sa.text(f"SELECT DISTINCT {elements} FROM {target} WHERE {held}"), {"values": values}
        ).scalars()
    found = set(present)
    return count, next(v for v in values if v in found)


def refuse_enum_value_removal(ctx: RewriteContext) -> None:
    """At `migrate`: stop before the script is written when a PostgreSQL enum loses a value that
    live rows hold (alembic-postgresql-enum's ``sync_enum_values`` would fail at `upgrade`)."""
    connection = ctx.migration_context.connection
    if connection is None or ctx.migration_context.as_sql or connection.dialect.name != "postgresql":
        return
    inspector = sa.inspect(connection)
    for op in ctx.upgrade_ops.ops:
        if type(op).__name__ != "SyncEnumValuesOp":
            continue
        removed = [value for value in op.old_values if value not in op.new_values]
        for reference in op.affected_columns if removed else ():
            schema = reference.table_schema if isinstance(reference.table_schema, str) else op.schema
            if not inspector.has_table(reference.table_name, schema=schema):
                continue
            array = getattr(reference.column_type, "name", "COMMON") == "ARRAY"
            table, column = reference.table_name, reference.column_name
            held = rows_holding(connection, table, column, removed, schema, array)
            if held is None:
                continue
            count, value = held
            where = f"{table}.{column}"
            raise DataConversionError(
                f"cannot remove {value!r} from enum {op.name}: {count} row(s) of {where} hold it, so "
                f"`flask db upgrade` would stop there: change those rows to a value the enum keeps first "
                f"(to rename a value: add the new one, migrate, move the rows, then remove the old one), "
                f"or keep {value!r} in the enum; nothing was written."
            )
