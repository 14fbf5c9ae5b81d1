"""Rename detection: dropped/added table and column pairs become renames, as a policy decides."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import ops

from flask_evolve.autogen.naming import NAMING_CONVENTION, convention_in_force, convention_name
from flask_evolve.autogen.rename_ops import RenameColumnOp, RenameObjectOp, RenameTableOp, pg_quote
from flask_evolve.autogen.rename_policy import (
    ColumnRename,
    Decision,
    Hints,
    Rename,
    RenameError,
    TableRename,
    ambiguity_message,
    decide,
    is_interactive,
    parse_hints,
    policy_from_options,
    table_key,
)
from flask_evolve.autogen.renamed_tables import RenamedTable, compare_renamed_table

if TYPE_CHECKING:

    from flask_evolve.autogen.pipeline import RewriteContext

#: ``Column(..., info={RENAMED_FROM: "old"})`` and ``__table_args__ = {"info": {RENAMED_FROM: "old"}}``.
RENAMED_FROM = "renamed_from"

SQLITE_RENAME_COLUMN = (3, 25, 0)

TypesDiffer = Callable[[sa.Column[Any], sa.Column[Any]], bool]


# -- what the tree says was dropped and added -------------------------------------------------


def op_table(op: Any) -> str:
    """The key (:func:`table_key`) of the table an op works on."""
    if isinstance(op, ops.CreateForeignKeyOp):
        return table_key(op.source_table, op.kw.get("source_schema"))
    return table_key(op.table_name, getattr(op, "schema", None))


def referent_table(op: ops.CreateForeignKeyOp) -> str:
    return table_key(op.referent_table, op.kw.get("referent_schema"))


@dataclass
class TreeChanges:
    """The drops and adds in an op tree that could be halves of renames, by table key (``schema.name``
    outside the default schema)."""

    dropped_tables: dict[str, ops.DropTableOp] = field(default_factory=dict)
    added_tables: dict[str, ops.CreateTableOp] = field(default_factory=dict)
    dropped_columns: dict[str, dict[str, ops.DropColumnOp]] = field(default_factory=dict)
    added_columns: dict[str, dict[str, ops.AddColumnOp]] = field(default_factory=dict)

    @classmethod
    def of(cls, upgrade_ops: ops.UpgradeOps) -> TreeChanges:
        changes = cls()
        for op in upgrade_ops.ops:
            tables = (ops.DropTableOp, ops.CreateTableOp, ops.ModifyTableOps)
            key = op_table(op) if isinstance(op, tables) else ""
            if isinstance(op, ops.DropTableOp):
                changes.dropped_tables[key] = op
            elif isinstance(op, ops.CreateTableOp):
                changes.added_tables[key] = op
            elif isinstance(op, ops.ModifyTableOps):
                for sub in op.ops:
                    if isinstance(sub, ops.DropColumnOp):
                        changes.dropped_columns.setdefault(key, {})[sub.column_name] = sub
                    elif isinstance(sub, ops.AddColumnOp):
                        changes.added_columns.setdefault(key, {})[sub.column.name] = sub
        return changes

    def is_empty(self) -> bool:
        return not (
            (self.dropped_tables and self.added_tables)
            or any(t in self.added_columns for t in self.dropped_columns)
        )


# -- comparing shapes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A unique constraint, index or foreign key of a table, by what it covers (name aside)."""

    kind: str
    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    #: A foreign key's referred table, by key (``schema.name`` outside the default schema).
    referred_table: str = ""
    referred_columns: tuple[str, ...] = ()
    options: tuple[str, str] = ("", "")
    obj: Any = field(default=None, compare=False, hash=False)
    #: The referred table's name without its schema.
    referred_name: str = field(default="", compare=False)


def _fk_option(value: str | None) -> str:
    value = (value or "").upper()
    return "" if value in ("NO ACTION", "") else value


def items_of(table: sa.Table) -> list[Item]:
    """The table's uniques, plain-column indexes and foreign keys."""
    found: list[Item] = []
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            name = constraint.name if isinstance(constraint.name, str) else None
            found.append(Item("unique", name, tuple(c.name for c in constraint.columns), obj=constraint))
        elif isinstance(constraint, sa.ForeignKeyConstraint):
            # "schema.table.column" or "table.column": the part before the column is the table's key.
            targets = [element.target_fullname.rpartition(".") for element in constraint.elements]
            name = constraint.name if isinstance(constraint.name, str) else None
            referred = targets[0][0] if targets else ""
            found.append(
                Item(
                    "fk",
                    name,
                    tuple(constraint.column_keys),
                    referred_table=referred,
                    referred_columns=tuple(t[2] for t in targets),
                    options=(_fk_option(constraint.ondelete), _fk_option(constraint.onupdate)),
                    obj=constraint,
                    referred_name=_referred_name(constraint, referred),
                )
            )
    for index in table.indexes:
        columns = tuple(c.name for c in index.columns)
        if len(columns) != len(index.expressions):
            continue  # expression indexes are left to Alembic
        name = index.name if isinstance(index.name, str) else None
        found.append(Item("index", name, columns, unique=bool(index.unique), obj=index))
    # SQLAlchemy keeps constraints and indexes in sets; in a fixed order the ops made from
    # these items do not depend on the hash seed.
    return sorted(found, key=lambda item: (item.kind, item.name or "", item.columns))


def _referred_name(constraint: sa.ForeignKeyConstraint, referred: str) -> str:
    try:
        return str(constraint.referred_table.name)
    except (sa.exc.InvalidRequestError, IndexError):  # not resolvable: the key says it
        return referred.rpartition(".")[2]


@dataclass
class RenameMap:
    """Old names to new, for comparing the database's objects with the models'."""

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[tuple[str, str], str] = field(default_factory=dict)

    def table(self, name: str) -> str:
        return self.tables.get(name, name)

    def column(self, table: str, name: str) -> str:
        # Renames inside a renamed table are keyed by its new name; callers may hold either.
        return self.columns.get((table, name)) or self.columns.get((self.table(table), name), name)

    def add(self, rename: Rename) -> None:
        if isinstance(rename, TableRename):
            self.tables[rename.old] = rename.new
        else:
            self.columns[(rename.table, rename.old)] = rename.new


def mapped_signature(item: Item, table: str, names: RenameMap) -> tuple[Any, ...]:
    """What a database item becomes after the renames, without its name."""
    return (
        item.kind,
        tuple(names.column(table, c) for c in item.columns),
        item.unique,
        names.table(item.referred_table) if item.referred_table else "",
        tuple(names.column(item.referred_table, c) for c in item.referred_columns),
        item.options,
    )


def model_signature(item: Item) -> tuple[Any, ...]:
    return (
        item.kind,
        item.columns,
        item.unique,
        item.referred_table,
        item.referred_columns,
        item.options,
    )


def _column_involvement(
    items: Sequence[Item], table: str, column: str, names: RenameMap | None
) -> frozenset[tuple[Any, ...]]:
    found = set()
    for item in items:
        if column not in item.columns:
            continue
        sig = mapped_signature(item, table, names) if names is not None else model_signature(item)
        cols = tuple("*" if c == column else mapped for c, mapped in zip(item.columns, sig[1], strict=True))
        found.add((sig[0], cols, *sig[2:]))
    return frozenset(found)


def column_mismatch(
    db_table: sa.Table,
    old: str,
    model_table: sa.Table,
    new: str,
    types_differ: TypesDiffer,
    names: RenameMap,
) -> str | None:
    """Why ``db_table.old`` cannot have become ``model_table.new``, or None if it can."""
    db_column, model_column = db_table.c[old], model_table.c[new]
    if types_differ(db_column, model_column):
        return "types differ"
    if bool(db_column.nullable) != bool(model_column.nullable):
        return "nullability differs"
    if bool(db_column.primary_key) != bool(model_column.primary_key):
        return "primary key differs"
    db_items = _column_involvement(items_of(db_table), db_table.fullname, old, names)
    model_items = _column_involvement(items_of(model_table), model_table.fullname, new, None)
    if db_items != model_items:
        return "unique constraints, indexes or foreign keys differ"
    return None


def table_mismatch(
    db_table: sa.Table, model_table: sa.Table, types_differ: TypesDiffer, names: RenameMap
) -> str | None:
    """Why ``db_table`` cannot have become ``model_table`` by a rename alone, or None."""
    if set(db_table.c.keys()) != set(model_table.c.keys()):
        return "the columns differ"
    for db_column in db_table.c:
        model_column = model_table.c[db_column.name]
        if types_differ(db_column, model_column):
            return f"column {db_column.name}: types differ"
        if bool(db_column.nullable) != bool(model_column.nullable):
            return f"column {db_column.name}: nullability differs"
        if bool(db_column.primary_key) != bool(model_column.primary_key):
            return f"column {db_column.name}: primary key differs"
    local = RenameMap(dict(names.tables), dict(names.columns))
    local.tables[db_table.fullname] = model_table.fullname
    db_sigs = sorted(map(repr, (mapped_signature(i, db_table.fullname, local) for i in items_of(db_table))))
    model_sigs = sorted(map(repr, (model_signature(i) for i in items_of(model_table))))
    if db_sigs != model_sigs:
        return "unique constraints, indexes or foreign keys differ"
    return None


def strong_overlap(db_table: sa.Table, model_table: sa.Table, types_differ: TypesDiffer) -> str | None:
    """Whether a dropped and an added table are likely one table renamed and changed; says how alike.

    The primary key must be the same (names and types), at least half of the larger table's
    column names shared, and at least one of them besides the key.
    """
    db_key = {c.name for c in db_table.primary_key.columns}
    model_key = {c.name for c in model_table.primary_key.columns}
    if not db_key or db_key != model_key:
        return None
    if any(types_differ(db_table.c[name], model_table.c[name]) for name in db_key):
        return None
    # By name: a shared column may change too (its type, nullability...) in the same migration.
    shared = len(set(db_table.c.keys()) & set(model_table.c.keys()))
    larger = max(len(db_table.c), len(model_table.c))
    if shared * 2 < larger or shared <= len(db_key):
        return None
    return f"{shared} of {larger} columns in common"


def type_text(column: sa.Column[Any], dialect: sa.Dialect | None) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:
        return str(column.type)


# -- candidates -------------------------------------------------------------------------------


@dataclass
class Schemas:
    """The two sides being compared: the live database's tables and the models', by table key
    (``Table.fullname``: ``schema.name`` outside the default schema)."""

    database: Mapping[str, sa.Table]
    models: Mapping[str, sa.Table]
    types_differ: TypesDiffer
    dialect: sa.Dialect | None = None
    #: The naming convention in force for the project, if any (flask_evolve.autogen.naming).
    convention: Mapping[str, Any] | None = None
    #: PostgreSQL: the sequence a serial/identity column (schema, table, column) takes its values from.
    serial_sequence: Callable[[str | None, str, str], str | None] | None = None
    #: Compares database table ``old`` with model table ``new`` as if renamed (None: pure renames only).
    compare_renamed: Callable[[str, str], RenamedTable | None] | None = None
    #: What else changes in columns renamed (old name to new) in database table ``old``, model
    #: table ``new``: Alembic's alterations of them, on the new names (None: nothing compared).
    compare_renamed_columns: Callable[[str, str, Mapping[str, str]], list[ops.AlterColumnOp]] | None = None

    #: The database's name for its default schema ("public"): hints may spell it out.
    default_schema: str | None = None

    @property
    def dialect_name(self) -> str:
        return self.dialect.name if self.dialect is not None else ""

    def key(self, name: str, schema: str | None) -> str:
        return table_key(name, None if schema == self.default_schema else schema)


def table_candidates(changes: TreeChanges, schemas: Schemas, names: RenameMap) -> list[TableRename]:
    """Pairs that differ only by name, and (when changes can be compared) pairs strongly alike."""
    found = []
    for old in changes.dropped_tables:
        for new in changes.added_tables:
            db_table, model_table = schemas.database.get(old), schemas.models.get(new)
            if db_table is None or model_table is None or db_table.schema != model_table.schema:
                continue  # a move to another schema is no rename (moved_tables)
            if table_mismatch(db_table, model_table, schemas.types_differ, names) is None:
                found.append(TableRename(old, new, schema=model_table.schema))
            elif schemas.compare_renamed is not None:
                alike = strong_overlap(db_table, model_table, schemas.types_differ)
                if alike:
                    found.append(TableRename(old, new, detail=alike, schema=model_table.schema))
    return found


def column_candidates(changes: TreeChanges, schemas: Schemas, names: RenameMap) -> list[ColumnRename]:
    found = []
    for table, dropped in changes.dropped_columns.items():
        added = changes.added_columns.get(table, {})
        db_table, model_table = schemas.database.get(table), schemas.models.get(table)
        if db_table is None or model_table is None:
            continue
        for old in dropped:
            for new in added:
                if old not in db_table.c or new not in model_table.c:
                    continue
                if column_mismatch(db_table, old, model_table, new, schemas.types_differ, names) is None:
                    text = type_text(model_table.c[new], schemas.dialect)
                    found.append(ColumnRename(table, old, new, text))
    return found


def _declared_table_hints(changes: TreeChanges, schemas: Schemas) -> dict[str, str]:
    """``renamed_from`` on a table names its old name in the same schema."""
    hints = {}
    for new in changes.added_tables:
        model_table = schemas.models.get(new)
        old = model_table.info.get(RENAMED_FROM) if model_table is not None else None
        if old and table_key(old, model_table.schema) in changes.dropped_tables:  # type: ignore[union-attr]
            hints[table_key(old, model_table.schema)] = new  # type: ignore[union-attr]
    return hints


def _declared_column_hints(changes: TreeChanges, schemas: Schemas) -> dict[tuple[str, str], str]:
    hints = {}
    for table, added in changes.added_columns.items():
        model_table = schemas.models.get(table)
        if model_table is None:
            continue
        for new in added:
            old = model_table.c[new].info.get(RENAMED_FROM) if new in model_table.c else None
            if old and old in changes.dropped_columns.get(table, {}):
                hints[(table, old)] = new
    return hints


@dataclass
class ResolvedHints:
    """``--rename`` flags as tables and columns: ``tables[old key] = (new key, flag)``,
    ``columns[(table key, old)] = (new, flag)``."""

    tables: dict[str, tuple[str, str]] = field(default_factory=dict)
    columns: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def resolve_hints(hints: Hints, changes: TreeChanges, schemas: Schemas) -> ResolvedHints:
    """What each ``--rename`` names: ``T=N`` a table and ``S.T.C=N`` a column, wherever they are;
    ``A.B=N`` column ``B`` of table ``A`` (default schema) or table ``B`` of schema ``A``, whichever
    the comparison drops. When it drops both, the flag is refused (with the spelling that settles it)."""
    resolved = ResolvedHints()
    for hint in hints.items:
        if len(hint.parts) == 1:
            (old,) = hint.parts
            resolved.tables[table_key(old, None)] = (table_key(hint.new, None), hint.text)
        elif len(hint.parts) == 3:
            schema, table, column = hint.parts
            resolved.columns[(schemas.key(table, schema), column)] = (hint.new, hint.text)
        else:
            first, second = hint.parts
            as_table = schemas.key(second, first) in changes.dropped_tables
            as_column = second in changes.dropped_columns.get(first, {}) or (
                first in schemas.models and first not in schemas.database
            )
            if as_table and as_column:
                spelled = schemas.default_schema or "public"
                raise RenameError(
                    f"{hint.text} is ambiguous: {first} is a schema with a dropped table {second}, and a "
                    f"table with a column {second}. For the column write "
                    f"--rename {spelled}.{first}.{second}={hint.new}; for the table put "
                    f'info={{"{RENAMED_FROM}": "{second}"}} in the __table_args__ of table {hint.new}.'
                )
            if as_table or (first not in schemas.models and first not in schemas.database):
                if not as_table:
                    raise RenameError(
                        f"{hint.text}: the comparison drops neither column {second} of table {first} "
                        f"nor table {second} of schema {first}; check the names."
                    )
                resolved.tables[schemas.key(second, first)] = (schemas.key(hint.new, first), hint.text)
            else:
                resolved.columns[(first, second)] = (hint.new, hint.text)
    return resolved


def _stated_table_renames(
    hints: ResolvedHints, changes: TreeChanges, schemas: Schemas, names: RenameMap
) -> list[TableRename]:
    stated = [(old, new, where) for old, (new, where) in hints.tables.items()]
    stated += [
        (old, new, "")
        for old, new in _declared_table_hints(changes, schemas).items()
        if old not in hints.tables
    ]
    renames = []
    for old, new, flag in stated:
        source = "--rename" if flag else f"{RENAMED_FROM} on the model"
        where = flag or f"{RENAMED_FROM}={old.rpartition('.')[2]!r} on table {new}"
        if old not in changes.dropped_tables or new not in changes.added_tables:
            raise RenameError(
                f"{where}: the comparison does not drop table {old!r} and add table {new!r}; "
                f"check the names (the database has {old!r}: {old in schemas.database})."
            )
        problem = table_mismatch(schemas.database[old], schemas.models[new], schemas.types_differ, names)
        if problem and schemas.compare_renamed is None:
            raise RenameError(
                f"{where}: {old} and {new} differ beyond their name ({problem}); "
                f"rename in one migration and change the table in the next."
            )
        schema = schemas.models[new].schema
        renames.append(TableRename(old, new, reason=source, detail=problem or "", schema=schema))
    return renames


def _stated_column_renames(
    hints: ResolvedHints, changes: TreeChanges, schemas: Schemas, names: RenameMap
) -> list[ColumnRename]:
    stated = [(t, old, new, where) for (t, old), (new, where) in hints.columns.items()]
    stated += [
        (t, old, new, "")
        for (t, old), new in _declared_column_hints(changes, schemas).items()
        if (t, old) not in hints.columns
    ]
    renames = []
    for table, old, new, flag in stated:
        source = "--rename" if flag else f"{RENAMED_FROM} on the model"
        where = flag or f"{RENAMED_FROM}={old!r} on {table}.{new}"
        dropped = changes.dropped_columns.get(table, {})
        added = changes.added_columns.get(table, {})
        if old not in dropped or new not in added:
            raise RenameError(
                f"{where}: the comparison does not drop column {table}.{old} and add {table}.{new}; "
                f"check the table and column names."
            )
        db_table, model_table = schemas.database[table], schemas.models[table]
        problem = column_mismatch(db_table, old, model_table, new, schemas.types_differ, names)
        if problem:
            raise RenameError(
                f"{where}: {table}.{old} and {table}.{new} differ beyond their name ({problem}); "
                f"rename in one migration and change the column in the next."
            )
        text = type_text(model_table.c[new], schemas.dialect)
        renames.append(ColumnRename(table, old, new, text, reason=source))
    return renames


def _without(candidates: Sequence[Any], taken: Sequence[Rename]) -> list[Any]:
    used = {end for rename in taken for end in rename.ends()}
    return [c for c in candidates if not (set(c.ends()) & used)]


@dataclass
class Outcome:
    """Every rename to apply, in order: tables first, then columns."""

    renames: list[Rename] = field(default_factory=list)
    ambiguous: list[Rename] = field(default_factory=list)
    #: The other changes of tables renamed and changed, on their new names (after the renames).
    changed_tables: list[ops.ModifyTableOps] = field(default_factory=list)


def choose_renames(
    changes: TreeChanges,
    schemas: Schemas,
    *,
    hints: Hints,
    policy: str,
    interactive: bool,
    ask: Callable[[str], bool] | None = None,
) -> Outcome:
    """Django's order: tables first (so columns compare under the new table names), then columns.

    Stated renames (``--rename``, ``info`` hints) are always taken; the policy
    decides among the guessed candidates.
    """
    names = RenameMap()
    outcome = Outcome()
    resolved = resolve_hints(hints, changes, schemas)

    tables = _stated_table_renames(resolved, changes, schemas, names)
    for rename in tables:
        names.add(rename)
    guessed = _without(table_candidates(changes, schemas, names), tables)
    decision: Decision = decide(guessed, policy=policy, interactive=interactive, ask=ask)
    for rename in decision.accepted:
        names.add(rename)
    outcome.renames += tables + decision.accepted
    outcome.ambiguous += decision.ambiguous
    for rename in tables + decision.accepted:
        if isinstance(rename, TableRename):
            # Even a table renamed alike may differ in what a candidate does not weigh (server
            # defaults, CHECKs whose names carry the table's): the renamed table is compared too.
            _compare_changed_table(rename, changes, schemas, outcome)

    columns = _stated_column_renames(resolved, changes, schemas, names)
    for rename in columns:
        names.add(rename)
    guessed_columns = _without(column_candidates(changes, schemas, names), columns)
    decision = decide(guessed_columns, policy=policy, interactive=interactive, ask=ask)
    outcome.renames += columns + decision.accepted
    outcome.ambiguous += decision.ambiguous
    return outcome


def _compare_changed_table(
    rename: TableRename, changes: TreeChanges, schemas: Schemas, outcome: Outcome
) -> None:
    """The other changes of a renamed table join the tree's changes, so its columns' renames are found too."""
    compared = schemas.compare_renamed(rename.old, rename.new) if schemas.compare_renamed else None
    if compared is None and not rename.detail:
        return  # renamed alike: the rename alone is still right where the comparison cannot run
    if compared is None:
        raise RenameError(
            f"cannot compare table {rename.old} with {rename.new} as a renamed table; "
            f"rename it in one migration ({rename.flag}) and change it in the next, "
            f"or run with --no-renames to drop and create it (its rows are lost)."
        )
    outcome.changed_tables.append(compared.changes)
    schemas.database = {**schemas.database, rename.new: compared.database_table}
    for sub in compared.changes.ops:
        if isinstance(sub, ops.DropColumnOp):
            changes.dropped_columns.setdefault(rename.new, {})[sub.column_name] = sub
        elif isinstance(sub, ops.AddColumnOp):
            changes.added_columns.setdefault(rename.new, {})[sub.column.name] = sub


# -- rewriting the tree -----------------------------------------------------------------------


def _walk(upgrade_ops: ops.UpgradeOps) -> Iterator[tuple[list[Any], Any]]:
    for op in list(upgrade_ops.ops):
        if isinstance(op, ops.ModifyTableOps):
            for sub in list(op.ops):
                yield op.ops, sub
        else:
            yield upgrade_ops.ops, op


def _remove(upgrade_ops: ops.UpgradeOps, predicate: Callable[[Any], bool]) -> int:
    removed = 0
    for container, op in _walk(upgrade_ops):
        if predicate(op):
            container.remove(op)
            removed += 1
    return removed


def _creates(op: Any, item: Item, table: str) -> bool:
    if item.kind == "index":
        return isinstance(op, ops.CreateIndexOp) and op_table(op) == table and op.index_name == item.name
    if item.kind == "unique":
        return (
            isinstance(op, ops.CreateUniqueConstraintOp)
            and op_table(op) == table
            and tuple(op.columns) == item.columns
        )
    return (
        isinstance(op, ops.CreateForeignKeyOp)
        and op_table(op) == table
        and tuple(op.local_cols) == item.columns
        and referent_table(op) == item.referred_table
    )


def _drops(op: Any, item: Item, tables: tuple[str, ...]) -> bool:
    if item.kind == "index":
        return isinstance(op, ops.DropIndexOp) and op_table(op) in tables and op.index_name == item.name
    if not isinstance(op, ops.DropConstraintOp) or op_table(op) not in tables:
        return False
    if item.name is not None:
        return op.constraint_name == item.name
    reverse = getattr(op, "_reverse", None)
    if item.kind == "unique":
        return isinstance(reverse, ops.CreateUniqueConstraintOp) and tuple(reverse.columns) == item.columns
    return (
        isinstance(reverse, ops.CreateForeignKeyOp)
        and tuple(reverse.local_cols) == item.columns
        and referent_table(reverse) == item.referred_table
    )


def _drop_op(item: Item) -> Any:
    if item.kind == "index":
        return ops.DropIndexOp.from_index(item.obj)
    return ops.DropConstraintOp.from_constraint(item.obj)


def _create_op(item: Item) -> Any:
    if item.kind == "index":
        return ops.CreateIndexOp.from_index(item.obj)
    return ops.AddConstraintOp.from_constraint(item.obj)


def _involved(item: Item, table: str, names: RenameMap, renamed_table: bool) -> bool:
    new_tables = set(names.tables.values())
    new_columns = {(t, new) for (t, _), new in names.columns.items()}
    return (
        renamed_table
        or any((table, c) in new_columns for c in item.columns)
        or item.referred_table in new_tables
        or any((item.referred_table, c) in new_columns for c in item.referred_columns)
    )


def _pattern_names(item: Item, table: str, columns: Sequence[str], schemas: Schemas) -> list[str]:
    """Names the database would have given ``item`` by itself: the convention's, PostgreSQL's defaults."""
    kind = {"unique": "uq", "fk": "fk", "index": "ix"}[item.kind]
    names = [
        convention_name(
            kind,
            table,
            columns,
            referred_table=item.referred_name,
            convention=schemas.convention or NAMING_CONVENTION,
            max_length=_identifier_length(schemas),
        )
    ]
    if schemas.dialect_name == "postgresql" and item.kind in ("unique", "fk"):
        names.append(f"{table}_{'_'.join(columns)}_{'key' if item.kind == 'unique' else 'fkey'}")
    return names


def _target_name(match: Item, item: Item, old: str, new: str, schemas: Schemas) -> str | None:
    """The name the database object should have after the renames, or None to keep its own
    (``old`` and ``new``: the table's names without their schema)."""
    if item.name is not None:
        return item.name
    if match.name is None:
        return None
    before = _pattern_names(match, old, match.columns, schemas)
    if match.name not in before:
        return None  # a name someone chose: keep it
    after = _pattern_names(item, new, item.columns, schemas)
    target = after[before.index(match.name)]
    return target if len(target) <= _identifier_length(schemas) else None


def _identifier_length(schemas: Schemas) -> int:
    """The longest name the database keeps; longer convention names are shortened as SQLAlchemy does."""
    return getattr(schemas.dialect, "max_identifier_length", None) or 63


def _group(table: sa.Table) -> ops.ModifyTableOps:
    return ops.ModifyTableOps(table.name, [], schema=table.schema)


@dataclass
class _Layout:
    before: dict[str, ops.ModifyTableOps] = field(default_factory=dict)
    after: dict[str, ops.ModifyTableOps] = field(default_factory=dict)
    in_place: list[Any] = field(default_factory=list)

    def drop(self, table: sa.Table, op: Any) -> None:
        self.before.setdefault(table.fullname, _group(table)).ops.append(op)

    def create(self, table: sa.Table, op: Any) -> None:
        self.after.setdefault(table.fullname, _group(table)).ops.append(op)


def _checks_around_column_renames(
    upgrade_ops: ops.UpgradeOps,
    renames: Sequence[Rename],
    schemas: Schemas,
    layout: _Layout,
    *,
    renamed_tables: set[str],
) -> None:
    """CHECKs that change on a table whose columns are renamed: dropped before the renames, added after.

    A condition names columns: the old CHECK holds the old names, the new one the new names. So
    the reversed downgrade, too, re-creates the old CHECK only once the old names are back.
    """
    tables = {r.table for r in renames if isinstance(r, ColumnRename)} - renamed_tables
    for container, op in _walk(upgrade_ops):
        if getattr(op, "constraint_type", None) != "check" or op_table(op) not in tables:
            continue
        if isinstance(op, ops.DropConstraintOp) and op_table(op) in schemas.database:
            container.remove(op)
            layout.drop(schemas.database[op_table(op)], op)
        elif isinstance(op, ops.AddConstraintOp) and op_table(op) in schemas.models:
            container.remove(op)
            layout.create(schemas.models[op_table(op)], op)


def _reconcile(
    upgrade_ops: ops.UpgradeOps,
    db_table: sa.Table,
    model_table: sa.Table,
    names: RenameMap,
    schemas: Schemas,
    layout: _Layout,
) -> None:
    """Make the constraints and indexes of one renamed (or renaming-affected) table come out right.

    What a rename carries along loses its drop and create ops. A name that must
    follow the rename (given by the models, or by a pattern the old name
    followed) is renamed in place on PostgreSQL; elsewhere it is dropped before
    the renames and created after them, so the reversed downgrade runs in a valid
    order too. SQLite keeps a constraint's old name rather than copy the table for it.
    """
    old, new = db_table.fullname, model_table.fullname
    renamed_table = old != new
    db_items = items_of(db_table)
    for item in items_of(model_table):
        if not _involved(item, new, names, renamed_table):
            continue
        signature = model_signature(item)
        match = next((d for d in db_items if mapped_signature(d, old, names) == signature), None)
        if match is None:
            continue
        db_items.remove(match)
        _remove(upgrade_ops, lambda op, m=match: _drops(op, m, (old, new)))  # type: ignore[misc]
        target = _target_name(match, item, db_table.name, model_table.name, schemas)
        if target is None or target == match.name or (
            item.name is None and item.kind != "index" and schemas.dialect_name != "postgresql"
        ):
            _remove(upgrade_ops, lambda op, i=item: _creates(op, i, new))  # type: ignore[misc]
            continue
        if schemas.dialect_name == "postgresql" and match.name is not None:
            _remove(upgrade_ops, lambda op, i=item: _creates(op, i, new))  # type: ignore[misc]
            kind = "index" if item.kind == "index" else "constraint"
            layout.in_place.append(
                RenameObjectOp(kind, match.name, target, table=model_table.name, schema=model_table.schema)
            )
            continue
        layout.drop(db_table, _drop_op(match))
        if not any(_creates(op, item, new) for _, op in _walk(upgrade_ops)):
            layout.create(model_table, _create_op(item))


def _renamed_keys(schemas: Schemas, renames: Sequence[Rename], names: RenameMap) -> list[Any]:
    """PostgreSQL: primary keys and serial sequences whose default names follow a renamed table or column."""
    if schemas.dialect_name != "postgresql":
        return []
    found: list[Any] = []
    for rename in renames:
        if isinstance(rename, TableRename):
            db_table, model_table = schemas.database[rename.old], schemas.models[rename.new]
            old, new, schema = db_table.name, model_table.name, model_table.schema
            pk_name = db_table.primary_key.name if db_table.primary_key is not None else None
            convention = schemas.convention or NAMING_CONVENTION
            longest = _identifier_length(schemas)
            patterns = [
                (f"{old}_pkey", f"{new}_pkey"),
                (convention_name("pk", old, [], convention=convention, max_length=longest),
                 convention_name("pk", new, [], convention=convention, max_length=longest)),
            ]
            for before, after in patterns:
                if pk_name == before and len(after) <= 63:
                    found.append(RenameObjectOp("constraint", before, after, table=new, schema=schema))
                    break
            pairs = [(old, c.name, new, c.name) for c in db_table.c]
        else:
            # The column of a table renamed in this migration lives under the table's old name.
            live = next((o for o, n in names.tables.items() if n == rename.table), rename.table)
            schema = schemas.models[rename.table].schema
            pairs = [(schemas.database[live].name, rename.old, schemas.models[rename.table].name, rename.new)]
        for table, column, new_table, new_column in pairs:
            sequence = schemas.serial_sequence(schema, table, column) if schemas.serial_sequence else None
            wanted = f"{new_table}_{new_column}_seq"
            if sequence == f"{table}_{column}_seq" and len(wanted) <= 63:
                found.append(RenameObjectOp("sequence", sequence, wanted, schema=schema))
    return found


def _renamed_column_changes(
    renames: Sequence[Rename],
    schemas: Schemas,
    old_by_new: Mapping[str, str],
    groups: Mapping[str, ops.ModifyTableOps],
) -> list[ops.ModifyTableOps]:
    """What else changes in renamed columns (a server default, a comment, a size): to run after the renames.

    A candidate weighs type, nullability and keys; a rename alone would lose the rest, in the
    upgrade and in the reversed downgrade. A renamed table's changes join its group; others
    get a group of their own.
    """
    if schemas.compare_renamed_columns is None:
        return []
    by_table: dict[str, dict[str, str]] = {}
    for rename in renames:
        if isinstance(rename, ColumnRename):
            by_table.setdefault(rename.table, {})[rename.old] = rename.new
    found = []
    for table, columns in by_table.items():
        alters = schemas.compare_renamed_columns(old_by_new.get(table, table), table, columns)
        if not alters:
            continue
        if table in groups:
            groups[table].ops.extend(alters)
        else:
            model_table = schemas.models[table]
            found.append(ops.ModifyTableOps(model_table.name, list(alters), schema=model_table.schema))
    return found


def _comment(rename: Rename) -> str:
    if rename.reason == "assumed":
        return f"rename assumed: {rename.label} (use --no-renames to undo)"
    if rename.reason == "confirmed":
        return f"rename confirmed at the prompt: {rename.label}"
    return f"rename from {rename.reason}: {rename.label}"


def apply_renames(
    upgrade_ops: ops.UpgradeOps,
    renames: Sequence[Rename],
    schemas: Schemas,
    changed_tables: Sequence[ops.ModifyTableOps] = (),
) -> None:
    """Replace each rename's drop + add by a rename op, and fix up the constraints and indexes around it.

    ``changed_tables`` are the other changes of tables renamed and changed: they run after the renames.
    """
    if not renames:
        return
    names = RenameMap()
    for rename in renames:
        names.add(rename)
    old_tables = set(names.tables)
    new_tables = set(names.tables.values())
    changed = {op_table(m) for m in changed_tables}
    changed |= {old for old, new in names.tables.items() if new in changed}
    renamed_columns = {(r.table, r.old) for r in renames if isinstance(r, ColumnRename)}
    added_columns = {(r.table, r.new) for r in renames if isinstance(r, ColumnRename)}

    upgrade_ops.ops[:] = [
        op
        for op in upgrade_ops.ops
        if not (isinstance(op, ops.CreateTableOp) and op_table(op) in new_tables)
        and not (isinstance(op, ops.DropTableOp) and op_table(op) in old_tables)
        # What the comparison said of a changed table's two halves apart: changed_tables says it all.
        and not (isinstance(op, ops.ModifyTableOps) and op_table(op) in changed)
    ]
    upgrade_ops.ops[:0] = list(changed_tables)
    _remove(
        upgrade_ops,
        lambda op: (isinstance(op, ops.DropColumnOp) and (op_table(op), op.column_name) in renamed_columns)
        or (isinstance(op, ops.AddColumnOp) and (op_table(op), op.column.name) in added_columns),
    )

    layout = _Layout()
    old_by_new = {new: old for old, new in names.tables.items()}
    for model_name, model_table in schemas.models.items():
        db_table = schemas.database.get(old_by_new.get(model_name, model_name))
        if db_table is not None:
            _reconcile(upgrade_ops, db_table, model_table, names, schemas, layout)
    if schemas.dialect_name != "sqlite":  # SQLite rebuilds such a table once, knowing both names
        _checks_around_column_renames(upgrade_ops, renames, schemas, layout, renamed_tables=new_tables)

    rename_ops: list[Any] = []
    groups = {op_table(group): group for group in changed_tables}
    column_changes = _renamed_column_changes(renames, schemas, old_by_new, groups)
    for rename in renames:
        if isinstance(rename, TableRename):
            old_name, new_table = schemas.database[rename.old].name, schemas.models[rename.new]
            rename_ops.append(
                RenameTableOp(old_name, new_table.name, schema=new_table.schema, comment=_comment(rename))
            )
    for rename in renames:
        if isinstance(rename, ColumnRename):
            model_table = schemas.models[rename.table]
            column = model_table.c[rename.new]
            op = RenameColumnOp(
                model_table.name,
                rename.old,
                rename.new,
                schema=model_table.schema,
                existing_type=column.type,
                existing_nullable=column.nullable,
                comment=_comment(rename),
            )
            group = groups.get(rename.table)
            if schemas.dialect_name == "sqlite" and group is not None:
                # The table's other changes: one rebuild (or ALTERs) that knows the column's two names.
                group.ops.insert(sum(isinstance(o, RenameColumnOp) for o in group.ops), op)
            elif schemas.dialect_name == "sqlite" and sqlite3.sqlite_version_info < SQLITE_RENAME_COLUMN:
                # No RENAME COLUMN before SQLite 3.25: Alembic's batch mode copies the table instead.
                rename_ops.append(ops.ModifyTableOps(model_table.name, [op]))
            else:
                rename_ops.append(op)
    upgrade_ops.ops[:] = [
        *layout.before.values(),
        *rename_ops,
        *layout.in_place,
        *_renamed_keys(schemas, renames, names),
        *column_changes,
        *upgrade_ops.ops,
        *layout.after.values(),
    ]
    upgrade_ops.ops[:] = [
        op for op in upgrade_ops.ops if not (isinstance(op, ops.ModifyTableOps) and not op.ops)
    ]


# -- the rewriter -----------------------------------------------------------------------------


def _model_tables(target_metadata: Any) -> dict[str, sa.Table]:
    metadatas = target_metadata if isinstance(target_metadata, (list, tuple)) else [target_metadata]
    tables: dict[str, sa.Table] = {}
    for metadata in metadatas:
        if metadata is None:
            continue
        tables.update(metadata.tables)
    return tables


def _database_tables(connection: sa.Connection, upgrade_ops: ops.UpgradeOps) -> dict[str, sa.Table]:
    """Reflect only what a rename could touch: dropped tables and tables the tree changes
    (foreign keys pull in the tables they refer to)."""
    wanted: dict[str | None, set[str]] = {}
    for op in upgrade_ops.ops:
        if isinstance(op, (ops.DropTableOp, ops.ModifyTableOps)):
            wanted.setdefault(op.schema, set()).add(op.table_name)
    inspector = sa.inspect(connection)
    reflected = sa.MetaData()
    for schema, names in wanted.items():
        only = sorted(names & set(inspector.get_table_names(schema=schema)))
        if only:
            reflected.reflect(bind=connection, schema=schema, only=only)
    return dict(reflected.tables)


def _serial_sequence_lookup(
    connection: sa.Connection,
) -> Callable[[str | None, str, str], str | None] | None:
    if connection.dialect.name != "postgresql":
        return None

    def lookup(schema: str | None, table: str, column: str) -> str | None:
        qualified = pg_quote(table) if schema is None else f"{pg_quote(schema)}.{pg_quote(table)}"
        found = connection.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": qualified, "column": column},
        ).scalar()
        return str(found).rpartition(".")[2].strip('"') if found else None

    return lookup


def summary_lines(renames: Sequence[Rename]) -> list[str]:
    lines = []
    for rename in renames:
        kind = "column" if isinstance(rename, ColumnRename) else "table"
        if rename.reason == "assumed" and isinstance(rename, TableRename) and rename.detail:
            why = f"assumed: {rename.detail}, and no other candidate"
            lines.append(
                f"Rename table {rename.label}, then change it ({why}); use --no-renames for drop + add"
            )
        elif rename.reason == "assumed":
            why = "assumed: same type and constraints, and no other candidate"
            lines.append(f"Rename {kind} {rename.label} ({why}); use --no-renames for drop + add")
        elif rename.reason == "confirmed":
            lines.append(f"Rename {kind} {rename.label} (confirmed)")
        else:
            lines.append(f"Rename {kind} {rename.label} (from {rename.reason})")
    return lines


def moved_tables(upgrade_ops: ops.UpgradeOps, types_differ: TypesDiffer) -> list[str]:
    """Tables dropped in one schema and created in another that look like one table moved.

    A pair is the same table name, or a ``renamed_from`` hint naming the dropped table (with or
    without its schema), with the same primary key and half their column names in common.
    """
    dropped = [op for op in upgrade_ops.ops if isinstance(op, ops.DropTableOp)]
    found: list[str] = []
    for create in (op for op in upgrade_ops.ops if isinstance(op, ops.CreateTableOp)):
        new_table = create.to_table()
        hint = str(new_table.info.get(RENAMED_FROM) or "")
        for drop in dropped:
            if drop.schema == create.schema:
                continue
            old_table = drop.to_table()
            named = old_table.name == new_table.name or hint in (old_table.name, old_table.fullname)
            if named and strong_overlap(old_table, new_table, types_differ) is not None:
                found.append(f"{old_table.fullname} -> {new_table.fullname}")
    return found


def detect_renames(ctx: RewriteContext) -> None:
    """Rewriter: turn drop + add pairs into renames, as the options and the policy decide."""
    hints = parse_hints(ctx.options.get("renames") or ())
    policy = policy_from_options(ctx.options)
    impl = ctx.migration_context.impl

    def types_differ(db_column: sa.Column[Any], model_column: sa.Column[Any]) -> bool:
        return bool(impl.compare_type(db_column, model_column))

    if policy != "off":
        moved = moved_tables(ctx.upgrade_ops, types_differ)
        if moved:
            raise RenameError(
                f"Tables that look moved to another schema, which Flask-Evolve does not detect: "
                f"{', '.join(moved)}. Write the move in the script yourself "
                f"(op.execute('ALTER TABLE ... SET SCHEMA ...'), and the reverse in downgrade()) "
                f"or run with --no-renames to drop and create (the rows come back only on downgrade)."
            )
    changes = TreeChanges.of(ctx.upgrade_ops)
    if changes.is_empty() and not hints.items:
        return
    migration_context = ctx.migration_context
    connection = migration_context.bind
    if connection is None:
        return
    schemas = Schemas(
        database=_database_tables(connection, ctx.upgrade_ops),  # type: ignore[arg-type]
        models=_model_tables(migration_context.opts.get("target_metadata")),
        types_differ=types_differ,
        dialect=migration_context.dialect,
        convention=convention_in_force(ctx),
        serial_sequence=_serial_sequence_lookup(connection),
        default_schema=migration_context.dialect.default_schema_name,
    )

    def compare_renamed(old: str, new: str) -> RenamedTable | None:
        model_table = schemas.models[new]
        return compare_renamed_table(
            migration_context, schemas.database[old].name, model_table.name, schema=model_table.schema
        )

    def compare_renamed_columns(old: str, new: str, columns: Mapping[str, str]) -> list[ops.AlterColumnOp]:
        model_table = schemas.models[new]
        compared = compare_renamed_table(
            migration_context,
            schemas.database[old].name,
            model_table.name,
            schema=model_table.schema,
            columns=columns,
        )
        if compared is None:  # e.g. SQLite before 3.25: the renames alone, as before
            return []
        renamed = set(columns.values())
        return [
            sub
            for sub in compared.changes.ops
            if isinstance(sub, ops.AlterColumnOp) and sub.column_name in renamed
        ]

    schemas.compare_renamed = compare_renamed
    schemas.compare_renamed_columns = compare_renamed_columns
    outcome = choose_renames(
        changes,
        schemas,
        hints=hints,
        policy=policy,
        interactive=is_interactive(),
        ask=ctx.options.get("rename_questioner"),
    )
    if outcome.ambiguous:
        raise RenameError(ambiguity_message(outcome.ambiguous))
    if not outcome.renames:
        return
    apply_renames(ctx.upgrade_ops, outcome.renames, schemas, outcome.changed_tables)
    ctx.downgrade_ops.ops[:] = []
    ctx.upgrade_ops.reverse_into(ctx.downgrade_ops)
    for line in summary_lines(outcome.renames):
        ctx.note(line)
