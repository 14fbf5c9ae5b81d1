"""Archive-before-drop: rewrite dropped columns and tables so that the downgrade brings their data back."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask_evolve.autogen.ordering import in_order
from flask_evolve.runtime.archive_ops import (
    ArchiveColumnsOp,
    ArchiveRowsOp,
    ArchiveTableOp,
    ArchiveValuesOp,
    CheckArchiveOp,
    RestoreColumnsOp,
    RestoreRowsOp,
    RestoreTableOp,
    RestoreValuesOp,
    archive_columns,
    is_archive_table,
)

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation

    from flask_evolve.autogen.pipeline import RewriteContext

#: ``Migrate(archive_drops=False)`` / ``flask db migrate --no-archive`` switch this rewriter off.
OPTION = "archive_drops"

IncludeName = Callable[[str | None, str, dict[str, Any]], bool]


def exclude_archive_tables(user_hook: IncludeName | None) -> IncludeName:
    """An ``include_name`` hook that hides the archive's tables from autogenerate and
    ``check``, then asks the app's own hook (if any)."""

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "table" and is_archive_table(name):
            return False
        return user_hook(name, type_, parent_names) if user_hook is not None else True

    include_name.flask_evolve = True  # type: ignore[attr-defined]
    return include_name


def archive_before_drop(ctx: RewriteContext) -> None:
    """Keep dropped columns (by primary key) and dropped tables (renamed) in the archive.

    Upgrade: ``archive_columns`` before a table's drops; ``archive_table``
    instead of ``drop_table``, after every other change so that foreign keys
    pointing at the table are gone first. Downgrade: the column comes back
    nullable, ``restore_columns`` fills it, then NOT NULL and the constraints
    return; ``restore_table`` first, before anything references the table.

    What the downgrade drops (columns and tables the revision added) is kept
    the same way, with ``on="downgrade"``, and the next upgrade gives it back.
    """
    if not ctx.options.get(OPTION, True):
        return
    revision = ctx.script.rev_id
    if not revision:
        return
    _archive_tables(ctx, revision)
    _archive_columns(ctx, revision)
    _archive_type_changes(ctx, revision, on="upgrade")
    # Checks first, so that a downgrade that cannot restore stops before changing anything.
    down = ctx.downgrade_ops
    restores = [
        op
        for op in down.ops
        if isinstance(op, RestoreColumnsOp | RestoreTableOp | RestoreValuesOp)
        or (isinstance(op, RestoreRowsOp) and op.on == "upgrade")
    ]
    down.ops[:0] = [CheckArchiveOp.for_restore(op, _archived_types(ctx, op)) for op in restores]
    _archive_downgraded_tables(ctx, revision)
    _archive_downgraded_columns(ctx, revision)
    _archive_type_changes(ctx, revision, on="downgrade")


def _archived_types(
    ctx: RewriteContext, op: RestoreColumnsOp | RestoreTableOp | RestoreValuesOp | RestoreRowsOp
) -> dict[str, str] | None:
    """The columns and types the archive of ``op`` will have, read from the database as it is
    now (the upgrade archives them from there): the downgrade refuses an archive changed since.

    ``None`` when the database cannot tell (a table renamed in this migration, say).
    """
    bind = ctx.migration_context.bind
    if bind is None:
        return None
    live = archive_columns(bind, op.table_name, op.schema)
    names = list(live) if isinstance(op, RestoreTableOp | RestoreRowsOp) else [*op.key, *op.columns]
    if not live or any(name not in live for name in names):
        return None
    types = {name: live[name] for name in names}
    if isinstance(op, RestoreTableOp):
        # archive_table keeps native ENUM columns as text (their types go with the table).
        types.update(dict.fromkeys(op.enums, "text"))
    return types


def _same_table(op: Any, table_name: str, schema: str | None) -> bool:
    return getattr(op, "table_name", None) == table_name and getattr(op, "schema", None) == schema


def _archive_tables(ctx: RewriteContext, revision: str) -> None:
    """Replace ``drop_table`` by ``archive_table`` and the downgrade's ``create_table`` by ``restore_table``.

    Explicit indexes are still dropped and re-created by Alembic's own ops: index
    names are global to a SQLite database and a PostgreSQL schema, and an archived
    table holding them would make a later table that reuses a name fail. On
    PostgreSQL the archived table also loses its outgoing foreign keys (re-created
    on the way down): kept, they would forbid deleting the rows they reference.
    """
    from alembic.operations.ops import (
        CreateForeignKeyOp,
        CreateTableOp,
        DropConstraintOp,
        DropTableOp,
        ModifyTableOps,
    )
    from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint, UniqueConstraint

    up, down = ctx.upgrade_ops, ctx.downgrade_ops
    dropped = [op for op in up.ops if isinstance(op, DropTableOp) and not is_archive_table(op.table_name)]
    postgresql = ctx.migration_context.dialect.name == "postgresql"
    archives: list[MigrateOperation] = []
    restores: list[MigrateOperation] = []
    foreign_key_drops: list[MigrateOperation] = []
    foreign_key_creates: list[MigrateOperation] = []
    for drop in dropped:
        name, schema = drop.table_name, drop.schema
        created = [op for op in down.ops if isinstance(op, CreateTableOp) and _same_table(op, name, schema)]
        if not created:
            continue
        if _copied_on_sqlite(ctx, created[0].to_table()):
            up.ops.insert(up.ops.index(drop), ArchiveRowsOp(name, revision=revision, schema=schema))
            # Back first, like a renamed table, before the tables that point at it.
            down.ops.remove(created[0])
            restores[:0] = [created[0], RestoreRowsOp(name, revision=revision, schema=schema, on="upgrade")]
            ctx.note(f"Archiving the rows of table '{name}': the downgrade brings it back with its rows.")
            continue
        enums, defaults = _enum_columns(ctx, created[0].to_table()) if postgresql else ({}, {})
        constraints = [c for c in in_order(created[0].to_table().constraints) if c.name]
        foreign_keys = [c for c in constraints if isinstance(c, ForeignKeyConstraint)]
        indexed = [c.name for c in constraints if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)]
        up.ops.remove(drop)
        down.ops = [op for op in down.ops if op not in created]
        if postgresql and foreign_keys:
            foreign_key_drops.append(
                ModifyTableOps(
                    name, [DropConstraintOp.from_constraint(fk) for fk in foreign_keys], schema=schema
                )
            )
            foreign_key_creates.append(
                ModifyTableOps(
                    name, [CreateForeignKeyOp.from_constraint(fk) for fk in foreign_keys], schema=schema
                )
            )
        kept = indexed if postgresql else ()
        archives.append(
            ArchiveTableOp(
                name, revision=revision, schema=schema, constraints=kept, enums=enums, defaults=defaults
            )
        )
        restores.insert(
            0,
            RestoreTableOp(
                name, revision=revision, schema=schema, constraints=kept, enums=enums, defaults=defaults
            ),
        )
        ctx.note(f"Archiving table '{name}': the downgrade brings it back with its rows.")
    # Enum types go after the tables that used them, and come back before them.
    type_drops = [op for op in up.ops if _is_enum_op(op, "DropEnumOp")] if archives else []
    up.ops = [op for op in up.ops if op not in type_drops]
    up.ops.extend([*foreign_key_drops, *archives, *type_drops])
    type_creates = [op for op in down.ops if _is_enum_op(op, "CreateEnumOp")] if restores else []
    down.ops = [op for op in down.ops if op not in type_creates]
    down.ops[:0] = [*type_creates, *restores]
    down.ops.extend(foreign_key_creates)


def _primary_key(ctx: RewriteContext, table_name: str, schema: str | None) -> list[str]:
    import sqlalchemy as sa

    bind = ctx.migration_context.bind
    if bind is None:
        return []
    inspector = sa.inspect(bind)
    if not inspector.has_table(table_name, schema=schema):
        return []
    return list(inspector.get_pk_constraint(table_name, schema=schema).get("constrained_columns") or [])


def _reflected_columns(ctx: RewriteContext, table_name: str, schema: str | None) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    bind = ctx.migration_context.bind
    if bind is None:
        return []
    inspector = sa.inspect(bind)
    if not inspector.has_table(table_name, schema=schema):
        return []
    return list(inspector.get_columns(table_name, schema=schema))


def _column_order(ctx: RewriteContext, table_name: str, schema: str | None) -> dict[str, int]:
    columns = _reflected_columns(ctx, table_name, schema)
    return {column["name"]: position for position, column in enumerate(columns)}


def _archive_columns(ctx: RewriteContext, revision: str) -> None:
    from alembic.operations.ops import DropColumnOp, ModifyTableOps, RenameTableOp

    up = ctx.upgrade_ops
    # A table renamed in this migration is changed under its new name, which the database
    # does not have yet: its key and columns are read under the old one.
    former_names = {
        (op.new_table_name, op.schema): op.table_name for op in up.ops if isinstance(op, RenameTableOp)
    }
    for container in list(up.ops):
        if not isinstance(container, ModifyTableOps):
            continue
        drops = [op for op in container.ops if isinstance(op, DropColumnOp)]
        if not drops:
            continue
        table, schema = container.table_name, container.schema
        names = [op.column_name for op in drops]
        live_name = former_names.get((table, schema), table)
        key = _primary_key(ctx, live_name, schema)
        order = _column_order(ctx, live_name, schema)
        names.sort(key=lambda name: order.get(name, len(order)))
        if not key or set(key) & set(names):
            ctx.note(
                f"Not archiving {', '.join(f'{table}.{n}' for n in names)}: the table has no primary key "
                f"left to restore the values by; the downgrade cannot bring them back."
            )
            continue
        if not _rewrite_downgrade(ctx, table, schema, names, key, revision, live_name=live_name):
            continue
        # Before the table's first change (a rename, say), not just its drops: the columns are
        # read as the database has them, and on SQLite the table's changes stay one rebuild.
        first = next(i for i, op in enumerate(up.ops) if _same_table(op, table, schema))
        up.ops.insert(first, ArchiveColumnsOp(table, names, key=key, revision=revision, schema=schema))
        ctx.note(f"Archiving {', '.join(f'{table}.{n}' for n in names)}: the downgrade restores the values.")


def _rewrite_downgrade(
    ctx: RewriteContext,
    table: str,
    schema: str | None,
    names: list[str],
    key: list[str],
    revision: str,
    *,
    live_name: str,
) -> bool:
    """Re-add the columns nullable, restore them, then re-apply NOT NULL and the other changes."""
    from alembic.operations.ops import AddColumnOp, AlterColumnOp, ModifyTableOps

    down = ctx.downgrade_ops
    for position, container in enumerate(down.ops):
        if not (isinstance(container, ModifyTableOps) and _same_table(container, table, schema)):
            continue
        # Re-added in the table's original order, so the old schema comes back column for column
        # when the dropped columns were the last ones.
        adds = sorted(
            (op for op in container.ops if isinstance(op, AddColumnOp) and op.column.name in names),
            key=lambda op: names.index(op.column.name),
        )
        if {op.column.name for op in adds} != set(names):
            continue
        # The live column (the database still has it) is the truth about NOT NULL and the default:
        # another rewriter may have re-added it with a placeholder default or nullable already.
        live = {c["name"]: c for c in _reflected_columns(ctx, live_name, schema)}
        readded: list[Any] = []
        not_null: list[Any] = []
        required: list[str] = []
        placeholders: set[str] = set()
        for add in adds:
            column = add.column._copy()
            reflected = live.get(column.name)
            nullable = reflected["nullable"] if reflected else column.nullable
            if (
                reflected is not None
                and reflected.get("default") is None
                and column.server_default is not None
            ):
                column.server_default = None
                placeholders.add(column.name)
            if not nullable:
                not_null.append(
                    AlterColumnOp(
                        table,
                        column.name,
                        schema=schema,
                        existing_type=column.type,
                        existing_server_default=column.server_default or False,
                        existing_nullable=True,
                        modify_nullable=False,
                    )
                )
                if column.server_default is None:
                    required.append(column.name)
            column.nullable = True
            readded.append(AddColumnOp(table, column, schema=schema))
        rest = [
            op
            for op in container.ops
            if op not in adds
            and not (
                isinstance(op, AlterColumnOp)
                and op.column_name in placeholders
                and op.modify_server_default is None
            )
        ]
        unique, references = _fill_constraints(container, adds)
        replacement: list[Any] = [
            ModifyTableOps(table, readded, schema=schema),
            RestoreColumnsOp(
                table,
                names,
                key=key,
                revision=revision,
                required=required,
                schema=schema,
                unique=unique,
                references=references,
            ),
        ]
        if not_null or rest:
            replacement.append(ModifyTableOps(table, [*not_null, *rest], schema=schema))
        down.ops[position : position + 1] = replacement
        return True
    return False


def _fill_constraints(container: Any, adds: list[Any]) -> tuple[list[str], dict[str, str]]:
    """The re-added columns that come back with a one-column UNIQUE key, and the
    ``table.column`` each foreign key among them points at: what a ``--fill`` must respect."""
    from alembic.operations.ops import AddConstraintOp, CreateForeignKeyOp, CreateIndexOp
    from sqlalchemy import Table, UniqueConstraint

    unique: list[str] = []
    references: dict[str, str] = {}
    for add in adds:
        column = add.column
        name = column.name
        keys: list[list[str]] = []
        table = getattr(column, "table", None)
        if isinstance(table, Table):
            keys += [
                [c.name for c in k.columns] for k in table.constraints if isinstance(k, UniqueConstraint)
            ]
            keys += [[c.name for c in i.columns] for i in table.indexes if i.unique]
        for op in container.ops:
            if isinstance(op, CreateIndexOp) and op.unique:
                keys.append([getattr(c, "name", c) for c in op.columns])
            elif isinstance(op, AddConstraintOp) and op.constraint_type == "unique":
                keys.append(list(getattr(op, "columns", ())))
            elif isinstance(op, CreateForeignKeyOp) and list(op.local_cols) == [name]:
                referent_schema = op.kw.get("referent_schema")
                prefix = f"{referent_schema}." if referent_schema else ""
                references[name] = f"{prefix}{op.referent_table}.{op.remote_cols[0]}"
        if column.unique or [name] in keys:
            unique.append(name)
        for foreign_key in column.foreign_keys:
            constraint = foreign_key.constraint
            if constraint is None or len(constraint.columns) == 1:
                references.setdefault(name, foreign_key.target_fullname)
    return unique, references


def _foreign_key_ops(table: Any, schema: str | None) -> tuple[Any, Any] | None:
    from alembic.operations.ops import CreateForeignKeyOp, DropConstraintOp, ModifyTableOps
    from sqlalchemy import ForeignKeyConstraint

    foreign_keys = [c for c in in_order(table.constraints) if c.name and isinstance(c, ForeignKeyConstraint)]
    if not foreign_keys:
        return None
    name = table.name
    return (
        ModifyTableOps(name, [DropConstraintOp.from_constraint(fk) for fk in foreign_keys], schema=schema),
        ModifyTableOps(name, [CreateForeignKeyOp.from_constraint(fk) for fk in foreign_keys], schema=schema),
    )


def _copied_on_sqlite(ctx: RewriteContext, table: Any) -> bool:
    """A SQLite table with foreign keys is archived as a copy of its rows (O(rows)), not renamed:
    a renamed table keeps its foreign keys (SQLite cannot drop them without a copy anyway), and
    with ``PRAGMA foreign_keys=ON`` they would forbid deleting the rows it points at, or
    change the archive through ``ON DELETE`` actions. The downgrade re-creates the table and
    copies the rows back."""
    from sqlalchemy import ForeignKeyConstraint

    if ctx.migration_context.dialect.name != "sqlite":
        return False
    return any(isinstance(c, ForeignKeyConstraint) for c in table.constraints)


def _is_enum_op(op: Any, name: str) -> bool:
    """alembic-postgresql-enum's type creation or drop (an optional dependency: matched by name)."""
    return type(op).__name__ == name and type(op).__module__.startswith("alembic_postgresql_enum")


def _enum_columns(ctx: RewriteContext, table: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The table's native ENUM columns with their types, and the server defaults of those
    (as SQL): the archive keeps them as text, so that the types can go with the table."""
    from sqlalchemy import Enum

    dialect = ctx.migration_context.dialect
    enums: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for column in table.columns:
        if not (isinstance(column.type, Enum) and column.type.native_enum):
            continue
        enums[column.name] = column.type.compile(dialect=dialect)
        default = column.server_default
        if default is not None and hasattr(default, "arg"):
            arg = default.arg
            defaults[column.name] = (
                str(arg.text) if hasattr(arg, "text") else "'" + str(arg).replace("'", "''") + "'"
            )
    return enums, defaults


def _archive_downgraded_tables(ctx: RewriteContext, revision: str) -> None:
    """The downgrade of a revision that created a table archives it; the next upgrade copies the rows back."""
    from alembic.operations.ops import CreateTableOp, DropTableOp
    from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

    up, down = ctx.upgrade_ops, ctx.downgrade_ops
    postgresql = ctx.migration_context.dialect.name == "postgresql"
    for drop in [op for op in down.ops if isinstance(op, DropTableOp)]:
        name, schema = drop.table_name, drop.schema
        created = [op for op in up.ops if isinstance(op, CreateTableOp) and _same_table(op, name, schema)]
        if not created:
            continue
        table = created[0].to_table()
        up.ops.insert(up.ops.index(created[0]) + 1, RestoreRowsOp(name, revision=revision, schema=schema))
        if _copied_on_sqlite(ctx, table):
            down.ops.insert(
                down.ops.index(drop), ArchiveRowsOp(name, revision=revision, schema=schema, on="downgrade")
            )
            continue
        enums, defaults = _enum_columns(ctx, table) if postgresql else ({}, {})
        indexed = [
            c.name
            for c in in_order(table.constraints)
            if c.name and isinstance(c, PrimaryKeyConstraint | UniqueConstraint)
        ]
        replacement: list[Any] = []
        foreign_keys = _foreign_key_ops(table, schema) if postgresql else None
        if foreign_keys:
            replacement.append(foreign_keys[0])
        replacement.append(
            ArchiveTableOp(
                name,
                revision=revision,
                schema=schema,
                constraints=indexed if postgresql else (),
                on="downgrade",
                enums=enums,
                defaults=defaults,
            )
        )
        position = down.ops.index(drop)
        down.ops[position : position + 1] = replacement


def _archive_downgraded_columns(ctx: RewriteContext, revision: str) -> None:
    """The downgrade of a revision that added columns archives them; the next upgrade restores them."""
    from alembic.operations.ops import AddColumnOp, DropColumnOp, ModifyTableOps

    up, down = ctx.upgrade_ops, ctx.downgrade_ops
    for container in list(down.ops):
        if not isinstance(container, ModifyTableOps):
            continue
        names = [op.column_name for op in container.ops if isinstance(op, DropColumnOp)]
        if not names:
            continue
        table, schema = container.table_name, container.schema
        key = _primary_key(ctx, table, schema)
        if not key or set(key) & set(names):
            continue
        added = [
            op
            for op in up.ops
            if isinstance(op, ModifyTableOps)
            and _same_table(op, table, schema)
            and {o.column.name for o in op.ops if isinstance(o, AddColumnOp)} >= set(names)
        ]
        if not added:
            continue
        down.ops.insert(
            down.ops.index(container),
            ArchiveColumnsOp(table, names, key=key, revision=revision, schema=schema, on="downgrade"),
        )
        up.ops.insert(
            up.ops.index(added[0]) + 1,
            RestoreColumnsOp(table, names, key=key, revision=revision, schema=schema, on="downgrade"),
        )


def _converts_values(op: Any) -> bool:
    """An ``alter_column`` whose new type may store a value differently (not a plain widening)."""
    from alembic.operations.ops import AlterColumnOp
    from sqlalchemy import Enum

    from flask_evolve.autogen.guards import widens

    if not isinstance(op, AlterColumnOp) or op.modify_type is None or op.existing_type is None:
        return False
    # Enum changes are the enum plugin's (values added or removed, not converted).
    if isinstance(op.modify_type, Enum) or isinstance(op.existing_type, Enum):
        return False
    return not widens(op.existing_type, op.modify_type)


def _archive_type_changes(ctx: RewriteContext, revision: str, *, on: str) -> None:
    """Keep the original values of columns whose type changes in a way that may alter them.

    ``archive_values`` runs before the step that changes the type; on the way back
    ``restore_values`` runs after the step that changes it back, and puts the
    originals back in the rows whose value the app has not changed since.
    """
    from alembic.operations.ops import AlterColumnOp, ModifyTableOps

    there, back = (ctx.upgrade_ops, ctx.downgrade_ops)
    if on == "downgrade":
        there, back = back, there
    dialect = ctx.migration_context.dialect
    for container in list(there.ops):
        if not isinstance(container, ModifyTableOps):
            continue
        alters = [op for op in container.ops if _converts_values(op)]
        if not alters:
            continue
        table, schema = container.table_name, container.schema
        key = _primary_key(ctx, table, schema)
        names = [op.column_name for op in alters if op.column_name not in key]
        if not names:
            continue
        listed = ", ".join(f"{table}.{n}" for n in names)
        if not key:
            if on == "upgrade":
                ctx.note(
                    f"Not archiving the values of {listed} before their type "
                    f"changes: the table has no primary key; the downgrade gets the converted values."
                )
            continue
        # Where the way back changes the type back: the restore must come after it.
        changed_back = [
            position
            for position, op in enumerate(back.ops)
            if isinstance(op, ModifyTableOps)
            and _same_table(op, table, schema)
            and any(
                isinstance(o, AlterColumnOp) and o.modify_type is not None and o.column_name in names
                for o in op.ops
            )
        ]
        if not changed_back:
            continue
        types = {
            op.column_name: op.modify_type.compile(dialect=dialect)
            for op in alters
            if op.column_name in names
        }
        there.ops.insert(
            there.ops.index(container),
            ArchiveValuesOp(table, names, key=key, revision=revision, schema=schema, on=on),
        )
        back.ops.insert(
            changed_back[-1] + 1,
            RestoreValuesOp(table, names, key=key, revision=revision, types=types, schema=schema, on=on),
        )
        if on == "upgrade":
            ctx.note(
                f"Archiving the values of {listed} before their type changes: "
                f"the downgrade restores the originals."
            )
