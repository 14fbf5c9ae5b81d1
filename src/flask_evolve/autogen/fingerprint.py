"""Which tables provably have their models' exact shape in the database, so autogenerate can skip them.

Alembic compares every table column by column, which dominates ``flask db migrate`` on large
schemas. Here the whole database is read in a few catalog queries, and a table is reported
unchanged only when the database holds exactly what its model would create:

* SQLite keeps each table's and index's ``CREATE`` statement; the table is unchanged when those
  statements are the ones the model compiles to (table elements compared as a set, since column
  and constraint order is no schema change).
* PostgreSQL: columns (type as ``format_type`` prints it, NOT NULL, default, identity, generated,
  collation, comment), constraints as ``pg_get_constraintdef`` prints them, indexes as
  ``pg_get_indexdef`` prints them, and the table comment, against what the model's DDL would
  produce. Anything this module cannot predict exactly (server defaults, CHECK constraints,
  enums, arrays, expression or partial indexes, dialect options...) makes the table "not proven",
  and Alembic compares it as usual.

Every doubt falls back to Alembic's full comparison: a skipped table is one where any comparison
could only have found nothing. Other databases are never skipped.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, MetaData, Table, UniqueConstraint
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

log = logging.getLogger("flask_evolve")

IncludeName = Callable[[str | None, str, dict[str, Any]], bool]
IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def unchanged_tables(
    connection: Connection, metadata: MetaData, convention: Mapping[str, Any] | None = None
) -> set[str]:
    """Names of the default schema's tables whose database shape equals their model's.

    :param convention: the naming convention the autogenerate pipeline gives unnamed
        constraints (see :mod:`flask_evolve.autogen.naming`): the database holds those names.
    """
    name = connection.dialect.name
    if name not in ("sqlite", "postgresql"):
        return set()
    with _convention_names(metadata, convention, connection.dialect):
        if name == "sqlite":
            return _sqlite_unchanged(connection, metadata)
        return _postgresql_unchanged(connection, metadata)


@contextmanager
def _convention_names(
    metadata: MetaData, convention: Mapping[str, Any] | None, dialect: Any
) -> Iterator[None]:
    """Give unnamed constraints, for the duration, the names the naming rewriter writes into scripts."""
    if not convention:
        yield
        return
    from flask_evolve.autogen.naming import _constraint_name, _is_unnamed

    length = getattr(dialect, "max_identifier_length", None)
    max_length = length if isinstance(length, int) and length < 1000 else None
    named: list[tuple[Any, Any]] = []
    try:
        for table in _candidate_tables(metadata):
            for constraint in table.constraints:
                if not _is_unnamed(constraint) or getattr(constraint, "_type_bound", False):
                    continue
                name = _constraint_name(constraint, table.name, convention, max_length)
                if name:
                    named.append((constraint, constraint.name))
                    constraint.name = name
        yield
    finally:
        for constraint, original in named:
            constraint.name = original


def _candidate_tables(metadata: MetaData) -> list[Table]:
    return [table for table in metadata.tables.values() if table.schema is None]


# --- SQLite ---------------------------------------------------------------------------------

#: What matters when splitting a CREATE TABLE: quoted text (skipped whole), parentheses, commas.
_TOKENS = re.compile(r"""'[^']*'|"[^"]*"|`[^`]*`|\[[^\]]*\]|[(),]|['"`\[]""")


def split_create_table(sql: str) -> tuple[str, frozenset[str], str] | None:
    """``CREATE TABLE name (a, b, ...) options`` as (unquoted name, {elements}, options).

    Commas inside parentheses and quotes do not split. ``None`` when the text is not of that
    form (then the caller cannot prove anything).
    """
    match = re.match(r'\s*CREATE\s+TABLE\s+("(?:[^"]|"")+"|\w+)\s*\(', sql, re.IGNORECASE)
    if match is None:
        return None
    name = match.group(1)
    if name.startswith('"'):
        name = name[1:-1].replace('""', '"')
    elements: list[str] = []
    depth, start = 0, match.end()
    for token in _TOKENS.finditer(sql, match.end()):
        char = token.group()
        if char == "(":
            depth += 1
        elif char == ",":
            if depth == 0:
                elements.append(sql[start : token.start()].strip())
                start = token.end()
        elif char == ")":
            if depth == 0:
                elements.append(sql[start : token.start()].strip())
                return name, frozenset(elements), sql[token.end() :].strip()
            depth -= 1
        elif len(char) == 1:  # an unterminated quote
            return None
    return None


def _same_create_table(model: str, database: str) -> bool:
    if model.strip() == database.strip():
        return True
    split = split_create_table(model)
    return split is not None and split == split_create_table(database)


def _sqlite_unchanged(connection: Connection, metadata: MetaData) -> set[str]:
    tables: dict[str, str] = {}
    indexes: dict[str, set[str]] = {}
    rows = connection.exec_driver_sql(
        "SELECT type, tbl_name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL"
    )
    for kind, table_name, sql in rows:
        if kind == "table":
            tables[table_name] = sql
        else:
            indexes.setdefault(table_name, set()).add(sql.strip())
    dialect = connection.dialect
    unchanged = set()
    for table in _candidate_tables(metadata):
        stored = tables.get(table.name)
        if stored is None:
            continue
        try:
            created = str(CreateTable(table).compile(dialect=dialect))
            wanted_indexes = {
                str(CreateIndex(index).compile(dialect=dialect)).strip() for index in table.indexes
            }
        except Exception:  # a type or construct this dialect cannot compile: Alembic will say
            continue
        if wanted_indexes == indexes.get(table.name, set()) and _same_create_table(created, stored):
            unchanged.add(table.name)
    return unchanged


# --- PostgreSQL -----------------------------------------------------------------------------

#: SQLAlchemy's DDL type names and the ``format_type()`` spelling PostgreSQL stores for them.
_PG_TYPES: list[tuple[str, str]] = [
    (r"VARCHAR\((\d+)\)", r"character varying(\1)"),
    (r"VARCHAR", "character varying"),
    (r"CHAR\((\d+)\)", r"character(\1)"),
    (r"INTEGER", "integer"),
    (r"BIGINT", "bigint"),
    (r"SMALLINT", "smallint"),
    (r"BOOLEAN", "boolean"),
    (r"TEXT", "text"),
    (r"DATE", "date"),
    (r"TIMESTAMP WITHOUT TIME ZONE", "timestamp without time zone"),
    (r"TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
    (r"TIME WITHOUT TIME ZONE", "time without time zone"),
    (r"TIME WITH TIME ZONE", "time with time zone"),
    (r"FLOAT", "double precision"),
    (r"DOUBLE PRECISION", "double precision"),
    (r"REAL", "real"),
    (r"NUMERIC\((\d+), (\d+)\)", r"numeric(\1,\2)"),
    (r"NUMERIC\((\d+)\)", r"numeric(\1,0)"),
    (r"NUMERIC", "numeric"),
    (r"UUID", "uuid"),
    (r"JSON", "json"),
    (r"JSONB", "jsonb"),
    (r"BYTEA", "bytea"),
    (r"INTERVAL", "interval"),
]
_SERIAL_TYPES = {"integer", "bigint", "smallint"}
_PG_MAX_NAME = 63


@functools.cache  # a schema has few distinct type names and many columns
def _pg_type(ddl: str) -> str | None:
    for pattern, spelling in _PG_TYPES:
        match = re.fullmatch(pattern, ddl)
        if match:
            return match.expand(spelling)
    return None


class _Unproven(Exception):
    """The table uses something whose stored form this module does not predict."""


@dataclass
class _PgShape:
    columns: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    constraints: set[tuple[str, str, str]] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)
    comment: str | None = None


def _postgresql_unchanged(connection: Connection, metadata: MetaData) -> set[str]:
    schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
    if schema is None:
        return set()
    database = _pg_database_shapes(connection, schema)
    quote = _pg_quoter()
    unchanged = set()
    for table in _candidate_tables(metadata):
        stored = database.get(table.name)
        if stored is None:
            continue
        try:
            wanted = _pg_model_shape(table, connection.dialect, schema, quote)
        except _Unproven:
            continue
        except Exception:  # a construct that does not compile here: Alembic will say
            continue
        if wanted == stored:
            unchanged.add(table.name)
    return unchanged


_PG_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       a.attcollation <> 0 AND a.attcollation <> t.typcollation,
       col_description(c.oid, a.attnum), obj_description(c.oid, 'pg_class')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind = 'r'
"""

_PG_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND k.contype <> 'n'
"""

_PG_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'r'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = c.oid)
"""


def _pg_database_shapes(connection: Connection, schema: str) -> dict[str, _PgShape]:
    shapes: dict[str, _PgShape] = {}
    params = {"schema": schema}
    for row in connection.exec_driver_sql(_PG_COLUMNS, params):
        table, column, type_, notnull, default, identity, generated, collated, comment, table_comment = row
        shape = shapes.setdefault(table, _PgShape(comment=table_comment))
        shape.columns[column] = (type_, notnull, default, identity, generated, collated, comment)
    for table, name, kind, definition in connection.exec_driver_sql(_PG_CONSTRAINTS, params):
        shapes.setdefault(table, _PgShape()).constraints.add((kind, name, definition))
    for table, definition in connection.exec_driver_sql(_PG_INDEXES, params):
        shapes.setdefault(table, _PgShape()).indexes.add(definition)
    return shapes


def _pg_quoter() -> Callable[[str], str]:
    from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

    @functools.cache  # each table's and column's name is quoted several times
    def quote(name: str) -> str:
        if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in RESERVED_WORDS:
            return name
        return '"' + name.replace('"', '""') + '"'

    return quote


def _pg_default_name(*parts: str) -> str:
    name = "_".join(parts)
    if len(name) > _PG_MAX_NAME:
        raise _Unproven(name)  # PostgreSQL truncates such names in ways not worth predicting
    return name


def _require_plain(item: Any) -> None:
    """Dialect options (``postgresql_where``, ``postgresql_using``...) change the stored form."""
    if any(value is not None for value in getattr(item, "dialect_kwargs", {}).values()):
        raise _Unproven(item)


def _pg_model_shape(table: Table, dialect: Any, schema: str, quote: Callable[[str], str]) -> _PgShape:
    _require_plain(table)
    shape = _PgShape(comment=table.comment)
    serial = table.autoincrement_column
    for column in table.columns:
        if column.server_default is not None or column.computed is not None or column.identity is not None:
            raise _Unproven(column)
        if getattr(column.type, "collation", None) is not None:
            raise _Unproven(column)
        # A CHECK given on the column lives in column.constraints, not table.constraints.
        if any(isinstance(constraint, CheckConstraint) for constraint in column.constraints):
            raise _Unproven(column)
        type_ = _pg_type(column.type.compile(dialect=dialect))
        if type_ is None:
            raise _Unproven(column.type)
        default = None
        if column is serial:
            if type_ not in _SERIAL_TYPES:
                raise _Unproven(column)
            sequence = _pg_default_name(table.name, column.name, "seq")
            default = f"nextval('{quote(sequence)}'::regclass)"
        shape.columns[column.name] = (type_, not column.nullable, default, "", "", False, column.comment)

    def names(columns: Iterable[Any]) -> list[str]:
        return [column.name for column in columns]

    def listed(columns: Iterable[str]) -> str:
        return ", ".join(quote(name) for name in columns)

    primary = names(table.primary_key.columns)
    if primary:
        _require_plain(table.primary_key)
        name = table.primary_key.name or _pg_default_name(table.name, "pkey")
        shape.constraints.add(("p", str(name), f"PRIMARY KEY ({listed(primary)})"))
    for constraint in table.constraints:
        if isinstance(constraint, CheckConstraint):
            raise _Unproven(constraint)
        if isinstance(constraint, UniqueConstraint):
            _require_plain(constraint)
            if constraint.deferrable or constraint.initially:
                raise _Unproven(constraint)
            columns = names(constraint.columns)
            name = constraint.name or _pg_default_name(table.name, *columns, "key")
            shape.constraints.add(("u", str(name), f"UNIQUE ({listed(columns)})"))
        elif isinstance(constraint, ForeignKeyConstraint):
            shape.constraints.add(_pg_foreign_key(table, constraint, quote))
    for index in table.indexes:
        _require_plain(index)
        columns = [expr for expr in index.expressions if getattr(expr, "table", None) is table]
        if index.name is None or len(columns) != len(index.expressions):
            raise _Unproven(index)
        unique = "UNIQUE " if index.unique else ""
        shape.indexes.add(
            f"CREATE {unique}INDEX {quote(str(index.name))} ON {quote(schema)}.{quote(table.name)} "
            f"USING btree ({listed(names(columns))})"
        )
    return shape


def _pg_foreign_key(
    table: Table, constraint: ForeignKeyConstraint, quote: Callable[[str], str]
) -> tuple[str, str, str]:
    _require_plain(constraint)
    if constraint.deferrable or constraint.initially or constraint.match:
        raise _Unproven(constraint)
    referred = constraint.elements[0].column.table
    if referred.schema is not None:
        raise _Unproven(constraint)
    columns = [element.parent.name for element in constraint.elements]
    targets = [element.column.name for element in constraint.elements]
    definition = (
        f"FOREIGN KEY ({', '.join(map(quote, columns))}) "
        f"REFERENCES {quote(referred.name)}({', '.join(map(quote, targets))})"
    )
    for clause, action in (("ON UPDATE", constraint.onupdate), ("ON DELETE", constraint.ondelete)):
        if action is None or action.upper() == "NO ACTION":
            continue
        if action.upper() not in {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT"}:
            raise _Unproven(constraint)
        definition += f" {clause} {action.upper()}"
    name = constraint.name or _pg_default_name(table.name, *columns, "fkey")
    return ("f", str(name), definition)


# --- Alembic hooks --------------------------------------------------------------------------


@dataclass
class SkipUnchangedTables:
    """``include_name`` / ``include_object`` hooks that leave provably unchanged tables out.

    The unchanged set is read on the first table name Alembic asks about, so commands that
    never compare (upgrade, current...) pay nothing. The app's own hooks still run for every
    other table, column and constraint.
    """

    connection: Connection
    metadata: MetaData
    include_name_hook: IncludeName | None = None
    include_object_hook: IncludeObject | None = None
    convention: Mapping[str, Any] | None = None
    _unchanged: set[str] | None = None
    #: (schema, name) of the database tables let through to Alembic's comparison.
    _compared: set[tuple[str | None, str]] = field(default_factory=set)

    @property
    def unchanged(self) -> set[str]:
        if self._unchanged is None:
            try:
                unchanged = unchanged_tables(self.connection, self.metadata, self.convention)
            except Exception as exc:  # the full comparison is always a correct answer
                log.debug("comparing every table: %s", exc)
                unchanged = set()
            # Alembic hands the names left to SQLAlchemy's get_multi_* reflection, which reads
            # an empty list as "every table": keep one table in, so that skipping all is cheap.
            if unchanged:
                unchanged.discard(min(unchanged))
            self._unchanged = unchanged
            log.debug("%d tables unchanged, not compared in detail", len(self._unchanged))
        return self._unchanged

    def include_name(self, name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if self.include_name_hook is not None and not self.include_name_hook(name, type_, parent_names):
            if type_ == "table":
                # The app hides this table's database side: let Alembic (and the app's
                # include_object) decide about its model side, as without the skip.
                self.unchanged.discard(name)  # type: ignore[arg-type]
            return False
        if type_ != "table":
            return True
        schema = parent_names.get("schema_name")
        if not schema and name in self.unchanged:
            return False
        self._compared.add((schema, name))  # type: ignore[arg-type]
        return True

    def tables_in_order(self, metadata: Any) -> list[Table]:
        """What Alembic's ``AutogenContext.sorted_tables`` gives it, for the run these hooks filter.

        Alembic sorts every model table by foreign-key dependency (``MetaData.sorted_tables``, a
        topological sort that grows with the square of the depth of a chain of foreign keys) only
        to emit the tables it *adds* in that order: existing tables are compared in name order,
        and a table proven unchanged is in the database, so neither added nor compared. When at
        most one table can be added, the order of the list therefore changes nothing, and the
        unsorted list without the proven tables is handed over; otherwise the real sort is.
        Called after Alembic has run ``include_name`` over every database table.
        """
        metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
        unchanged = self.unchanged if self._unchanged is not None else set()
        left = [
            table
            for each in metadatas
            for table in each.tables.values()
            if not (table.schema is None and table.name in unchanged)
        ]
        added = [table for table in left if (table.schema, table.name) not in self._compared]
        if len(added) <= 1:
            return left
        return [table for each in metadatas for table in each.sorted_tables]

    def include_object(
        self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table" and not reflected and obj.schema is None and name in self.unchanged:
            return False
        if self.include_object_hook is None:
            return True
        return self.include_object_hook(obj, name, type_, reflected, compare_to)


def skip_unchanged_tables(
    connection: Connection,
    metadata: MetaData,
    args: dict[str, Any],
    convention: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``context.configure()`` arguments with the unchanged-table hooks composed in.

    Left as they are when the app compares types or server defaults with its own callables:
    those may see differences in what the database's DDL does not show. Flask-Evolve's own
    ``compare_server_default`` (the default) is no such callable: on PostgreSQL a proven table
    has no server default in its model and the database's defaults are part of the proof; on
    SQLite the ``DEFAULT`` clauses are part of the compared DDL text. Either way that comparator
    could only have answered "equal" (the equivalence tests run with it).

    :param convention: the naming convention in force for unnamed constraints, if any.
    """
    server_default = args.get("compare_server_default")
    if callable(args.get("compare_type")) or (
        callable(server_default) and not _is_our_server_default_comparator(server_default)
    ):
        return args
    hooks = SkipUnchangedTables(
        connection, metadata, args.get("include_name"), args.get("include_object"), convention
    )
    return {**args, "include_name": hooks.include_name, "include_object": hooks.include_object}


def app_filters(opts: Mapping[str, Any]) -> tuple[IncludeName | None, IncludeObject | None]:
    """The ``include_name`` / ``include_object`` hooks of ``context.configure()`` options as the
    app gave them, without the unchanged-table skip: a table skipped as unchanged is compared
    (and found equal), not filtered out by the app."""
    include_name, include_object = opts.get("include_name"), opts.get("include_object")
    owner = getattr(include_name, "__self__", None)
    if isinstance(owner, SkipUnchangedTables):
        return owner.include_name_hook, owner.include_object_hook
    return include_name, include_object


def _is_our_server_default_comparator(hook: Any) -> bool:
    from flask_evolve.autogen.comparators import compare_server_default

    return hook is compare_server_default


def order_tables(autogen_context: Any, upgrade_ops: Any) -> Any:
    """Autogenerate comparator (first of all): spare Alembic the dependency sort of every table
    when the unchanged-table skip is on and the order cannot matter (see
    :meth:`SkipUnchangedTables.tables_in_order`)."""
    from alembic.util import PriorityDispatchResult

    owner = getattr(autogen_context.opts.get("include_name"), "__self__", None)
    if isinstance(owner, SkipUnchangedTables) and autogen_context.metadata is not None:
        # AutogenContext.sorted_tables is memoized in the instance's __dict__; filled in here
        # it is read lazily, once Alembic has filtered the database's table names.
        autogen_context.__dict__["sorted_tables"] = _LazyTables(
            lambda: owner.tables_in_order(autogen_context.metadata)
        )
    return PriorityDispatchResult.CONTINUE


class _LazyTables(list):  # type: ignore[type-arg]
    """A list computed on first use: Alembic iterates ``sorted_tables`` after ``include_name``."""

    def __init__(self, compute: Callable[[], list[Table]]) -> None:
        super().__init__()
        self._compute: Callable[[], list[Table]] | None = compute

    def _fill(self) -> None:
        if self._compute is not None:
            compute, self._compute = self._compute, None
            self.extend(compute())

    def __iter__(self) -> Iterator[Table]:
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __getitem__(self, index: Any) -> Any:
        self._fill()
        return super().__getitem__(index)


def proven_unchanged(migration_context: Any) -> set[str]:
    """The tables this run's autogenerate skipped as unchanged (empty if it compared them all).

    Rewriters that would read every table again can leave these out: their database shape is
    the model's, constraint for constraint.
    """
    hook = migration_context.opts.get("include_name")
    owner = getattr(hook, "__self__", None)
    if isinstance(owner, SkipUnchangedTables) and owner._unchanged is not None:
        return set(owner._unchanged)
    return set()
