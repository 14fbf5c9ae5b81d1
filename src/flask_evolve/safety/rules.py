"""The risk rules: small pure functions over Alembic operations that say what a migration may break."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import types as sqltypes

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation
    from sqlalchemy.engine import Connection

#: Severities, weakest first; ``--fail-on`` compares against this order.
SEVERITIES = ("notice", "warning", "error")


@dataclass(frozen=True)
class ProbeResult:
    """What a look at the live data adds to a finding.

    :param detail: a sentence appended to the finding's message.
    :param resolved: the data proves the risk absent (e.g. a validated CHECK
        already guarantees NOT NULL), so the finding is dropped.
    """

    detail: str | None = None
    resolved: bool = False


Probe = Callable[["Connection"], ProbeResult]


@dataclass(frozen=True)
class Finding:
    """One risk found in one operation."""

    rule: str
    severity: str
    table: str
    message: str
    column: str | None = None
    revision: str | None = None
    probe: Probe | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": RULES[self.rule].name,
            "severity": self.severity,
            "table": self.table,
            "column": self.column,
            "revision": self.revision,
            "message": self.message,
        }


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know besides the operation itself.

    :param dialect: the target database's dialect name (``sqlite``, ``postgresql`` …).
    :param new_tables: tables created earlier in the same migration; they hold
        no rows yet, so data and locking rules do not apply to them.
    :param filled: ``(table, column)`` pairs whose NULLs an earlier ``UPDATE ... SET
        column = ... WHERE column IS NULL`` of the migration fills (``migrate --fill``).
    :param archived: what an earlier op of the migration keeps in the archive for the
        downgrade: ``(table, column)`` for dropped columns, ``(table, None)`` for a dropped table.
    """

    dialect: str
    new_tables: frozenset[str] = frozenset()
    filled: frozenset[tuple[str, str]] = frozenset()
    archived: frozenset[tuple[str, str | None]] = frozenset()


@dataclass(frozen=True)
class Hit:
    """What a rule's check returns when its operation is risky; the rule adds its ID and severity."""

    message: str
    column: str | None = None
    probe: Probe | None = None


Check = Callable[[Any, RuleContext], "Hit | None"]


@dataclass(frozen=True)
class Rule:
    """A documented rule: stable ID, short name, severity, and why it matters.

    :param on: the names of the Alembic operation classes it looks at.
    :param dialects: the databases it applies to (empty: all).
    :param judge: looks at one operation of those classes, on a table that
        existed before the migration, and says what is risky about it (or None).
    """

    id: str
    name: str
    severity: str
    category: str
    on: tuple[str, ...]
    judge: Check
    doc: str
    dialects: tuple[str, ...] = ()

    def check(self, operation: MigrateOperation, ctx: RuleContext) -> list[Finding]:
        """The rule's findings on ``operation`` (none or one)."""
        from alembic.operations import ops

        from flask_evolve.runtime import archive_ops

        if self.dialects and ctx.dialect not in self.dialects:
            return []
        classes = tuple(getattr(ops, name, None) or getattr(archive_ops, name) for name in self.on)
        if not isinstance(operation, classes) or getattr(operation, "on", "upgrade") != "upgrade":
            return []
        table = _table_of(operation)
        # A table created earlier in the same migration holds no rows and no readers yet.
        if table in ctx.new_tables:
            return []
        hit = self.judge(operation, ctx)
        if hit is None:
            return []
        return [Finding(self.id, self.severity, table, hit.message, column=hit.column, probe=hit.probe)]


RULES: dict[str, Rule] = {}


def rule(
    id: str,
    name: str,
    severity: str,
    category: str,
    doc: str,
    *,
    on: tuple[str, ...],
    dialects: tuple[str, ...] = (),
) -> Callable[[Check], Check]:
    """Register the decorated function as the judge of rule ``id``."""

    def register(judge: Check) -> Check:
        RULES[id] = Rule(id, name, severity, category, on, judge, doc, dialects)
        return judge

    return register


# -- reading the operations -----------------------------------------------------------------


def flatten(operations: Iterable[MigrateOperation]) -> Iterator[MigrateOperation]:
    """Every leaf operation, with the per-table groups autogenerate makes opened up."""
    from alembic.operations import ops

    for operation in operations:
        if isinstance(operation, ops.OpContainer):
            yield from flatten(operation.ops)
        else:
            yield operation


def _table_of(operation: Any) -> str:
    return str(getattr(operation, "table_name", None) or getattr(operation, "source_table", "") or "")


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _quoter(connection: Connection) -> Callable[[str], str]:
    return lambda name: _quote(connection, name)


def _scalar(connection: Connection, sql: str) -> Any:
    return connection.execute(sa.text(sql)).scalar()


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _rows_of(n: int, table: str, singular: str, plural: str) -> str:
    """``1 row of employee has`` / ``3 rows of employee have``."""
    return f"{_rows(n)} of {table} {_verb(n, singular, plural)}"


def table_rows(connection: Connection, table: str) -> int:
    """The number of rows of ``table``: PostgreSQL's estimate when it has one, else an exact count."""
    if connection.dialect.name == "postgresql":
        estimate = _scalar(
            connection,
            f"SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('{_quote(connection, table)}')",
        )
        if estimate is not None and estimate >= 0:
            return int(estimate)
    return int(_scalar(connection, f"SELECT count(*) FROM {_quote(connection, table)}"))


def _size_probe(table: str, what: str) -> Probe:
    def probe(connection: Connection) -> ProbeResult:
        n = table_rows(connection, table)
        return ProbeResult(f"{table} has {_rows(n)}: {what}." if n else f"{table} is empty now.")

    return probe


# -- types ----------------------------------------------------------------------------------

_FAMILIES: tuple[tuple[type[Any], str], ...] = (
    (sqltypes.Boolean, "boolean"),
    (sqltypes.Integer, "integer"),
    (sqltypes.Numeric, "numeric"),
    (sqltypes.DateTime, "datetime"),
    (sqltypes.Date, "date"),
    (sqltypes.Time, "time"),
    (sqltypes.Interval, "interval"),
    (sqltypes.Enum, "enum"),
    (sqltypes.String, "string"),
    (sqltypes.LargeBinary, "binary"),
    (sqltypes.JSON, "json"),
    (sqltypes.Uuid, "uuid"),
)
_INTEGER_RANK = ((sqltypes.SmallInteger, 1), (sqltypes.BigInteger, 3), (sqltypes.Integer, 2))


def _family(type_: Any) -> str:
    type_ = sqltypes.to_instance(type_)
    for cls, name in _FAMILIES:
        if isinstance(type_, cls):
            return name
    return type(type_).__name__.lower()


def _integer_rank(type_: Any) -> int:
    for cls, rank in _INTEGER_RANK:
        if isinstance(type_, cls):
            return rank
    return 0


def _string_length(type_: Any) -> float:
    length = getattr(type_, "length", None)
    return float("inf") if length is None else float(length)


def narrowing(old: Any, new: Any) -> str | None:
    """Why ``old`` → ``new`` can lose data, or None if every old value fits the new type."""
    old, new = sqltypes.to_instance(old), sqltypes.to_instance(new)
    old_family, new_family = _family(old), _family(new)
    if old_family == new_family == "string" and _string_length(new) < _string_length(old):
        return f"{_describe(old)} → {_describe(new)} truncates or rejects longer values"
    if old_family == new_family == "integer" and _integer_rank(new) < _integer_rank(old):
        return f"{_describe(old)} → {_describe(new)} cannot hold the larger values"
    if old_family == new_family == "numeric":
        old_p, new_p = getattr(old, "precision", None), getattr(new, "precision", None)
        old_s, new_s = getattr(old, "scale", None) or 0, getattr(new, "scale", None) or 0
        if (new_p is not None and (old_p is None or new_p - new_s < old_p - old_s)) or new_s < old_s:
            return f"{_describe(old)} → {_describe(new)} loses digits"
        if isinstance(old, sqltypes.Float) != isinstance(new, sqltypes.Float) and not isinstance(
            new, sqltypes.Float
        ):
            return f"{_describe(old)} → {_describe(new)} rounds floating-point values"
    if old_family == "numeric" and new_family == "integer":
        return f"{_describe(old)} → {_describe(new)} drops the fractional part"
    if old_family == "datetime" and new_family == "date":
        return f"{_describe(old)} → {_describe(new)} drops the time of day"
    return None


def _converts(old: Any, new: Any) -> bool:
    """True if the values must be converted between type families (which can fail row by row)."""
    old_family, new_family = _family(old), _family(new)
    if old_family == new_family:
        return False
    # Every value has a text form, and integers fit numeric columns.
    return not (new_family == "string" or (old_family == "integer" and new_family == "numeric"))


def rewrites_on_postgresql(old: Any, new: Any) -> bool:
    """True if ALTER COLUMN ... TYPE rewrites the table (and its indexes) on PostgreSQL."""
    if old is None:
        return True
    old, new = sqltypes.to_instance(old), sqltypes.to_instance(new)
    old_family, new_family = _family(old), _family(new)
    if old_family == new_family == "string" and not isinstance(old, sqltypes.Enum):
        # varchar(n) → varchar(m >= n) and → text are catalog-only changes.
        return _string_length(new) < _string_length(old)
    if old_family == new_family == "numeric" and not isinstance(old, sqltypes.Float):
        old_p, new_p = getattr(old, "precision", None), getattr(new, "precision", None)
        same_scale = (getattr(old, "scale", None) or 0) == (getattr(new, "scale", None) or 0)
        return not (new_p is None or (old_p is not None and new_p >= old_p and same_scale))
    return True


def _describe(type_: Any) -> str:
    try:
        return str(sqltypes.to_instance(type_).compile())
    except Exception:
        return type(type_).__name__


# -- the rules ------------------------------------------------------------------------------


@rule(
    "EV101",
    "drop-table",
    "error",
    "data loss",
    "Dropping a table deletes every row in it. Keep the table until nothing reads it, "
    "or archive its rows first (the default: the archive keeps them for the downgrade only).",
    on=("DropTableOp", "ArchiveTableOp"),
)
def drop_table(operation: Any, ctx: RuleContext) -> Hit:
    from alembic.operations import ops

    table = operation.table_name
    # archive_table moves the table into the archive; archive_rows copies its rows there first.
    kept = not isinstance(operation, ops.DropTableOp) or (table, None) in ctx.archived

    def probe(connection: Connection) -> ProbeResult:
        n = table_rows(connection, table)
        if not n:
            return ProbeResult("The table is empty now.")
        gone = "leave the app (only a downgrade brings them back)" if kept else "will be deleted"
        return ProbeResult(f"{_rows(n)} {gone}.")

    kept_words = ", kept in the archive for the downgrade" if kept else ""
    return Hit(f"drops table {table}{kept_words}", probe=probe)


@rule(
    "EV102",
    "drop-column",
    "error",
    "data loss",
    "Dropping a column deletes its values in every row; unless they were archived first (the default: "
    "kept for the downgrade only), a downgrade brings the column back empty.",
    on=("DropColumnOp",),
)
def drop_column(operation: Any, ctx: RuleContext) -> Hit:
    table, column = operation.table_name, operation.column_name
    kept = (table, column) in ctx.archived
    fate = "that leaves the app (only a downgrade brings it back)" if kept else "that will be lost"

    def probe(connection: Connection) -> ProbeResult:
        q = _quote(connection, column)
        n = _scalar(connection, f"SELECT count(*) FROM {_quote(connection, table)} WHERE {q} IS NOT NULL")
        return ProbeResult(f"{_rows_of(n, table, 'holds', 'hold')} a value {fate}." if n else None)

    kept_words = ", kept in the archive for the downgrade" if kept else ""
    return Hit(f"drops column {table}.{column}{kept_words}", column, probe)


@rule(
    "EV103",
    "narrowing-type",
    "error",
    "data loss",
    "Changing a column to a smaller type (shorter VARCHAR, smaller integer, fewer digits, "
    "DATETIME to DATE) truncates values, or fails on the rows that do not fit.",
    on=("AlterColumnOp",),
)
def narrowing_type(operation: Any, ctx: RuleContext) -> Hit | None:
    if operation.modify_type is None or operation.existing_type is None:
        return None
    why = narrowing(operation.existing_type, operation.modify_type)
    if why is None:
        return None
    table, column = operation.table_name, operation.column_name
    new_length = getattr(sqltypes.to_instance(operation.modify_type), "length", None)
    probe: Probe | None = None
    if _family(operation.modify_type) == "string" and new_length is not None:

        def probe(connection: Connection) -> ProbeResult:
            q = _quote(connection, column)
            n = _scalar(
                connection,
                f"SELECT count(*) FROM {_quote(connection, table)} WHERE length({q}) > {int(new_length)}",
            )
            return ProbeResult(
                f"{_rows_of(n, table, 'has', 'have')} a {column} longer than {new_length}." if n else None
            )

    return Hit(f"{table}.{column}: {why}", column, probe)


def _count_nulls(table: str, column: str) -> Probe:
    def probe(connection: Connection) -> ProbeResult:
        q = _quote(connection, column)
        n = _scalar(connection, f"SELECT count(*) FROM {_quote(connection, table)} WHERE {q} IS NULL")
        detail = f"{_rows_of(n, table, 'has', 'have')} NULL {column}: this upgrade will fail."
        return ProbeResult(detail if n else None)

    return probe


def _sets_not_null(operation: Any) -> bool:
    return bool(operation.modify_nullable is False and operation.existing_nullable is not False)


@rule(
    "EV201",
    "set-not-null",
    "warning",
    "may fail on existing data",
    "SET NOT NULL fails if any row holds NULL, and adding a NOT NULL column without a server "
    "default fails if the table has rows. Fill the NULLs (or give a server_default) first.",
    on=("AlterColumnOp", "AddColumnOp"),
)
def set_not_null(operation: Any, ctx: RuleContext) -> Hit | None:
    from alembic.operations import ops

    table = operation.table_name
    if isinstance(operation, ops.AlterColumnOp):
        if not _sets_not_null(operation):
            return None
        column = operation.column_name
        if (table, column) in ctx.filled:
            return None
        return Hit(f"sets {table}.{column} NOT NULL", column, _count_nulls(table, column))
    new = operation.column
    if new.nullable is not False or new.server_default is not None or new.primary_key:
        return None

    def probe(connection: Connection) -> ProbeResult:
        n = table_rows(connection, table)
        if n:
            return ProbeResult(f"{table} has {_rows(n)}: this upgrade will fail.")
        return ProbeResult(
            f"{table} is empty here; where it has rows this upgrade fails "
            f"(`migrate --fill {table}.{new.name}=VALUE` gives them a value)."
        )

    return Hit(f"adds NOT NULL column {table}.{new.name} without a server default", new.name, probe)


def _column_names(columns: Sequence[Any]) -> list[str] | None:
    names = [c if isinstance(c, str) else getattr(c, "name", None) for c in columns]
    return None if any(not isinstance(n, str) for n in names) else names  # type: ignore[return-value]


def _repeated_values(connection: Connection, table: str, columns: Sequence[str]) -> int:
    """How many values of ``table(columns)`` more than one row holds (NULLs never count as repeats)."""
    cols = ", ".join(_quote(connection, c) for c in columns)
    not_null = " AND ".join(f"{_quote(connection, c)} IS NOT NULL" for c in columns)
    return _scalar(
        connection,
        f"SELECT count(*) FROM (SELECT {cols} FROM {_quote(connection, table)} "
        f"WHERE {not_null} GROUP BY {cols} HAVING count(*) > 1) AS duplicates",
    )


def count_repeated(engine: Any, table: str, columns: Sequence[str]) -> int | None:
    """:func:`_repeated_values` on its own connection, for an error's advice: ``None`` when the
    database cannot tell now (the columns do not exist outside the failed migration)."""
    try:
        with engine.connect() as connection:
            return _repeated_values(connection, table, columns) or None
    except Exception:  # advice only: never hide the error being explained
        return None


@rule(
    "EV202",
    "add-unique",
    "warning",
    "may fail on existing data",
    "Adding a UNIQUE constraint or unique index fails if existing rows already repeat a value.",
    on=("CreateIndexOp", "CreateUniqueConstraintOp"),
)
def add_unique(operation: Any, ctx: RuleContext) -> Hit | None:
    from alembic.operations import ops

    if isinstance(operation, ops.CreateIndexOp) and not operation.unique:
        return None
    table = operation.table_name
    names = _column_names(list(operation.columns))
    probe: Probe | None = None
    if names:

        def probe(connection: Connection) -> ProbeResult:
            n = _repeated_values(connection, table, names)
            repeated = f"{n} value(s) of {table}({', '.join(names)}) are repeated: this upgrade will fail."
            return ProbeResult(repeated if n else None)

    shown = ", ".join(names) if names else "an expression"
    return Hit(f"adds a unique constraint on {table}({shown})", probe=probe)


@rule(
    "EV203",
    "add-foreign-key",
    "warning",
    "may fail on existing data",
    "Adding a FOREIGN KEY fails if existing rows point at rows that do not exist.",
    on=("CreateForeignKeyOp",),
)
def add_foreign_key(operation: Any, ctx: RuleContext) -> Hit:
    table, referent = operation.source_table, operation.referent_table
    local, remote = list(operation.local_cols), list(operation.remote_cols)

    def probe(connection: Connection) -> ProbeResult:
        q = _quoter(connection)
        present = " AND ".join(f"s.{q(c)} IS NOT NULL" for c in local)
        match = " AND ".join(f"r.{q(rc)} = s.{q(lc)}" for lc, rc in zip(local, remote, strict=False))
        n = _scalar(
            connection,
            f"SELECT count(*) FROM {q(table)} s WHERE {present} "
            f"AND NOT EXISTS (SELECT 1 FROM {q(referent)} r WHERE {match})",
        )
        orphans = f"{_rows_of(n, table, 'points', 'point')} at no {referent} row: this upgrade will fail."
        return ProbeResult(orphans if n else None)

    arrow = f"{table}({', '.join(local)}) → {referent}({', '.join(remote)})"
    return Hit(f"adds a foreign key {arrow}", probe=probe)


@rule(
    "EV204",
    "type-conversion",
    "warning",
    "may fail on existing data",
    "Converting a column between type families (text to integer, string to date …) fails on "
    "the first value that does not convert; PostgreSQL also needs a USING clause.",
    on=("AlterColumnOp",),
)
def type_conversion(operation: Any, ctx: RuleContext) -> Hit | None:
    old, new = operation.existing_type, operation.modify_type
    if new is None or old is None or not _converts(old, new):
        return None
    table, column = operation.table_name, operation.column_name
    pattern = _NUMBER_PATTERNS.get(_family(new))
    probe = _size_probe(table, "each value must convert")
    if pattern is not None and _family(old) == "string":

        def probe(connection: Connection) -> ProbeResult:
            if connection.dialect.name != "postgresql":
                return _size_probe(table, "each value must convert")(connection)
            q = _quote(connection, column)
            n = _scalar(
                connection,
                f"SELECT count(*) FROM {_quote(connection, table)} WHERE {q} IS NOT NULL "
                f"AND {q}::text !~ '{pattern}'",
            )
            rows = _rows_of(n, table, "has", "have")
            detail = f"{rows} a value of {column} that is not {_family(new)}: this upgrade will fail."
            return ProbeResult(detail if n else None)

    return Hit(f"converts {table}.{column} from {_describe(old)} to {_describe(new)}", column, probe)


@rule(
    "EV205",
    "add-check",
    "warning",
    "may fail on existing data",
    "Adding a CHECK constraint fails if existing rows break its condition.",
    on=("CreateCheckConstraintOp",),
)
def add_check(operation: Any, ctx: RuleContext) -> Hit:
    table, name = operation.table_name, operation.constraint_name
    condition = operation.condition

    def probe(connection: Connection) -> ProbeResult:
        text = (
            condition
            if isinstance(condition, str)
            else str(condition.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        )
        # NULL is no violation: NOT (NULL) is not true, so such rows are not counted.
        n = _scalar(connection, f"SELECT count(*) FROM {_quote(connection, table)} WHERE NOT ({text})")
        broken = f"{_rows_of(n, table, 'breaks', 'break')} it ({text}): this upgrade will fail."
        return ProbeResult(broken if n else None)

    return Hit(f"adds CHECK {name or '(unnamed)'} on {table}", probe=probe)


_NUMBER_PATTERNS = {
    "integer": r"^\s*[-+]?[0-9]+\s*$",
    "numeric": r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$",
}


_POSTGRESQL = ("postgresql",)


@rule(
    "EV301",
    "index-without-concurrently",
    "notice",
    "locks a large table on PostgreSQL",
    "CREATE INDEX blocks writes to the table until the index is built. On a large table use "
    "op.create_index(..., postgresql_concurrently=True) inside op.get_context().autocommit_block().",
    on=("CreateIndexOp",),
    dialects=_POSTGRESQL,
)
def index_without_concurrently(operation: Any, ctx: RuleContext) -> Hit | None:
    if operation.kw.get("postgresql_concurrently"):
        return None
    table = operation.table_name
    return Hit(
        f"creates index {operation.index_name} on {table} without CONCURRENTLY (blocks writes)",
        probe=_size_probe(table, "writes wait until the index is built"),
    )


@rule(
    "EV302",
    "rewriting-type-change",
    "notice",
    "locks a large table on PostgreSQL",
    "Most ALTER COLUMN ... TYPE changes rewrite the whole table and its indexes under an ACCESS "
    "EXCLUSIVE lock (widening a VARCHAR or NUMERIC, or VARCHAR to TEXT, does not).",
    on=("AlterColumnOp",),
    dialects=_POSTGRESQL,
)
def rewriting_type_change(operation: Any, ctx: RuleContext) -> Hit | None:
    if operation.modify_type is None:
        return None
    if not rewrites_on_postgresql(operation.existing_type, operation.modify_type):
        return None
    table, column = operation.table_name, operation.column_name
    return Hit(
        f"changing the type of {table}.{column} rewrites the table under an exclusive lock",
        column,
        _size_probe(table, "reads and writes wait for the rewrite"),
    )


@rule(
    "EV303",
    "foreign-key-without-not-valid",
    "notice",
    "locks a large table on PostgreSQL",
    "ADD FOREIGN KEY scans the whole table while blocking writes to both tables. Add it NOT VALID "
    "(op.execute('ALTER TABLE ... ADD CONSTRAINT ... NOT VALID')) and "
    "VALIDATE CONSTRAINT in a later migration.",
    on=("CreateForeignKeyOp",),
    dialects=_POSTGRESQL,
)
def foreign_key_without_not_valid(operation: Any, ctx: RuleContext) -> Hit | None:
    if operation.kw.get("postgresql_not_valid"):
        return None
    table = operation.source_table
    name = f" {operation.constraint_name}" if operation.constraint_name else ""
    return Hit(
        f"adds foreign key{name} on {table} without NOT VALID (blocks writes while every row is checked)",
        probe=_size_probe(table, "writes wait while every row is checked"),
    )


@rule(
    "EV304",
    "set-not-null-without-check",
    "notice",
    "locks a large table on PostgreSQL",
    "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, unless a validated "
    "CHECK (column IS NOT NULL) constraint already proves it (PostgreSQL 12+).",
    on=("AlterColumnOp",),
    dialects=_POSTGRESQL,
)
def set_not_null_without_check(operation: Any, ctx: RuleContext) -> Hit | None:
    if not _sets_not_null(operation):
        return None
    table, column = operation.table_name, operation.column_name

    def probe(connection: Connection) -> ProbeResult:
        definitions = connection.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = to_regclass(:t) AND contype = 'c' AND convalidated"
            ),
            {"t": _quote(connection, table)},
        ).scalars()
        wanted = f"{column} IS NOT NULL".lower()
        if any(wanted in d.lower().replace('"', "") for d in definitions):
            return ProbeResult(resolved=True)
        return _size_probe(table, "reads and writes wait for the scan")(connection)

    return Hit(
        f"sets {table}.{column} NOT NULL without a validated CHECK (scans under an exclusive lock)",
        column,
        probe,
    )


@rule(
    "EV401",
    "breaks-running-app",
    "notice",
    "breaks the running app version",
    "Renaming or dropping a table or column breaks the app version still running during a "
    "deploy. Deploy code that stops using it first, then migrate (expand, then contract).",
    on=("DropColumnOp", "DropTableOp", "RenameTableOp", "AlterColumnOp", "ArchiveTableOp"),
)
def breaks_running_app(operation: Any, ctx: RuleContext) -> Hit | None:
    from alembic.operations import ops

    table = operation.table_name
    if isinstance(operation, ops.DropColumnOp):
        what = f"drops column {table}.{operation.column_name}"
    elif not isinstance(operation, ops.AlterColumnOp | ops.RenameTableOp):
        what = f"drops table {table}"  # drop_table, or archive_table (renamed into the archive)
    elif isinstance(operation, ops.RenameTableOp):
        what = f"renames table {table} to {operation.new_table_name}"
    elif operation.modify_name:
        what = f"renames column {table}.{operation.column_name} to {operation.modify_name}"
    else:
        return None
    return Hit(f"{what}: the running app version may still use it")


# -- running the rules ----------------------------------------------------------------------

#: ``UPDATE t SET c = <value> WHERE c IS NULL``, as ``migrate --fill`` writes it before SET NOT NULL.
_FILL_NULLS = re.compile(
    r'\s*UPDATE\s+(?:\S+\.)?("[^"]+"|\S+)\s+SET\s+("[^"]+"|\S+)\s*=.*\sWHERE\s+\2\s+IS\s+NULL\s*$',
    re.IGNORECASE | re.DOTALL,
)


def filled_column(operation: Any) -> tuple[str, str] | None:
    """(table, column) whose NULLs ``operation`` fills, when it is ``migrate --fill``'s UPDATE."""
    sql = getattr(operation, "sqltext", None)
    fill = _FILL_NULLS.match(sql) if isinstance(sql, str) else None
    return (fill.group(1).strip('"'), fill.group(2).strip('"')) if fill else None


def findings_per_operation(
    operations: Iterable[MigrateOperation],
    dialect: str,
    *,
    revision: str | None = None,
    ignore: Iterable[str] = (),
) -> list[tuple[MigrateOperation, list[Finding]]]:
    """Run every rule over each leaf operation, in order; pair each leaf with its findings.

    :param dialect: the target database's dialect name.
    :param revision: stamped on each finding, for lint and status.
    :param ignore: rule IDs to skip.
    """
    from alembic.operations import ops

    from flask_evolve.runtime.archive_ops import ArchiveColumnsOp, ArchiveRowsOp, ArchiveValuesOp

    skipped = set(ignore)
    pairs: list[tuple[MigrateOperation, list[Finding]]] = []
    new_tables: set[str] = set()
    filled: set[tuple[str, str]] = set()
    archived: set[tuple[str, str | None]] = set()
    for operation in flatten(operations):
        ctx = RuleContext(dialect, frozenset(new_tables), frozenset(filled), frozenset(archived))
        found = [
            replace(f, revision=revision)
            for rule_ in RULES.values()
            if rule_.id not in skipped
            for f in rule_.check(operation, ctx)
        ]
        pairs.append((operation, found))
        if isinstance(operation, ops.CreateTableOp):
            new_tables.add(operation.table_name)
        if getattr(operation, "on", None) == "upgrade":
            if isinstance(operation, ArchiveColumnsOp) and not isinstance(operation, ArchiveValuesOp):
                archived.update((operation.table_name, column) for column in operation.columns)
            elif isinstance(operation, ArchiveRowsOp):
                archived.add((operation.table_name, None))
        fill = filled_column(operation) if isinstance(operation, ops.ExecuteSQLOp) else None
        if fill:
            filled.add(fill)
    return pairs


def check_operations(
    operations: Iterable[MigrateOperation],
    dialect: str,
    *,
    revision: str | None = None,
    ignore: Iterable[str] = (),
) -> list[Finding]:
    """Every finding of every rule over ``operations`` (an op tree or a flat list), in order."""
    pairs = findings_per_operation(operations, dialect, revision=revision, ignore=ignore)
    return [f for _, found in pairs for f in found]


#: A count that takes longer than this (on a huge table) is given up; the finding stays, without a count.
PROBE_TIMEOUT_MS = 3000


def _run_probe(probe: Probe, connection: Connection) -> ProbeResult:
    if connection.dialect.name != "postgresql":
        return probe(connection)
    if not connection.in_transaction():
        with connection.begin():
            return _run_probe(probe, connection)
    with connection.begin_nested():
        previous = connection.execute(sa.text("SHOW statement_timeout")).scalar()
        connection.execute(
            sa.text("SELECT set_config('statement_timeout', :t, true)"), {"t": str(PROBE_TIMEOUT_MS)}
        )
        try:
            return probe(connection)
        finally:
            connection.execute(sa.text("SELECT set_config('statement_timeout', :t, true)"), {"t": previous})


def measure(findings: Iterable[Finding], connection: Connection) -> list[Finding]:
    """Look at the live data: add row counts to findings, drop the ones the data proves harmless.

    A probe that fails (the table does not exist yet, a permission is missing) leaves its
    finding as it was; each runs in a SAVEPOINT on PostgreSQL so one failure does not spoil
    the connection.
    """
    measured: list[Finding] = []
    for finding in findings:
        if finding.probe is None:
            measured.append(finding)
            continue
        try:
            result = _run_probe(finding.probe, connection)
        except Exception:
            measured.append(finding)
            continue
        if result.resolved:
            continue
        message = f"{finding.message}: {result.detail}" if result.detail else finding.message
        measured.append(replace(finding, message=message))
    return measured


def at_or_above(findings: Iterable[Finding], level: str) -> list[Finding]:
    """The findings whose severity is ``level`` or worse."""
    floor = SEVERITIES.index(level)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]
