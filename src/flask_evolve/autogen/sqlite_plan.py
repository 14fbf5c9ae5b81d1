"""SQLite planning: native ALTER TABLE where SQLite can, else one exact rebuild per table per migration."""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import render, renderers
from alembic.operations import ops
from sqlalchemy.schema import CreateIndex, CreateTable

from flask_evolve.autogen.batch import BatchTableOps
from flask_evolve.autogen.comparators import _canonical_sql
from flask_evolve.autogen.guards import CheckForeignKeysOp
from flask_evolve.runtime.sql_text import plain_sql, text_safe

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

    from flask_evolve.autogen.pipeline import RewriteContext

#: The SQLite library Python links against; the migration runs with the same one.
SQLITE_VERSION = sqlite3.sqlite_version_info
RENAME_COLUMN_VERSION = (3, 25, 0)
DROP_COLUMN_VERSION = (3, 35, 0)
REBUILD_PREFIX = "_evolve_new_"


class NativeTableOps(ops.ModifyTableOps):
    """Changes SQLite makes in place (``ALTER TABLE``): rendered as plain ops, never as a batch."""


class RebuildTableOps(ops.ModifyTableOps):
    """Changes SQLite cannot make in place: the table is rebuilt once, to an exact ``CREATE TABLE``.

    ``ops`` keeps the changes themselves (for readers of the op tree); ``statements``
    is the SQL the script runs.
    """

    def __init__(self, table_name: str, ops_: list[ops.MigrateOperation], statements: list[str]):
        super().__init__(table_name, ops_)
        self.statements = statements


_BATCH_NATIVE = (ops.AddColumnOp, ops.CreateIndexOp, ops.DropIndexOp)


@renderers.dispatch_for(NativeTableOps)
def _render_native(autogen_context: AutogenContext, op: NativeTableOps) -> Any:
    if autogen_context.opts.get("render_as_batch") and all(isinstance(o, _BATCH_NATIVE) for o in op.ops):
        # Alembic's batch mode runs these in place on SQLite too: keep Flask-Migrate's familiar shape.
        plain = ops.ModifyTableOps(op.table_name, op.ops, schema=op.schema)
        return renderers.dispatch(plain)(autogen_context, plain)
    lines: list[str] = []
    for inner in op.ops:
        lines.extend(render.render_op(autogen_context, inner))
    return lines


def _python_string(sql: str) -> str:
    if "\n" in sql and '"""' not in sql and "\\" not in sql and not sql.endswith('"'):
        return '"""' + sql + '"""'
    return repr(sql)


@renderers.dispatch_for(RebuildTableOps)
def _render_rebuild(autogen_context: AutogenContext, op: RebuildTableOps) -> list[str]:
    changes = ", ".join(sorted({type(inner).__name__.removesuffix("Op") for inner in op.ops}))
    lines = [
        f"# SQLite cannot make these changes to {op.table_name!r} in place ({changes}):",
        "# rebuild it once, copying every row and restoring its indexes, triggers and views.",
    ]
    # A rename's own comment (why it is assumed) survives its being folded into the rebuild.
    lines.extend(f"# flask-evolve: {inner.comment}" for inner in op.ops if getattr(inner, "comment", ""))
    # op.execute() reads its string as text(): a default or --fill value like ':x' must not bind.
    lines.extend(f"op.execute({_python_string(text_safe(sql))})" for sql in op.statements)
    return lines


@dataclass
class TableShape:
    """What a rebuild needs to know about one state of a table."""

    name: str
    create_sql: str
    columns: list[str]
    index_sql: list[str] = field(default_factory=list)

    @property
    def autoincrement(self) -> bool:
        return bool(re.search(r"\bAUTOINCREMENT\b", self.create_sql, re.IGNORECASE))


@dataclass
class SchemaObject:
    kind: str
    name: str
    table: str
    sql: str


def _schema_objects(connection: sa.Connection) -> list[SchemaObject]:
    rows = connection.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
    ).fetchall()
    return [SchemaObject(*row) for row in rows]


def _word(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$])[\"`\[]?" + re.escape(name) + r"[\"`\]]?(?![\w$])", re.IGNORECASE)


def _live_shape(objects: list[SchemaObject], connection: sa.Connection, name: str) -> TableShape | None:
    create = next((o.sql for o in objects if o.kind == "table" and o.name == name), None)
    if create is None:
        return None
    quoted = connection.dialect.identifier_preparer.quote(name)
    columns = [row[1] for row in connection.exec_driver_sql(f"PRAGMA table_info({quoted})")]
    indexes = [o.sql for o in objects if o.kind == "index" and o.table == name]
    return TableShape(name, create, columns, indexes)


def _metadata_shape(table: sa.Table, dialect: sa.Dialect) -> TableShape:
    create = str(CreateTable(table).compile(dialect=dialect)).strip()
    indexes = [
        str(CreateIndex(index).compile(dialect=dialect)).strip()
        for index in sorted(table.indexes, key=lambda i: str(i.name))
    ]
    return TableShape(table.name, create, [c.name for c in table.columns], indexes)


def _dependents(objects: list[SchemaObject], name: str) -> list[SchemaObject]:
    """Triggers and views that mention the table: SQLite checks them when the rebuilt table is renamed."""
    pattern = _word(name)
    return [
        o
        for o in objects
        if o.kind in ("trigger", "view") and (o.table == name or pattern.search(o.sql.split(" AS ", 1)[-1]))
    ]


_CREATE_TABLE = re.compile(
    r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(\"(?:[^\"]|\"\")+\"|\[[^\]]+\]|`[^`]+`|[\w$]+)",
    re.IGNORECASE,
)


def _renamed_create(create_sql: str, new_name: str, quote: Any) -> str:
    return _CREATE_TABLE.sub(f"CREATE TABLE {quote(new_name)}", create_sql, count=1)


def _renamed_index(index_sql: str, old: str, new: str, quote: Any) -> str:
    if old == new:
        return index_sql
    return re.sub(
        r"(\bON\s+)[\"`\[]?" + re.escape(old) + r"[\"`\]]?(\s*\()",
        lambda m: f"{m.group(1)}{quote(new)}{m.group(2)}",
        index_sql,
        count=1,
        flags=re.IGNORECASE,
    )


def _default_sql(column: sa.Column[Any], dialect: sa.Dialect) -> str | None:
    default = column.server_default
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    # Alembic renders a server default as sa.text(<compiled SQL>), so both are text() source,
    # which may escape colons (see text_safe); the rebuild's statements are plain SQL.
    if isinstance(arg, sa.TextClause):
        return plain_sql(arg.text)
    return plain_sql(str(arg.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))


def _is_constant_default(column: sa.Column[Any], dialect: sa.Dialect) -> bool:
    sql = _default_sql(column, dialect)
    if sql is None:
        return not isinstance(column.server_default, sa.Computed)
    canonical = _canonical_sql(sql)
    return canonical is not None and canonical[0] == "literal"


def _top_level_items(create_sql: str) -> list[str]:
    """The column definitions and table constraints of a CREATE TABLE, split at top-level commas."""
    body = create_sql[create_sql.index("(") + 1 : create_sql.rindex(")")]
    items, depth, quoted, start = [], 0, "", 0
    for i, char in enumerate(body):
        if quoted:
            quoted = "" if char == quoted else quoted
        elif char in "'\"`[":
            quoted = "]" if char == "[" else char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    items.append(body[start:].strip())
    return items


def _droppable(column: str, source: TableShape, dependents: Iterable[SchemaObject]) -> bool:
    """Whether ``ALTER TABLE DROP COLUMN`` works: SQLite refuses a column that any key,
    index, constraint, trigger or view uses. Conservatively, the name must appear
    nowhere but in its own plain definition."""
    if SQLITE_VERSION < DROP_COLUMN_VERSION:
        return False
    pattern = _word(column)
    mentions = [item for item in _top_level_items(source.create_sql) if pattern.search(item)]
    if len(mentions) != 1 or len(pattern.findall(mentions[0])) != 1 or not pattern.match(mentions[0]):
        return False
    if re.search(r"\b(PRIMARY|UNIQUE|REFERENCES|CHECK|GENERATED|AS)\b", mentions[0], re.IGNORECASE):
        return False
    return not any(pattern.search(sql) for sql in source.index_sql) and not any(
        pattern.search(o.sql) for o in dependents
    )


def _only_rename(op: ops.AlterColumnOp) -> bool:
    return (
        op.modify_name is not None
        and op.modify_type is None
        and op.modify_nullable is None
        and op.modify_server_default is False
        and op.modify_comment is False
    )


def _is_native(
    op: ops.MigrateOperation, source: TableShape | None, dependents: list[SchemaObject], dialect: sa.Dialect
) -> bool:
    if isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
        return True
    if isinstance(op, ops.AddColumnOp):
        column = op.column
        if column.primary_key or column.unique or isinstance(column.server_default, sa.Computed):
            return False
        if not _is_constant_default(column, dialect):
            return False
        has_default = column.server_default is not None
        if not column.nullable and not has_default:
            return False
        return not (column.foreign_keys and has_default)
    if isinstance(op, ops.AlterColumnOp):
        return _only_rename(op) and SQLITE_VERSION >= RENAME_COLUMN_VERSION
    if isinstance(op, ops.DropColumnOp):
        return source is not None and _droppable(op.column_name, source, dependents)
    return False


def _plannable(op: ops.MigrateOperation) -> bool:
    return (
        isinstance(op, ops.ModifyTableOps)
        and not isinstance(op, (NativeTableOps, RebuildTableOps))
        and bool(op.ops)
    )


def _merge_groups(op_list: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """One ModifyTableOps per table, unless raw SQL, a table rename or a custom op on it sits between two."""
    merged: list[ops.MigrateOperation] = []
    seen: dict[tuple[str | None, str], ops.ModifyTableOps] = {}
    # Table renames met so far, and how many had been met when each seen group was placed.
    renames = 0
    placed_after: dict[tuple[str | None, str], int] = {}
    for op in op_list:
        if isinstance(op, ops.AlterColumnOp) and op.modify_name is not None:
            # A column rename between changes to its table joins them: a rebuild then copies the
            # column under its new name (alone, it stays a native RENAME COLUMN).
            op = ops.ModifyTableOps(op.table_name, [op], schema=op.schema)
        if isinstance(op, ops.RenameTableOp):
            renames += 1
        if _plannable(op):
            key = (op.schema, op.table_name)
            if key in seen:
                seen[key].ops.extend(op.ops)
                if placed_after[key] < renames:
                    # The rebuild makes the table's final shape, which may refer to a table by the
                    # name a rename in between gives it (a foreign key): it runs after that rename.
                    # SQLite's RENAME TABLE has already pointed the old references at the new name.
                    merged.remove(seen[key])
                    merged.append(seen[key])
                    placed_after[key] = renames
                continue
            seen[key] = op
            placed_after[key] = renames
        elif isinstance(op, ops.ExecuteSQLOp) or not type(op).__module__.startswith("alembic."):
            table = None if isinstance(op, ops.ExecuteSQLOp) else getattr(op, "table_name", None)
            if table is None:
                seen.clear()
            else:
                # An op of ours on one table (archive, restore, check) orders only that table's changes.
                seen.pop((getattr(op, "schema", None), table), None)
        merged.append(op)
    return merged


def _copy_select(
    group: ops.ModifyTableOps, source: TableShape, target: TableShape, dialect: sa.Dialect, quote: Any
) -> tuple[list[str], list[str]]:
    renamed_from = {
        op.modify_name: op.column_name
        for op in group.ops
        if isinstance(op, ops.AlterColumnOp) and op.modify_name is not None
    }
    fills = {
        op.column.name: _default_sql(op.column, dialect)
        for op in group.ops
        if isinstance(op, ops.AddColumnOp)
    }
    names, exprs = [], []
    for column in target.columns:
        origin = renamed_from.get(column, column)
        if origin in source.columns:
            names.append(quote(column))
            exprs.append(quote(origin))
        elif fills.get(column) is not None:
            names.append(quote(column))
            exprs.append(fills[column])  # type: ignore[arg-type]
    return names, exprs


def rebuild_statements(
    group: ops.ModifyTableOps,
    source: TableShape,
    target: TableShape,
    dependents: list[SchemaObject],
    dialect: sa.Dialect,
) -> list[str]:
    """The SQL of SQLite's documented 12-step table rebuild, with foreign keys left to the runtime
    (off for the whole migration, checked after)."""
    quote = dialect.identifier_preparer.quote
    name = group.table_name
    temp = REBUILD_PREFIX + name
    statements = [f"DROP {o.kind.upper()} IF EXISTS {quote(o.name)}" for o in dependents]
    statements.append(_renamed_create(target.create_sql, temp, quote))
    names, exprs = _copy_select(group, source, target, dialect, quote)
    if names:
        statements.append(
            f"INSERT INTO {quote(temp)} ({', '.join(names)}) SELECT {', '.join(exprs)} FROM {quote(name)}"
        )
    if source.autoincrement and target.autoincrement:
        # Keep AUTOINCREMENT's high-water mark, so ids of deleted rows are never reused.
        statements.append(f"DELETE FROM sqlite_sequence WHERE name = '{temp}'")
        statements.append(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT '{temp}', seq FROM sqlite_sequence "
            f"WHERE name = '{name}'"
        )
    statements.append(f"DROP TABLE {quote(name)}")
    statements.append(f"ALTER TABLE {quote(temp)} RENAME TO {quote(name)}")
    statements.extend(_renamed_index(sql, target.name, name, quote) for sql in target.index_sql)
    statements.extend(o.sql for o in dependents if o.kind == "trigger")
    statements.extend(o.sql for o in dependents if o.kind == "view")
    return statements


def _unmodelled_indexes(
    objects: list[SchemaObject], connection: sa.Connection, live_name: str, table: sa.Table
) -> list[str]:
    """Indexes SQLAlchemy cannot reflect (on expressions), so autogenerate never sees them: keep them."""
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", sa.exc.SAWarning
        )  # "Skipped unsupported reflection of expression-based index"
        reflected = {index["name"] for index in sa.inspect(connection).get_indexes(live_name)}
    modelled = {str(index.name) for index in table.indexes}
    return [
        o.sql
        for o in objects
        if o.kind == "index" and o.table == live_name and o.name not in reflected | modelled
    ]


_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\"(?:[^\"]|\"\")+\"|[\w$]+)",
    re.IGNORECASE,
)


def _index_name(sql: str) -> str | None:
    match = _CREATE_INDEX.match(sql)
    return match.group(1).strip('"').replace('""', '"') if match else None


def _created_indexes(op_list: Iterable[ops.MigrateOperation]) -> set[str]:
    found = set()
    for op in op_list:
        for inner in op.ops if isinstance(op, ops.ModifyTableOps) else [op]:
            if isinstance(inner, ops.CreateIndexOp):
                found.add(str(inner.index_name))
    return found



def _later_changes(
    merged: list[ops.MigrateOperation], position: int, group: ops.ModifyTableOps
) -> list[ops.ModifyTableOps]:
    """The changes to the same table that the script makes after ``merged[position]``,
    following the table through its renames (a renamed and changed table's downgrade
    rebuilds it under one name and re-creates a constraint under the other)."""
    name, schema = group.table_name, group.schema
    found: list[ops.ModifyTableOps] = []
    for op in merged[position + 1 :]:
        if isinstance(op, ops.RenameTableOp) and (op.table_name, op.schema) == (name, schema):
            name = op.new_table_name
        elif _plannable(op) and (op.table_name, op.schema) == (name, schema):  # type: ignore[attr-defined]
            found.append(op)  # type: ignore[arg-type]
    return found


def _without_constraint(create_sql: str, name: str) -> str | None:
    """The CREATE TABLE without its constraint named ``name``, or None if it has none by that name."""
    pattern = re.compile(r"^CONSTRAINT\s+[\"`\[]?" + re.escape(name) + r"[\"`\]]?\s", re.IGNORECASE)
    items = _top_level_items(create_sql)
    kept = [item for item in items if not pattern.match(item)]
    if len(kept) == len(items):
        return None
    head, tail = create_sql[: create_sql.index("(") + 1], create_sql[create_sql.rindex(")") :]
    return head + "\n\t" + ",\n\t".join(kept) + "\n" + tail


def _undo_in_scratch(
    scratch: sqlite3.Connection, table: str, inner: ops.MigrateOperation, quote: Any
) -> bool:
    """Undo one change on the in-memory copy, the way SQLite would make it; False if it cannot."""
    if isinstance(inner, ops.AlterColumnOp) and _only_rename(inner):
        old, new = quote(inner.column_name), quote(inner.modify_name)
        scratch.execute(f"ALTER TABLE {quote(table)} RENAME COLUMN {new} TO {old}")
    elif isinstance(inner, ops.AddColumnOp) and SQLITE_VERSION >= DROP_COLUMN_VERSION:
        scratch.execute(f"ALTER TABLE {quote(table)} DROP COLUMN {quote(inner.column.name)}")
    elif isinstance(inner, ops.CreateIndexOp):
        scratch.execute(f"DROP INDEX IF EXISTS {quote(str(inner.index_name))}")
    elif isinstance(inner, (ops.CreateForeignKeyOp, ops.AddConstraintOp)) and inner.constraint_name:
        create = scratch.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
        edited = _without_constraint(create, str(inner.constraint_name))
        if edited is None:
            return False
        indexes = [
            row[0]
            for row in scratch.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                (table,),
            )
        ]
        scratch.execute(f"DROP TABLE {quote(table)}")
        scratch.execute(edited)
        for sql in indexes:
            scratch.execute(sql)
    else:
        return False
    return True


def _before_later_changes(
    target: TableShape, later: list[ops.ModifyTableOps], dialect: sa.Dialect
) -> TableShape | None:
    """The table as it must be before the script's later changes to it: ``target`` with those
    undone, last first, by SQLite itself on an in-memory copy (its RENAME COLUMN rewrites every
    mention, in keys, CHECKs and indexes, exactly). None when one of them cannot be undone so."""
    quote = dialect.identifier_preparer.quote
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.execute(target.create_sql)
        for sql in target.index_sql:
            scratch.execute(sql)
        for group in reversed(later):
            for inner in reversed(group.ops):
                if not _undo_in_scratch(scratch, target.name, inner, quote):
                    return None
        create = scratch.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (target.name,)
        ).fetchone()[0]
        indexes = [
            row[0]
            for row in scratch.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY rowid",
                (target.name,),
            )
        ]
        columns = [row[1] for row in scratch.execute(f"PRAGMA table_info({quote(target.name)})")]
    except sqlite3.Error:
        # Something the copy cannot hold (a collation or function the app registers, say).
        return None
    finally:
        scratch.close()
    return TableShape(target.name, create, columns, indexes)


def _plan(
    op_list: list[ops.MigrateOperation],
    *,
    upgrade: bool,
    connection: sa.Connection,
    metadatas: list[sa.MetaData],
) -> list[ops.MigrateOperation]:
    dialect = connection.dialect
    objects = _schema_objects(connection)
    # The live name of a table that this migration renames.
    live_names: dict[str, str] = {}
    for op in op_list:
        if isinstance(op, ops.RenameTableOp):
            if upgrade:
                live_names[op.new_table_name] = live_names.get(op.table_name, op.table_name)
            else:
                live_names[op.table_name] = op.new_table_name
    planned: list[ops.MigrateOperation] = []
    changed_columns: dict[str, tuple[list[str], set[str]]] = {}
    merged = _merge_groups(op_list)
    for position, op in enumerate(merged):
        # Subclasses too (e.g. a batch carrying a naming convention to find unnamed
        # constraints): an exact rebuild needs no constraint names.
        if not _plannable(op):
            planned.append(op)
            continue
        name = op.table_name
        live = _live_shape(objects, connection, live_names.get(name, name))
        key = name if op.schema is None else f"{op.schema}.{name}"
        table = next((m.tables[key] for m in metadatas if key in m.tables), None)
        declared = _metadata_shape(table, dialect) if table is not None else None
        if upgrade and live is not None and declared is not None:
            declared.index_sql += _unmodelled_indexes(objects, connection, live.name, table)  # type: ignore[arg-type]
        source, target = (live, declared) if upgrade else (declared, live)
        if source is not None and name in changed_columns:
            # An earlier group of this migration (split by raw SQL) already changed the columns.
            added, dropped = changed_columns[name]
            source = replace(source, columns=[c for c in source.columns if c not in dropped] + added)
        dependents = _dependents(objects, live.name) if live is not None else []
        added, dropped = changed_columns.setdefault(name, ([], set()))
        for inner in op.ops:
            if isinstance(inner, ops.AddColumnOp):
                added.append(inner.column.name)
            elif isinstance(inner, ops.DropColumnOp):
                dropped.add(inner.column_name)
            elif isinstance(inner, ops.AlterColumnOp) and inner.modify_name is not None:
                dropped.add(inner.column_name)
                added.append(inner.modify_name)
        if all(_is_native(inner, source, dependents, dialect) for inner in op.ops):
            planned.append(NativeTableOps(name, op.ops, schema=op.schema))
        elif source is None or target is None or op.schema is not None:
            # Nothing exact to rebuild to: Alembic's batch mode does it, even under
            # render_as_batch=False (plain ALTERs of constraints or types fail on SQLite).
            planned.append(BatchTableOps.from_modify(op, always=True))
        else:
            # An index a later op creates (a rename's index, under its name of the other side)
            # must not exist yet when that op runs.
            later = _created_indexes(merged[position + 1 :])
            kept = [sql for sql in target.index_sql if _index_name(sql) not in later]
            target = replace(target, index_sql=kept)
            later_changes = _later_changes(merged, position, op)
            if later_changes:
                # The table's changes are split (by a restore, a check, the table's own rename...):
                # this rebuild makes the table the later ones start from, not its final shape.
                before_later = _before_later_changes(target, later_changes, dialect)
                if before_later is None:
                    # Alembic's batch mode makes this step from the table as it is then; a later
                    # rebuild gives the table its exact shape.
                    planned.append(BatchTableOps.from_modify(op, always=True))
                    continue
                target = before_later
            statements = rebuild_statements(op, source, target, dependents, dialect)
            planned.append(RebuildTableOps(name, op.ops, statements))
            planned.append(CheckForeignKeysOp(name))
    return planned


def plan_sqlite(ctx: RewriteContext) -> None:
    """Rewrite each table's changes into native ``ALTER TABLE`` ops or one exact rebuild.

    Upgrades rebuild to the models' ``CREATE TABLE``; downgrades rebuild to the
    table exactly as the database has it now (from ``sqlite_master``), so that
    AUTOINCREMENT, COLLATE, unnamed CHECKs, FK actions and expression indexes survive.
    """
    context = ctx.migration_context
    if context.dialect.name != "sqlite" or context.connection is None:
        return
    target = context.opts.get("target_metadata")
    metadatas = [m for m in (target if isinstance(target, (list, tuple)) else [target]) if m is not None]
    connection = context.connection
    ctx.upgrade_ops.ops[:] = _plan(
        ctx.upgrade_ops.ops, upgrade=True, connection=connection, metadatas=metadatas
    )
    ctx.downgrade_ops.ops[:] = _plan(
        ctx.downgrade_ops.ops, upgrade=False, connection=connection, metadatas=metadatas
    )
