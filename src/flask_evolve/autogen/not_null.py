"""NOT NULL on tables with rows: refused at migrate time with the fixes, or filled with ``--fill``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import ops

from flask_evolve.autogen.restore_columns import dropping_default
from flask_evolve.errors import MigrationError, UserInputError
from flask_evolve.runtime.archive_ops import FILL_OPTION
from flask_evolve.runtime.sql_text import text_safe

if TYPE_CHECKING:
    from flask_evolve.autogen.pipeline import RewriteContext

#: Counting stops here: the message needs an order of magnitude, not a full scan of a huge table.
COUNT_LIMIT = 10_000

_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


class NotNullError(MigrationError):
    """A NOT NULL column would leave existing rows without a value."""


@dataclass(frozen=True)
class _Unfilled:
    """A NOT NULL column that ``rows`` existing rows would have no value for."""

    table: str
    column: str
    rows: int
    added: bool
    hint: str  # what to type after ``--fill table.column=``


def _needs_value(column: sa.Column[Any]) -> bool:
    """An added NOT NULL column that nothing gives the existing rows a value for."""
    return (
        not column.nullable
        and column.server_default is None
        and not column.primary_key
        and column.computed is None
        and column.identity is None
    )


def _python_value(text: str, type_: Any, where: str) -> Any:
    """``text`` as a value of the column's type; a one-line error when it is not one."""

    def bad(expected: str) -> UserInputError:
        return UserInputError(f"--fill {where}={text}: {expected}, for {type_}.")

    if isinstance(type_, sa.Boolean):
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise bad("expected true or false")
    if isinstance(type_, sa.Integer):
        try:
            return int(text)
        except ValueError:
            raise bad("expected a whole number") from None
    if isinstance(type_, sa.Numeric):
        try:
            return Decimal(text) if type_.asdecimal else float(text)
        except (InvalidOperation, ValueError):
            raise bad("expected a number") from None
    if isinstance(type_, sa.Enum):
        if text not in type_.enums:
            raise bad(f"expected one of {', '.join(type_.enums)}")
        return text
    parsers: tuple[tuple[type[Any], Any], ...] = (
        (sa.DateTime, datetime.datetime.fromisoformat),
        (sa.Date, datetime.date.fromisoformat),
        (sa.Time, datetime.time.fromisoformat),
    )
    for kind, parse in parsers:
        if isinstance(type_, kind):
            try:
                return parse(text)
            except ValueError:
                raise bad("expected an ISO date/time such as 2024-01-31 or 2024-01-31 12:00:00") from None
    if isinstance(type_, sa.String) and type_.length is not None and len(text) > type_.length:
        raise bad(f"longer than {type_.length} characters")
    return text


def sql_literal(text: str, type_: Any, dialect: sa.Dialect, where: str) -> str:
    """The SQL literal of a ``--fill`` value for a column of ``type_`` (``0``, ``'x'``, ``true``)."""
    value = _python_value(text, type_, where)
    try:
        literal = sa.literal(value, type_).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        return str(literal)
    except (NotImplementedError, sa.exc.CompileError):
        return "'" + str(value).replace("'", "''") + "'"


def _count(connection: sa.Connection, table: str, schema: str | None, where: str = "") -> int:
    """Rows of ``table`` (matching ``where``), counted up to COUNT_LIMIT + 1."""
    preparer = connection.dialect.identifier_preparer
    target = (preparer.quote_schema(schema) + "." if schema else "") + preparer.quote(table)
    condition = f" WHERE {where}" if where else ""
    query = f"SELECT count(*) FROM (SELECT 1 FROM {target}{condition} LIMIT {COUNT_LIMIT + 1}) AS counted"
    return int(connection.exec_driver_sql(query).scalar() or 0)


def _rows(n: int) -> str:
    if n > COUNT_LIMIT:
        return f"more than {COUNT_LIMIT} rows"
    return "1 row" if n == 1 else f"{n} rows"


def count_without_value(engine: sa.Engine, table: str, column: str) -> str | None:
    """``"3 rows"``: the rows of ``table`` with no value for ``column`` (all of them if the column
    does not exist yet), or ``None`` when the database cannot tell us now."""
    try:
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns(table)}
            quoted = connection.dialect.identifier_preparer.quote(column)
            rows = _count(connection, table, None, f"{quoted} IS NULL" if column in columns else "")
    except Exception:  # advice only: never hide the error being explained
        return None
    return _rows(rows) if rows else None


def _hint(column: sa.Column[Any] | None) -> str:
    """The model's own Python-side scalar ``default=``, when it has one, else ``VALUE``."""
    default = getattr(column, "default", None)
    if default is not None and getattr(default, "is_scalar", False):
        value = default.arg
        return str(value).lower() if isinstance(value, bool) else str(value)
    return "VALUE"


def refusal_message(unfilled: list[_Unfilled]) -> str:
    """One line: what has no value, how many rows, and the three ways out."""
    problems = []
    for item in unfilled:
        if item.added:
            problems.append(
                f"new NOT NULL column {item.table}.{item.column} has no server default and "
                f"{item.table} has {_rows(item.rows)}"
            )
        else:
            verb = "has" if item.rows == 1 else "have"
            problems.append(
                f"{item.table}.{item.column} becomes NOT NULL and {_rows(item.rows)} of {item.table} "
                f"{verb} NULL in it"
            )
    fills = " ".join(f"--fill {item.table}.{item.column}={item.hint}" for item in unfilled)
    which = "the column" if len(unfilled) == 1 else "each column"
    return (
        f"{'; '.join(problems)}, so `flask db upgrade` would fail: give {which} a server_default=..., "
        f"or make it nullable=True, or give the existing rows a value with `flask db migrate {fills}`; "
        f"nothing was written."
    )


def _model_column(ctx: RewriteContext, table: str, schema: str | None, column: str) -> sa.Column[Any] | None:
    metadata = ctx.migration_context.opts.get("target_metadata")
    for candidate in metadata if isinstance(metadata, (list, tuple)) else [metadata]:
        if candidate is None:
            continue
        found = candidate.tables.get(f"{schema}.{table}" if schema else table)
        if found is not None and column in found.columns:
            return found.columns[column]
    return None


def _unique_with_default(group: ops.ModifyTableOps, column: sa.Column[Any]) -> bool:
    """An added column that existing rows all get one default value in, and that must be unique."""
    if column.server_default is None or column.computed is not None or column.identity is not None:
        return False
    if column.unique:
        return True
    return any(
        isinstance(op, ops.CreateUniqueConstraintOp) and list(op.columns) == [column.name] for op in group.ops
    )


def _refuse_one_value_for_unique(key: str, value: str, rows: int) -> None:
    if rows > 1:
        raise NotNullError(
            f"--fill {key}={value} gives {_rows(rows)} the same value, but {key} is UNIQUE: make the "
            f"column nullable=True, give the rows their own values, then make it NOT NULL in a later "
            f"migration; nothing was written."
        )


def _filled_add(group: ops.ModifyTableOps, add: ops.AddColumnOp, literal: str) -> list[ops.MigrateOperation]:
    """Add the column with the fill value as its default, then drop the default: the rows keep the value.

    On PostgreSQL both steps change only the catalog (no table rewrite); on SQLite the
    planner makes them one rebuild that copies the value into every row.
    """
    column = add.column._copy()  # the models' own column must keep its (absent) default
    # Alembic renders the default as sa.text(<its SQL>): a literal_column's SQL is kept as given,
    # escaped so that text() does not read a ':word' in the value as a parameter.
    column.server_default = sa.DefaultClause(sa.literal_column(text_safe(literal)))
    return [ops.AddColumnOp(group.table_name, column, schema=group.schema), dropping_default(group, column)]


def fill_not_null(ctx: RewriteContext) -> None:
    """Rewriter: every NOT NULL column that existing rows would have no value for is refused with the
    fixes, unless ``--fill TABLE.COLUMN=VALUE`` names a value for those rows.

    An added column with a fill value gets it as a server default that is dropped again;
    a column made NOT NULL gets ``UPDATE ... SET column = VALUE WHERE column IS NULL``
    first. A fill value is used even when the table is empty here (the script may run
    on a database with rows), and a fill value that matches no such column is an error.
    """
    connection = ctx.migration_context.connection
    if connection is None:
        return
    fills: dict[str, str] = dict(ctx.options.get(FILL_OPTION) or {})
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    upgrade = ctx.upgrade_ops
    live_tables = {
        op.new_table_name: op.table_name for op in upgrade.ops if isinstance(op, ops.RenameTableOp)
    }
    unfilled: list[_Unfilled] = []
    used: set[str] = set()
    updates: list[ops.MigrateOperation] = []
    for group in upgrade.ops:
        if not isinstance(group, ops.ModifyTableOps):
            continue
        table, schema = group.table_name, group.schema
        live_table = live_tables.get(table, table)
        live_columns: dict[str, str] = {}
        rewritten: list[ops.MigrateOperation] = []
        for op in group.ops:
            if isinstance(op, ops.AlterColumnOp) and op.modify_name is not None:
                live_columns[op.modify_name] = live_columns.get(op.column_name, op.column_name)
            if isinstance(op, ops.AddColumnOp) and _unique_with_default(group, op.column):
                rows = _count(connection, live_table, schema)
                if rows > 1:
                    key = f"{table}.{op.column.name}"
                    raise NotNullError(
                        f"{key} is added with a server default, which gives {_rows(rows)} the same value, "
                        f"but {key} is UNIQUE, so `flask db upgrade` would fail: add it nullable=True "
                        f"without the default, give the rows their own values, then add the default in a "
                        f"later migration; nothing was written."
                    )
            if isinstance(op, ops.AddColumnOp) and _needs_value(op.column):
                key = f"{table}.{op.column.name}"
                if key in fills:
                    used.add(key)
                    literal = sql_literal(fills[key], op.column.type, dialect, key)
                    if op.column.unique:
                        _refuse_one_value_for_unique(key, fills[key], _count(connection, live_table, schema))
                    rewritten.extend(_filled_add(group, op, literal))
                    continue
                rows = _count(connection, live_table, schema)
                if rows:
                    unfilled.append(_Unfilled(table, op.column.name, rows, True, _hint(op.column)))
            elif (
                isinstance(op, ops.AlterColumnOp)
                and op.modify_nullable is False
                and op.existing_nullable is not False
            ):
                name = op.modify_name or op.column_name
                live_column = live_columns.get(op.column_name, op.column_name)
                key = next((k for k in (f"{table}.{name}", f"{table}.{op.column_name}") if k in fills), None)
                quoted = preparer.quote(live_column)
                if key is not None:
                    used.add(key)
                    type_ = op.modify_type or op.existing_type or sa.String()
                    literal = sql_literal(fills[key], type_, dialect, key)
                    model = _model_column(ctx, table, schema, name)
                    if model is not None and model.unique:
                        _refuse_one_value_for_unique(
                            key, fills[key], _count(connection, live_table, schema, f"{quoted} IS NULL")
                        )
                    target = preparer.quote(live_table)
                    if schema:
                        target = f"{preparer.quote_schema(schema)}.{target}"
                    # First in the script: the names are the live ones, before any rename of this migration.
                    updates.append(
                        ops.ExecuteSQLOp(
                            text_safe(f"UPDATE {target} SET {quoted} = {literal} WHERE {quoted} IS NULL")
                        )
                    )
                else:
                    rows = _count(connection, live_table, schema, f"{quoted} IS NULL")
                    if rows:
                        model = _model_column(ctx, table, schema, name)
                        unfilled.append(_Unfilled(table, name, rows, False, _hint(model)))
            rewritten.append(op)
        group.ops[:] = rewritten
    if unfilled:
        raise NotNullError(refusal_message(unfilled))
    unused = sorted(set(fills) - used)
    if unused and ctx.migration_context.opts.get("upgrade_token", "upgrades") == "upgrades":
        raise UserInputError(
            f"--fill {unused[0]}=...: this migration neither adds {unused[0]} as a NOT NULL column "
            f"without a server default nor makes it NOT NULL; check the table and column names "
            f"(the models' names); nothing was written."
        )
    upgrade.ops[:0] = updates
