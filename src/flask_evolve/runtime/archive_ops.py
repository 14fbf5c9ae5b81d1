"""The archive operations: keep dropped columns and tables so that a downgrade brings their data back."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations

from flask_evolve.errors import MigrationError
from flask_evolve.runtime.sql_text import text_safe

#: Every table the archive owns starts with this; the app's tables never should.
ARCHIVE_PREFIX = "_evolve_archive_"
#: PostgreSQL truncates identifiers at 63 bytes; a longer archive name is shortened with a hash.
MAX_NAME_LENGTH = 63
#: Key in ``Config.attributes[OPTIONS_ATTRIBUTE]`` holding ``{"table.column": "value"}`` from ``--fill``.
FILL_OPTION = "fill"


class ArchiveError(MigrationError):
    """The archive cannot give a step what it needs (purged, values missing, stale); says what to do."""


#: Flask-Evolve's record of each archive table's columns and types as they were when it was written
#: (one row per column, one registry per schema, there only while it holds a record): the restore
#: refuses an archive changed since, whatever script restores it. Named with the archive prefix so
#: that autogenerate, ``check`` and drift leave it out like the archives; no archive has this name
#: (theirs are ``<prefix><token>_<table>``, and "shapes" has no underscore).
SHAPES_TABLE = f"{ARCHIVE_PREFIX}shapes"

#: Archive kinds: ``"drop"`` keeps dropped columns and tables, ``"values"`` the
#: original values of columns whose type changed.
KINDS = ("drop", "values")


def archive_name(revision: str, table_name: str, on: str = "upgrade", kind: str = "drop") -> str:
    """The archive table that keeps what ``revision`` dropped from ``table_name``.

    Deterministic, so that the way back finds what the way there wrote; names
    longer than PostgreSQL's 63 bytes keep a readable start and end with a hash.

    :param on: ``"upgrade"`` for what the upgrade dropped, ``"downgrade"`` for
        what the downgrade dropped (a column or table the revision had added).
    :param kind: ``"values"`` for the original values of columns whose type the
        revision changed (a table can lose columns and change types at once).
    """
    token = revision if on == "upgrade" else f"down_{revision}"
    if kind == "values":
        token = f"val_{token}"
    name = f"{ARCHIVE_PREFIX}{token}_{table_name}"
    if len(name.encode()) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha1(f"{token}\0{table_name}".encode()).hexdigest()[:10]
    head = f"{ARCHIVE_PREFIX}{token[:17]}_"
    room = MAX_NAME_LENGTH - len(head.encode()) - len(digest) - 1
    short_table = table_name.encode()[:room].decode(errors="ignore")
    return f"{head}{short_table}_{digest}"


def _archive_of(op: Any, name: str) -> str:
    return archive_name(op.revision, name, getattr(op, "on", "upgrade"), getattr(op, "kind", "drop"))


def is_archive_table(name: str | None) -> bool:
    """Whether ``name`` is Flask-Evolve's (an archive, or the registry of their shapes): not the app's."""
    return bool(name) and name.startswith(ARCHIVE_PREFIX)  # type: ignore[union-attr]


def _fill_values(operations: Operations) -> dict[str, str]:
    from flask_evolve.autogen.pipeline import OPTIONS_ATTRIBUTE

    environment = getattr(operations.migration_context, "environment_context", None)
    config = getattr(environment, "config", None)
    if config is None:
        return {}
    return dict(config.attributes.get(OPTIONS_ATTRIBUTE, {}).get(FILL_OPTION) or {})


class _Quoting:
    def __init__(self, operations: Operations, schema: str | None) -> None:
        self.preparer = operations.migration_context.dialect.identifier_preparer
        self.schema = schema

    def name(self, name: str) -> str:
        return self.preparer.quote(name)

    def table(self, name: str) -> str:
        quoted = self.preparer.quote(name)
        return f"{self.preparer.quote_schema(self.schema)}.{quoted}" if self.schema else quoted


def _purged_message(what: str, revision: str) -> str:
    return (
        f"the data of {what} dropped by revision {revision} is no longer there "
        f"(its archive was purged with `flask db archive --purge`); downgrade cannot bring it back, "
        f"and nothing was changed."
    )


def _purged_values_message(what: str, revision: str) -> str:
    return (
        f"the original values of {what}, whose type revision {revision} changed, are no longer there "
        f"(their archive was purged with `flask db archive --purge`); downgrade cannot bring them back, "
        f"and nothing was changed."
    )


def _skipped_offline(operations: Operations, what: str, archive: str) -> None:
    """Say in the rendered SQL that a restore needs a live database (``--sql`` cannot look)."""
    operations.migration_context.impl.static_output(
        f"-- Flask-Evolve: {what} is not restored offline: if a downgrade archived it in {archive}, "
        f"run `flask db upgrade` (not --sql) to restore it, or copy it back by hand."
    )


@Operations.register_operation("archive_columns")
class ArchiveColumnsOp(MigrateOperation):
    """Copy (primary key, values) of columns about to be dropped into an archive table.

    :param on: ``"downgrade"`` when the downgrade drops columns the revision added.
    """

    def __init__(
        self,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        self.table_name = table_name
        self.columns = list(columns)
        self.key = list(key)
        self.revision = revision
        self.schema = schema
        self.on = on

    @classmethod
    def archive_columns(
        cls,
        operations: Operations,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        """Keep the values of ``columns`` by primary key ``key`` before they are dropped."""
        return operations.invoke(cls(table_name, columns, key=key, revision=revision, schema=schema, on=on))

    def reverse(self) -> RestoreColumnsOp:
        return RestoreColumnsOp(
            self.table_name,
            self.columns,
            key=self.key,
            revision=self.revision,
            schema=self.schema,
            on=self.on,
        )


@Operations.register_operation("restore_columns")
class RestoreColumnsOp(MigrateOperation):
    """Put archived values back into re-added columns, by primary key, then drop the archive.

    :param required: the columns that become NOT NULL again without a server
        default: rows that have no archived value need ``--fill`` for them.
    :param on: ``"downgrade"`` to restore, on the way up again, what a downgrade
        archived; then a missing archive (a database that never went down) is
        simply nothing to restore.
    :param unique: the columns that come back with a single-column UNIQUE key, and
    :param references: per column, the ``table.column`` its foreign key points at:
        a ``--fill`` value that these would refuse stops the downgrade first.
    """

    def __init__(
        self,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        required: Sequence[str] = (),
        schema: str | None = None,
        on: str = "upgrade",
        unique: Sequence[str] = (),
        references: dict[str, str] | None = None,
    ) -> None:
        self.table_name = table_name
        self.columns = list(columns)
        self.key = list(key)
        self.revision = revision
        self.required = list(required)
        self.schema = schema
        self.on = on
        self.unique = list(unique)
        self.references = dict(references or {})

    @classmethod
    def restore_columns(
        cls,
        operations: Operations,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        required: Sequence[str] = (),
        schema: str | None = None,
        on: str = "upgrade",
        unique: Sequence[str] = (),
        references: dict[str, str] | None = None,
    ) -> None:
        """Restore the values that :meth:`archive_columns` kept."""
        return operations.invoke(
            cls(
                table_name,
                columns,
                key=key,
                revision=revision,
                required=required,
                schema=schema,
                on=on,
                unique=unique,
                references=references,
            )
        )

    def reverse(self) -> ArchiveColumnsOp:
        return ArchiveColumnsOp(
            self.table_name,
            self.columns,
            key=self.key,
            revision=self.revision,
            schema=self.schema,
            on=self.on,
        )


@Operations.register_operation("archive_values")
class ArchiveValuesOp(ArchiveColumnsOp):
    """Copy (primary key, values) of columns whose type is about to change, so that the
    downgrade gives back the originals and not what the conversion made of them."""

    kind = "values"

    @classmethod
    def archive_values(
        cls,
        operations: Operations,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        """Keep the values of ``columns`` by primary key ``key`` before their type changes."""
        return operations.invoke(cls(table_name, columns, key=key, revision=revision, schema=schema, on=on))

    def reverse(self) -> RestoreValuesOp:  # type: ignore[override]
        return RestoreValuesOp(
            self.table_name,
            self.columns,
            key=self.key,
            revision=self.revision,
            schema=self.schema,
            on=self.on,
        )


@Operations.register_operation("restore_values")
class RestoreValuesOp(MigrateOperation):
    """Once a changed type is changed back, put the archived original values back by primary key.

    :param types: per column, the SQL type the archived values were converted to. A
        row is restored only if its value still is what that conversion made of the
        original: a value the app changed since is the app's, and stays.
    :param on: ``"downgrade"`` when the downgrade changed the type (then a missing
        archive, from a database that never went down, is nothing to restore).
    """

    kind = "values"

    def __init__(
        self,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        types: dict[str, str] | None = None,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        self.table_name = table_name
        self.columns = list(columns)
        self.key = list(key)
        self.revision = revision
        self.types = dict(types or {})
        self.schema = schema
        self.on = on

    @classmethod
    def restore_values(
        cls,
        operations: Operations,
        table_name: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        revision: str,
        types: dict[str, str] | None = None,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        """Restore the values that :meth:`archive_values` kept."""
        return operations.invoke(
            cls(table_name, columns, key=key, revision=revision, types=types, schema=schema, on=on)
        )

    def reverse(self) -> ArchiveValuesOp:
        return ArchiveValuesOp(
            self.table_name,
            self.columns,
            key=self.key,
            revision=self.revision,
            schema=self.schema,
            on=self.on,
        )


@Operations.register_operation("archive_table")
class ArchiveTableOp(MigrateOperation):
    """Rename a table that is being dropped into the archive, with its rows and constraints.

    :param constraints: names of the table's primary key and unique constraints
        to rename along (PostgreSQL), so that their index names are free again.
    :param on: ``"downgrade"`` when the downgrade drops a table the revision created.
    :param enums: per PostgreSQL ENUM column, its type (as SQL): the archived column
        becomes text, so that the migration may drop the type with the table.
    :param defaults: the server defaults (as SQL) of those columns, which depend on
        the type too; ``restore_table`` sets them again.
    """

    def __init__(
        self,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        constraints: Sequence[str] = (),
        on: str = "upgrade",
        enums: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        self.table_name = table_name
        self.revision = revision
        self.schema = schema
        self.constraints = list(constraints)
        self.on = on
        self.enums = dict(enums or {})
        self.defaults = dict(defaults or {})

    @classmethod
    def archive_table(
        cls,
        operations: Operations,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        constraints: Sequence[str] = (),
        on: str = "upgrade",
        enums: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        """Move ``table_name`` into the archive instead of dropping it."""
        return operations.invoke(
            cls(
                table_name,
                revision=revision,
                schema=schema,
                constraints=constraints,
                on=on,
                enums=enums,
                defaults=defaults,
            )
        )

    def reverse(self) -> RestoreTableOp | RestoreRowsOp:
        if self.on == "downgrade":
            return RestoreRowsOp(self.table_name, revision=self.revision, schema=self.schema)
        return RestoreTableOp(
            self.table_name,
            revision=self.revision,
            schema=self.schema,
            constraints=self.constraints,
            enums=self.enums,
            defaults=self.defaults,
        )


@Operations.register_operation("restore_table")
class RestoreTableOp(MigrateOperation):
    """Rename an archived table (and the constraints renamed with it) back to its name.

    :param enums: the ENUM columns that ``archive_table`` turned into text, with
        their types (re-created by then), and
    :param defaults: their server defaults, to set again.
    """

    def __init__(
        self,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        constraints: Sequence[str] = (),
        enums: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        self.table_name = table_name
        self.revision = revision
        self.schema = schema
        self.constraints = list(constraints)
        self.enums = dict(enums or {})
        self.defaults = dict(defaults or {})

    @classmethod
    def restore_table(
        cls,
        operations: Operations,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        constraints: Sequence[str] = (),
        enums: dict[str, str] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        """Bring back the table that :meth:`archive_table` kept."""
        return operations.invoke(
            cls(
                table_name,
                revision=revision,
                schema=schema,
                constraints=constraints,
                enums=enums,
                defaults=defaults,
            )
        )

    def reverse(self) -> ArchiveTableOp:
        return ArchiveTableOp(
            self.table_name,
            revision=self.revision,
            schema=self.schema,
            constraints=self.constraints,
            enums=self.enums,
            defaults=self.defaults,
        )


@Operations.register_operation("archive_rows")
class ArchiveRowsOp(MigrateOperation):
    """Copy every row of a table about to be dropped into the archive (``CREATE TABLE ... AS SELECT``).

    Used instead of ``archive_table``'s rename for a SQLite table with foreign keys:
    renamed, it would keep them, and with ``PRAGMA foreign_keys=ON`` the rows it
    points at could not be deleted (or an ``ON DELETE`` action would change it).
    """

    def __init__(
        self, table_name: str, *, revision: str, schema: str | None = None, on: str = "upgrade"
    ) -> None:
        self.table_name = table_name
        self.revision = revision
        self.schema = schema
        self.on = on

    @classmethod
    def archive_rows(
        cls,
        operations: Operations,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        on: str = "upgrade",
    ) -> None:
        """Keep a copy of the rows of ``table_name`` before it is dropped."""
        return operations.invoke(cls(table_name, revision=revision, schema=schema, on=on))

    def reverse(self) -> RestoreRowsOp:
        return RestoreRowsOp(self.table_name, revision=self.revision, schema=self.schema, on=self.on)


@Operations.register_operation("restore_rows")
class RestoreRowsOp(MigrateOperation):
    """Copy archived rows back into the table just re-created, then drop the archive.

    :param on: ``"downgrade"`` (the default): on the way up again, the rows a
        downgrade archived; a database that never went down has no archive, and
        then there is nothing to do. ``"upgrade"``: the rows ``archive_rows`` kept.
    """

    def __init__(
        self, table_name: str, *, revision: str, schema: str | None = None, on: str = "downgrade"
    ) -> None:
        self.table_name = table_name
        self.revision = revision
        self.schema = schema
        self.on = on

    @classmethod
    def restore_rows(
        cls,
        operations: Operations,
        table_name: str,
        *,
        revision: str,
        schema: str | None = None,
        on: str = "downgrade",
    ) -> None:
        """Copy the archived rows of ``table_name`` back, if a downgrade archived any."""
        return operations.invoke(cls(table_name, revision=revision, schema=schema, on=on))

    def reverse(self) -> ArchiveTableOp | ArchiveRowsOp:
        if self.on == "upgrade":
            return ArchiveRowsOp(self.table_name, revision=self.revision, schema=self.schema)
        return ArchiveTableOp(self.table_name, revision=self.revision, schema=self.schema, on="downgrade")


@Operations.register_operation("check_archive")
class CheckArchiveOp(MigrateOperation):
    """Stop a downgrade before it changes anything if the archive cannot give back what it must.

    First in a downgrade: the archive table is still there (not purged), and
    every row will have a value for each ``required`` column (archived,
    ``--fill``), else the error names the options.

    :param columns: the archived columns, or ``None`` for a whole table.
    :param types: every column of the archive table with its type, as the database
        spelled it when the revision was generated (PostgreSQL's ``format_type``, SQLite's
        declared type): an archive changed since is refused instead of restored.
        Scripts written before this parameter existed check the column names only.
    """

    def __init__(
        self,
        table_name: str,
        columns: Sequence[str] | None = None,
        *,
        revision: str,
        key: Sequence[str] = (),
        required: Sequence[str] = (),
        schema: str | None = None,
        kind: str = "drop",
        unique: Sequence[str] = (),
        references: dict[str, str] | None = None,
        types: dict[str, str] | None = None,
    ) -> None:
        self.table_name = table_name
        self.columns = list(columns) if columns is not None else None
        self.revision = revision
        self.key = list(key)
        self.required = list(required)
        self.schema = schema
        self.kind = kind
        self.unique = list(unique)
        self.references = dict(references or {})
        self.types = dict(types) if types else None

    @classmethod
    def check_archive(
        cls,
        operations: Operations,
        table_name: str,
        columns: Sequence[str] | None = None,
        *,
        revision: str,
        key: Sequence[str] = (),
        required: Sequence[str] = (),
        schema: str | None = None,
        kind: str = "drop",
        unique: Sequence[str] = (),
        references: dict[str, str] | None = None,
        types: dict[str, str] | None = None,
    ) -> None:
        """Fail with a clear message, and no change made, if the restore that follows cannot succeed."""
        return operations.invoke(
            cls(
                table_name,
                columns,
                revision=revision,
                key=key,
                required=required,
                schema=schema,
                kind=kind,
                unique=unique,
                references=references,
                types=types,
            )
        )

    def reverse(self) -> CheckArchiveOp:
        # A check changes nothing, so undoing it is the same check.
        return self

    @classmethod
    def for_restore(
        cls,
        op: RestoreColumnsOp | RestoreTableOp | RestoreValuesOp | RestoreRowsOp,
        types: dict[str, str] | None = None,
    ) -> CheckArchiveOp:
        if isinstance(op, RestoreTableOp | RestoreRowsOp):
            return cls(op.table_name, revision=op.revision, schema=op.schema, types=types)
        if isinstance(op, RestoreValuesOp):
            return cls(
                op.table_name, op.columns, revision=op.revision, schema=op.schema, kind=op.kind, types=types
            )
        return cls(
            op.table_name,
            op.columns,
            revision=op.revision,
            key=op.key,
            required=op.required,
            schema=op.schema,
            unique=op.unique,
            references=op.references,
            types=types,
        )


# -- what the operations do ----------------------------------------------------------------


def _has_table(operations: Operations, name: str, schema: str | None) -> bool:
    return sa.inspect(operations.get_bind()).has_table(name, schema=schema)


#: Per migration context: (the connection's transaction, {schema: archive table names}).
_ARCHIVES: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str | None, set[str]]]] = (
    weakref.WeakKeyDictionary()
)


def _has_archive(operations: Operations, name: str, schema: str | None) -> bool:
    """Whether archive ``name`` exists, from one listing per transaction instead of one probe per op.

    Every revision's upgrade restores what an earlier downgrade may have archived, so an
    initial revision of N tables would otherwise send N catalog probes. Archive tables are
    created and dropped only by these operations, which call :func:`_archive_listed`; the
    listing is also re-read in a new transaction, so a rollback cannot leave it stale.
    """
    context = operations.migration_context
    bind = operations.get_bind()
    transaction = bind.get_transaction()
    if transaction is None:
        # Outside a transaction nothing bounds how long a listing stays true.
        return _has_table(operations, name, schema)
    cached = _ARCHIVES.get(context)
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        _ARCHIVES[context] = cached
    names = cached[1].get(schema)
    if names is None:
        names = {n for n in sa.inspect(bind).get_table_names(schema=schema) if is_archive_table(n)}
        cached[1][schema] = names
    return name in names


def _forget_archives(operations: Operations) -> None:
    """An archive table is about to be created, renamed or dropped: the next probe reads the catalog."""
    _ARCHIVES.pop(operations.migration_context, None)


def _archive_listed(operations: Operations, name: str, schema: str | None, *, exists: bool) -> None:
    """Archive ``name`` was just created (``exists``) or dropped: keep the listing true without re-reading it.

    Re-reading it after each change made the upgrade after a downgrade of N tables read N listings
    of up to 2N tables. Listings of other schema keys are forgotten: ``None`` and the default
    schema's name are two keys for one schema.
    """
    cached = _ARCHIVES.get(operations.migration_context)
    names = None if cached is None else cached[1].get(schema)
    if cached is None or names is None:
        _forget_archives(operations)
        return
    if exists:
        names.add(name)
    else:
        names.discard(name)
    for other in [key for key in cached[1] if key != schema]:
        del cached[1][other]


def _refuse_stale_archive(
    operations: Operations, op: ArchiveColumnsOp | ArchiveTableOp | ArchiveRowsOp, archive: str
) -> None:
    if operations.migration_context.as_sql or not _has_archive(operations, archive, op.schema):
        return
    raise ArchiveError(
        f"the archive table {archive} already exists (left by an earlier {op.on} of revision {op.revision} "
        f"whose data was never restored, e.g. after `flask db stamp`): look at it with `flask db archive`, "
        f"then drop it (`flask db archive --purge`) if it is no longer needed; the migration stopped."
    )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _record_shape(operations: Operations, archive: str, schema: str | None) -> None:
    """Write down the columns and types archive ``archive`` has just been given, for its restore.

    One ``INSERT ... SELECT`` from the catalog, run by the database in the migration's transaction
    (a rollback takes the record with the archive), so the upgrade sends no reflection query;
    ``--sql`` prints the same statements. Types as :func:`archive_columns` reads them back.
    """
    dialect = operations.migration_context.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return
    q = _Quoting(operations, schema)
    registry = q.table(SHAPES_TABLE)
    offline = operations.migration_context.as_sql
    # The listing the stale-archive check just read says whether the registry is there.
    known = not offline and _has_archive(operations, SHAPES_TABLE, schema)
    if not known:
        operations.execute(
            f"CREATE TABLE IF NOT EXISTS {registry} (archive TEXT NOT NULL, ordinal INTEGER NOT NULL, "
            "column_name TEXT NOT NULL, column_type TEXT NOT NULL, PRIMARY KEY (archive, column_name))"
        )
        if not offline:
            _archive_listed(operations, SHAPES_TABLE, schema, exists=True)
    if known or offline:
        # A record left by an archive dropped by hand, or restored offline, is not this one's.
        operations.execute(text_safe(f"DELETE FROM {registry} WHERE archive = {_literal(archive)}"))
    columns = f"INSERT INTO {registry} (archive, ordinal, column_name, column_type)"
    if dialect == "postgresql":
        select = (
            f"SELECT {_literal(archive)}, attnum, attname, format_type(atttypid, atttypmod) "
            f"FROM pg_attribute WHERE attrelid = to_regclass({_literal(q.table(archive))}) "
            "AND attnum > 0 AND NOT attisdropped"
        )
    else:
        where = f", {_literal(schema)}" if schema else ""
        select = (
            f"SELECT {_literal(archive)}, cid, name, coalesce(type, '') "
            f"FROM pragma_table_info({_literal(archive)}{where})"
        )
    operations.execute(text_safe(f"{columns} {select}"))


def _recorded_shape(operations: Operations, archive: str, schema: str | None) -> dict[str, str] | None:
    """``{column: type}`` recorded when ``archive`` was written; ``None`` for an archive written
    before Flask-Evolve kept the registry (or by hand), which then is not checked against it."""
    if not _has_archive(operations, SHAPES_TABLE, schema):
        return None
    registry = _Quoting(operations, schema).table(SHAPES_TABLE)
    rows = operations.get_bind().execute(
        sa.text(f"SELECT column_name, column_type FROM {registry} WHERE archive = :archive ORDER BY ordinal"),
        {"archive": archive},
    )
    return {row[0]: row[1] for row in rows} or None


def _archive_restored(operations: Operations, archive: str, schema: str | None) -> None:
    """Archive ``archive`` is gone (restored): so is its record, and the registry with its last one."""
    _archive_listed(operations, archive, schema, exists=False)
    # Offline the registry cannot be known to be there; the next archive of that name replaces the record.
    if operations.migration_context.as_sql or not _has_archive(operations, SHAPES_TABLE, schema):
        return
    registry = _Quoting(operations, schema).table(SHAPES_TABLE)
    bind = operations.get_bind()
    bind.execute(sa.text(f"DELETE FROM {registry} WHERE archive = :archive"), {"archive": archive})
    if bind.execute(sa.text(f"SELECT 1 FROM {registry} LIMIT 1")).first() is None:
        operations.execute(f"DROP TABLE {registry}")
        _archive_listed(operations, SHAPES_TABLE, schema, exists=False)


def _refuse_changed_downgrade_archive(
    operations: Operations, op: RestoreColumnsOp | RestoreValuesOp | RestoreRowsOp, archive: str
) -> None:
    """On the way up, before restoring what a downgrade archived: refuse it if it changed since.

    No ``check_archive`` comes first there (a database that never went down has no archive), so
    this compares with the registry's record only, and costs its two queries only when the archive
    is there to restore.
    """
    found = archive_columns(operations.get_bind(), archive, op.schema)
    check = CheckArchiveOp(op.table_name, revision=op.revision, schema=op.schema)
    _refuse_changed_archive(operations, check, archive, found, stage="upgrade")


@Operations.implementation_for(ArchiveColumnsOp)
def _archive_columns(operations: Operations, op: ArchiveColumnsOp) -> None:
    q = _Quoting(operations, op.schema)
    archive = _archive_of(op, op.table_name)
    _refuse_stale_archive(operations, op, archive)
    selected = ", ".join(q.name(c) for c in [*op.key, *op.columns])
    # CREATE TABLE AS copies in one statement on both dialects and renders as
    # plain SQL for `upgrade --sql`; the lookup index is built only on restore.
    operations.execute(f"CREATE TABLE {q.table(archive)} AS SELECT {selected} FROM {q.table(op.table_name)}")
    _archive_listed(operations, archive, op.schema, exists=True)
    _record_shape(operations, archive, op.schema)


def _missing_rows(operations: Operations, op: CheckArchiveOp, q: _Quoting, archive: str) -> int:
    match = " AND ".join(f"a.{q.name(k)} = t.{q.name(k)}" for k in op.key)
    sql = (
        f"SELECT count(*) FROM {q.table(op.table_name)} t "
        f"WHERE NOT EXISTS (SELECT 1 FROM {q.table(archive)} a WHERE {match})"
    )
    return int(operations.get_bind().execute(sa.text(sql)).scalar_one())


def _column_type(operations: Operations, op: RestoreColumnsOp, column: str) -> str | None:
    for reflected in sa.inspect(operations.get_bind()).get_columns(op.table_name, schema=op.schema):
        if reflected["name"] == column:
            return reflected["type"].compile(dialect=operations.migration_context.dialect)
    return None


@Operations.implementation_for(CheckArchiveOp)
def _check_archive(operations: Operations, op: CheckArchiveOp) -> None:
    if operations.migration_context.as_sql:
        return
    q = _Quoting(operations, op.schema)
    archive = _archive_of(op, op.table_name)
    if op.columns is None:
        what = f"table {op.table_name}"
    else:
        what = ", ".join(f"{op.table_name}.{c}" for c in op.columns)
    # One catalog query: whether the archive is there, and its columns to compare.
    found = archive_columns(operations.get_bind(), archive, op.schema)
    if not found:
        if op.kind == "values":
            raise ArchiveError(_purged_values_message(what, op.revision))
        raise ArchiveError(_purged_message(what, op.revision))
    _refuse_changed_archive(operations, op, archive, found)
    fills = _fill_values(operations)
    unfilled = [c for c in op.required if f"{op.table_name}.{c}" not in fills]
    filled = [c for c in op.columns or () if f"{op.table_name}.{c}" in fills]
    if not (unfilled or filled) or not _has_table(operations, op.table_name, op.schema):
        return
    missing = _missing_rows(operations, op, q, archive)
    if missing and filled:
        _check_fills(operations, op, archive, missing, {c: fills[f"{op.table_name}.{c}"] for c in filled})
    if missing and unfilled:
        options = " ".join(f"--fill {op.table_name}.{c}=VALUE" for c in unfilled)
        raise ArchiveError(
            f"{missing} row(s) of {op.table_name} were inserted after revision {op.revision} dropped "
            f"{', '.join(unfilled)}, so they have no value to restore and the column is NOT NULL "
            f"without a server default: pass `{options}` to `flask db downgrade`, or delete those rows, "
            f"or edit that revision's downgrade to leave the column nullable. Nothing was changed."
        )


def archive_columns(bind: sa.Connection, name: str, schema: str | None) -> dict[str, str]:
    """``{column: type}`` of table ``name`` in one catalog query (empty: no such table).

    Types as the database spells them: PostgreSQL's ``format_type``, SQLite's declared type.
    """
    preparer = bind.dialect.identifier_preparer
    if bind.dialect.name == "postgresql":
        quoted = preparer.quote(name)
        if schema:
            quoted = f"{preparer.quote_schema(schema)}.{quoted}"
        rows = bind.execute(
            sa.text(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"table": quoted},
        )
        return {row[0]: row[1] for row in rows}
    if bind.dialect.name == "sqlite":
        prefix = f"{preparer.quote_schema(schema)}." if schema else ""
        rows = bind.exec_driver_sql(f"PRAGMA {prefix}table_info({preparer.quote(name)})")
        return {row[1]: row[2] or "" for row in rows}
    return {c["name"]: str(c["type"]) for c in sa.inspect(bind).get_columns(name, schema=schema)}


def _sqlite_affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (its rules, in its order).

    An archive made by ``CREATE TABLE ... AS SELECT`` declares only the affinity
    (``VARCHAR(80)`` becomes ``TEXT``), so that is what archives compare on SQLite.
    """
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _same_type(found: str, wanted: str, *, sqlite: bool) -> bool:
    if sqlite:
        return _sqlite_affinity(found) == _sqlite_affinity(wanted)
    return found.lower() == wanted.lower()


def _refuse_changed_archive(
    operations: Operations,
    op: CheckArchiveOp,
    archive: str,
    found: dict[str, str],
    stage: str = "downgrade",
) -> None:
    """Refuse an archive whose columns or types are not what the revision archived.

    What was archived is, first, what the registry recorded when the archive was written (so
    scripts of any age are checked), else the script's ``types=``, else its column names.

    :param stage: the command that restores it (``"upgrade"`` for what a downgrade archived).
    """
    expected: dict[str, str | None]
    recorded = _recorded_shape(operations, archive, op.schema)
    if recorded is not None:
        expected = dict(recorded)
    elif op.types:
        expected = dict(op.types)
    elif op.columns is not None and op.key:
        # A script from before ``types``: at least the names, which CREATE TABLE AS fixed.
        expected = dict.fromkeys([*op.key, *op.columns])
    else:
        return
    sqlite = operations.migration_context.dialect.name == "sqlite"
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    differences = [f"missing {', '.join(missing)}"] if missing else []
    differences += [f"not archived: {', '.join(extra)}"] if extra else []
    differences += [
        f"{c} is {found[c]}, not {wanted}"
        for c, wanted in expected.items()
        if wanted is not None and c in found and not _same_type(found[c], wanted, sqlite=sqlite)
    ]
    if differences:
        raise ArchiveError(
            f"the archive table {archive} is not what revision {op.revision} archived from "
            f"{op.table_name} ({'; '.join(differences)}): it was changed, or another table's archive "
            f"was renamed into its place, after the {'upgrade' if stage == 'downgrade' else 'downgrade'}; "
            f"make it match again (rename or alter it back), then run the {stage} again. "
            + ("Nothing was changed." if stage == "downgrade" else "That migration was rolled back.")
        )


def _fill_error(
    op: CheckArchiveOp,
    column: str,
    value: str,
    problem: str,
    fix: str = "pass another value, or delete those rows first",
) -> ArchiveError:
    return ArchiveError(f"`--fill {op.table_name}.{column}={value}` {problem}: {fix}. Nothing was changed.")


def _check_fills(
    operations: Operations, op: CheckArchiveOp, archive: str, missing: int, fills: dict[str, str]
) -> None:
    """Refuse a ``--fill`` value that the UNIQUE key or foreign key coming back would refuse later."""
    q = _Quoting(operations, op.schema)
    bind = operations.get_bind()
    dialect = operations.migration_context.dialect
    inspector = sa.inspect(bind)
    archived = {c["name"]: c["type"] for c in inspector.get_columns(archive, schema=op.schema)}

    def exists(sql: str, column: str, value: str) -> bool:
        # A savepoint: a value the type cannot hold fails the cast, and PostgreSQL would
        # otherwise abort the whole migration's transaction.
        try:
            if dialect.name != "postgresql":  # SQLite's CAST never fails
                return bind.execute(sa.text(sql), {"value": value}).first() is not None
            with bind.begin_nested():
                return bind.execute(sa.text(sql), {"value": value}).first() is not None
        except sa.exc.DBAPIError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise _fill_error(op, column, value, f"is not a valid value ({detail})") from None

    for column, value in fills.items():
        if column in op.unique:
            if missing > 1:
                raise _fill_error(
                    op,
                    column,
                    value,
                    f"would give {missing} rows (inserted after revision {op.revision}) the same value, "
                    f"and {op.table_name}.{column} comes back UNIQUE",
                    "delete all but one of those rows first, or edit that revision's downgrade "
                    "to leave out the unique key",
                )
            type_sql = archived[column].compile(dialect=dialect) if column in archived else None
            literal = f"CAST(:value AS {type_sql})" if type_sql else ":value"
            if exists(f"SELECT 1 FROM {q.table(archive)} WHERE {q.name(column)} = {literal}", column, value):
                raise _fill_error(
                    op,
                    column,
                    value,
                    f"is already the value of a restored row, and {op.table_name}.{column} comes back UNIQUE",
                )
        target = op.references.get(column)
        if target is None:
            continue
        parent, _, parent_column = target.rpartition(".")
        parent_schema, _, parent_table = parent.rpartition(".")
        if not inspector.has_table(parent_table, schema=parent_schema or None):
            continue
        parent_types = {
            c["name"]: c["type"] for c in inspector.get_columns(parent_table, schema=parent_schema or None)
        }
        type_sql = (
            parent_types[parent_column].compile(dialect=dialect) if parent_column in parent_types else None
        )
        literal = f"CAST(:value AS {type_sql})" if type_sql else ":value"
        quoted_parent = _Quoting(operations, parent_schema or None).table(parent_table)
        if not exists(
            f"SELECT 1 FROM {quoted_parent} WHERE {q.name(parent_column)} = {literal}", column, value
        ):
            raise _fill_error(
                op,
                column,
                value,
                f"names no row of {parent_table}, and the foreign key {op.table_name}.{column} -> "
                f"{target} comes back (fill with an existing {parent_table}.{parent_column})",
            )


@Operations.implementation_for(RestoreColumnsOp)
def _restore_columns(operations: Operations, op: RestoreColumnsOp) -> None:
    q = _Quoting(operations, op.schema)
    archive = _archive_of(op, op.table_name)
    fills = _fill_values(operations)
    offline = operations.migration_context.as_sql
    if op.on == "downgrade":
        # Only a database that went down has something to give back; `--sql` cannot know.
        if offline:
            what = ", ".join(f"{op.table_name}.{c}" for c in op.columns)
            _skipped_offline(operations, what, archive)
            return
        if not _has_archive(operations, archive, op.schema):
            return
        _refuse_changed_downgrade_archive(operations, op, archive)
    elif not offline:
        # Again, in case the script was edited to restore without checking first.
        _check_archive(operations, CheckArchiveOp.for_restore(op))
    # The archive has no index (the upgrade stays cheap); one is needed for the join.
    index = _archive_of(op, f"{op.table_name}_key")
    keys = ", ".join(q.name(k) for k in op.key)
    operations.execute(f"CREATE UNIQUE INDEX {q.name(index)} ON {q.table(archive)} ({keys})")
    assignments = ", ".join(f"{q.name(c)} = a.{q.name(c)}" for c in op.columns)
    match = " AND ".join(f"a.{q.name(k)} = {q.table(op.table_name)}.{q.name(k)}" for k in op.key)
    operations.execute(
        f"UPDATE {q.table(op.table_name)} SET {assignments} FROM {q.table(archive)} a WHERE {match}"
    )
    no_archived_row = (
        f"NOT EXISTS (SELECT 1 FROM {q.table(archive)} a WHERE "
        + " AND ".join(f"a.{q.name(k)} = {q.table(op.table_name)}.{q.name(k)}" for k in op.key)
        + ")"
    )
    for column in op.columns:
        value = fills.get(f"{op.table_name}.{column}")
        if value is None:
            continue
        type_sql = None if offline else _column_type(operations, op, column)
        literal = "'" + value.replace("'", "''") + "'"
        expression = f"CAST({literal} AS {type_sql})" if type_sql else literal
        update = f"UPDATE {q.table(op.table_name)} SET {q.name(column)} = {expression}"
        operations.execute(text_safe(f"{update} WHERE {no_archived_row}"))
    operations.execute(f"DROP TABLE {q.table(archive)}")
    _archive_restored(operations, archive, op.schema)


def _refuse_dependent_views(operations: Operations, op: ArchiveRowsOp | ArchiveTableOp) -> None:
    """Stop before a table a view reads is archived and dropped: PostgreSQL's DROP TABLE would fail on
    the view, SQLite's would leave it broken, and a rename into the archive would leave it reading
    the archive."""
    if operations.migration_context.as_sql:
        return
    from flask_evolve.runtime.archive_store import dependent_views

    views = dependent_views(operations.get_bind(), op.table_name, op.schema)
    if views:
        raise ArchiveError(
            f"table {op.table_name} is read by view {', '.join(views)}: drop or change that view in "
            f"this migration before the table goes (op.execute('DROP VIEW ...')), nothing was changed."
        )


@Operations.implementation_for(ArchiveRowsOp)
def _archive_rows(operations: Operations, op: ArchiveRowsOp) -> None:
    q = _Quoting(operations, op.schema)
    archive = _archive_of(op, op.table_name)
    _refuse_stale_archive(operations, op, archive)
    _refuse_dependent_views(operations, op)
    operations.execute(f"CREATE TABLE {q.table(archive)} AS SELECT * FROM {q.table(op.table_name)}")
    _archive_listed(operations, archive, op.schema, exists=True)
    _record_shape(operations, archive, op.schema)


@Operations.implementation_for(RestoreValuesOp)
def _restore_values(operations: Operations, op: RestoreValuesOp) -> None:
    q = _Quoting(operations, op.schema)
    archive = _archive_of(op, op.table_name)
    offline = operations.migration_context.as_sql
    if op.on == "downgrade":
        if offline:
            what = ", ".join(f"{op.table_name}.{c}" for c in op.columns)
            _skipped_offline(operations, f"the original values of {what}", archive)
            return
        if not _has_archive(operations, archive, op.schema):
            return
        _refuse_changed_downgrade_archive(operations, op, archive)
    elif not offline:
        _check_archive(operations, CheckArchiveOp.for_restore(op))
    index = _archive_of(op, f"{op.table_name}_key")
    keys = ", ".join(q.name(k) for k in op.key)
    operations.execute(f"CREATE UNIQUE INDEX {q.name(index)} ON {q.table(archive)} ({keys})")
    target = q.table(op.table_name)
    match = " AND ".join(f"a.{q.name(k)} = {target}.{q.name(k)}" for k in op.key)
    same = "IS" if operations.migration_context.dialect.name == "sqlite" else "IS NOT DISTINCT FROM"
    for column in op.columns:
        name = q.name(column)
        unchanged = ""
        converted_to = op.types.get(column)
        if converted_to:
            unchanged = (
                f" AND CAST({target}.{name} AS {converted_to}) {same} CAST(a.{name} AS {converted_to})"
            )
        operations.execute(
            f"UPDATE {target} SET {name} = a.{name} FROM {q.table(archive)} a WHERE {match}{unchanged}"
        )
    operations.execute(f"DROP TABLE {q.table(archive)}")
    _archive_restored(operations, archive, op.schema)


@Operations.implementation_for(RestoreRowsOp)
def _restore_rows(operations: Operations, op: RestoreRowsOp) -> None:
    archive = _archive_of(op, op.table_name)
    q = _Quoting(operations, op.schema)
    if operations.migration_context.as_sql:
        if op.on == "downgrade":
            _skipped_offline(operations, f"table {op.table_name}", archive)
            return
        # Offline nothing can be reflected; the re-created table has the archived columns, in order.
        operations.execute(f"INSERT INTO {q.table(op.table_name)} SELECT * FROM {q.table(archive)}")
        operations.execute(f"DROP TABLE {q.table(archive)}")
        return
    exists = _has_archive if op.on == "downgrade" else _has_table
    if not exists(operations, archive, op.schema):
        if op.on == "downgrade":
            return
        raise ArchiveError(_purged_message(f"table {op.table_name}", op.revision))
    if op.on == "downgrade":
        _refuse_changed_downgrade_archive(operations, op, archive)
    # Both tables' columns in one catalog query, not one each: an initial revision restores N tables.
    reflected = {
        key[1]: found
        for key, found in sa.inspect(operations.get_bind())
        .get_multi_columns(schema=op.schema, filter_names=[archive, op.table_name])
        .items()
    }
    kept = {c["name"] for c in reflected.get(archive, [])}
    targets = [c for c in reflected.get(op.table_name, []) if c["name"] in kept]
    columns = [c["name"] for c in targets]
    listed = ", ".join(q.name(c) for c in columns)
    dialect = operations.migration_context.dialect
    # ENUM columns were archived as text (their type went with the table): cast them back.
    selected = ", ".join(
        f"CAST({q.name(c['name'])} AS {c['type'].compile(dialect=dialect)})"
        if isinstance(c["type"], sa.Enum)
        else q.name(c["name"])
        for c in targets
    )
    operations.execute(
        f"INSERT INTO {q.table(op.table_name)} ({listed}) SELECT {selected} FROM {q.table(archive)}"
    )
    if operations.migration_context.dialect.name == "postgresql":
        # The rows keep their keys; the re-created sequences must continue after them.
        bind = operations.get_bind()
        sequences = _serial_sequences(operations, op.table_name, op.schema)
        for column in columns:
            sequence = sequences.get(column, (None, None))[1]
            if sequence:
                top = f"(SELECT coalesce(max({q.name(column)}), 0) + 1 FROM {q.table(op.table_name)})"
                bind.execute(sa.text("SELECT setval(:sequence, " + top + ", false)"), {"sequence": sequence})
    operations.execute(f"DROP TABLE {q.table(archive)}")
    _archive_restored(operations, archive, op.schema)


#: The pg_constraint kinds backed by an index (primary key, unique, exclusion), whose names are
#: index names, unique in the whole schema, so an archived table must not keep them; with the
#: label PostgreSQL puts in the names it chooses for them (``employee_pkey``, ``employee_email_key``).
CONSTRAINT_LABELS = {"p": "pkey", "u": "key", "x": "excl"}
#: How many numbered variants (``employee_email_key1`` ...) of a chosen name to try when restoring.
NAME_SUFFIXES = 20


def _rename_constraints(
    operations: Operations, table: str, renames: list[tuple[str, str]], schema: str | None
) -> None:
    q = _Quoting(operations, schema)
    for old, new in renames:
        operations.execute(f"ALTER TABLE {q.table(table)} RENAME CONSTRAINT {q.name(old)} TO {q.name(new)}")


def _indexed_constraints(
    operations: Operations, table: str, schema: str | None
) -> list[tuple[str, str, list[str]]] | None:
    """(name, kind, columns) of the table's index-backed constraints on a live PostgreSQL
    connection; None when they can't be read (offline, another database)."""
    context = operations.migration_context
    if context.as_sql or context.dialect.name != "postgresql":
        return None
    q = _Quoting(operations, schema)
    rows = operations.get_bind().execute(
        sa.text(
            "SELECT c.conname, CAST(c.contype AS text), CAST(ARRAY("
            "SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, position) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.position"
            ") AS text[]) FROM pg_constraint c "
            "WHERE c.conrelid = CAST(:table AS regclass) AND c.contype IN ('p', 'u', 'x') ORDER BY c.conname"
        ),
        {"table": q.table(table)},
    )
    return [(row[0], row[1], list(row[2] or [])) for row in rows]


def _original_constraint(op: RestoreTableOp, archived: str, kind: str, columns: list[str]) -> str | None:
    """The name the archived constraint ``archived`` had before ``archive_table`` renamed it, or None.

    The archive name is a hash past 63 bytes, so it is matched against candidates: the names
    the script lists, the names PostgreSQL chooses for an unnamed constraint on these columns
    (numbered too, as when the name was taken), and the archive name without its prefix.
    """
    candidates = list(op.constraints)
    label = CONSTRAINT_LABELS[kind]
    addition = None if kind == "p" else "_".join(columns)
    for number in range(NAME_SUFFIXES):
        candidates.append(_postgresql_object_name(op.table_name, addition, f"{label}{number or ''}"))
    # Last: a hashed archive name, stripped of its prefix, is an archive name of itself too.
    prefix = _archive_of(op, "")
    if archived.startswith(prefix):
        candidates.append(archived[len(prefix):])
    for candidate in candidates:
        if candidate and candidate != archived and _archive_of(op, candidate) == archived:
            return candidate
    return None


def _owned_sequences(operations: Operations, table: str, schema: str | None) -> list[tuple[str, str]]:
    """(column, sequence name) of the table's SERIAL / identity columns on PostgreSQL."""
    if operations.migration_context.as_sql or operations.migration_context.dialect.name != "postgresql":
        return []
    return [
        (column, name) for column, (name, _qualified) in _serial_sequences(operations, table, schema).items()
    ]


def _serial_sequences(operations: Operations, table: str, schema: str | None) -> dict[str, tuple[str, str]]:
    """{column: (bare sequence name, name usable in setval)} for the table's owned sequences.

    One catalog query for the whole table, where pg_get_serial_sequence needs one per column:
    the same pg_depend links it follows (an 'a'uto dependency for SERIAL, 'i'nternal for identity).
    """
    q = _Quoting(operations, schema)
    rows = operations.get_bind().execute(
        sa.text(
            "SELECT a.attname, s.relname, CAST(CAST(s.oid AS regclass) AS text) FROM pg_depend d "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            "WHERE d.classid = CAST('pg_class' AS regclass) AND d.objsubid = 0 "
            "AND d.refclassid = CAST('pg_class' AS regclass) AND d.deptype IN ('a', 'i') "
            "AND d.refobjid = CAST(:table AS regclass) AND NOT a.attisdropped"
        ),
        {"table": q.table(table)},
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def _rename_sequence(operations: Operations, old: str, new: str, schema: str | None) -> None:
    q = _Quoting(operations, schema)
    operations.execute(f"ALTER SEQUENCE {q.table(old)} RENAME TO {q.name(new)}")


@Operations.implementation_for(ArchiveTableOp)
def _archive_table(operations: Operations, op: ArchiveTableOp) -> None:
    archive = _archive_of(op, op.table_name)
    _refuse_stale_archive(operations, op, archive)
    _refuse_dependent_views(operations, op)
    # Sequences keep their names through a rename; a new table of the same name would get
    # "<table>_<column>_seq1" while the archive holds the old name.
    for _column, sequence in _owned_sequences(operations, op.table_name, op.schema):
        _rename_sequence(operations, sequence, _archive_of(op, sequence), op.schema)
    # Text, so that the archive does not hold on to the type the migration drops with the table.
    q = _Quoting(operations, op.schema)
    for column in op.enums:
        name = q.name(column)
        if column in op.defaults:
            operations.execute(f"ALTER TABLE {q.table(op.table_name)} ALTER COLUMN {name} DROP DEFAULT")
        operations.execute(
            f"ALTER TABLE {q.table(op.table_name)} ALTER COLUMN {name} TYPE TEXT USING {name}::text"
        )
    operations.rename_table(op.table_name, archive, schema=op.schema)
    _archive_listed(operations, archive, op.schema, exists=True)
    _record_shape(operations, archive, op.schema)
    found = _indexed_constraints(operations, archive, op.schema)
    # All of them, not only those the script lists: PostgreSQL names an unnamed primary key or
    # UNIQUE itself (employee_pkey, employee_email_key), and a table re-created while the archive
    # held those names would get employee_email_key1, which later scripts do not know.
    names = list(op.constraints) if found is None else [name for name, _kind, _columns in found]
    _rename_constraints(operations, archive, [(c, _archive_of(op, c)) for c in names], op.schema)


@Operations.implementation_for(RestoreTableOp)
def _restore_table(operations: Operations, op: RestoreTableOp) -> None:
    archive = _archive_of(op, op.table_name)
    if not operations.migration_context.as_sql and not _has_table(operations, archive, op.schema):
        raise ArchiveError(_purged_message(f"table {op.table_name}", op.revision))
    found = _indexed_constraints(operations, archive, op.schema)
    if found is None:
        renames = [(_archive_of(op, c), c) for c in op.constraints]
    else:
        originals = [(name, _original_constraint(op, name, kind, columns)) for name, kind, columns in found]
        renames = [(name, original) for name, original in originals if original is not None]
    _rename_constraints(operations, archive, renames, op.schema)
    operations.rename_table(archive, op.table_name, schema=op.schema)
    _archive_restored(operations, archive, op.schema)
    q = _Quoting(operations, op.schema)
    table = q.table(op.table_name)
    for column, type_sql in op.enums.items():
        name = q.name(column)
        operations.execute(
            f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {type_sql} USING {name}::{type_sql}"
        )
        if column in op.defaults:
            operations.execute(f"ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {op.defaults[column]}")
    for column, sequence in _owned_sequences(operations, op.table_name, op.schema):
        # PostgreSQL's own name for it, numbered too (employee_id_seq1, when the name was taken
        # as the table was created), else the archive name without its prefix (a renamed table's).
        candidates = [
            _postgresql_object_name(op.table_name, column, f"seq{number or ''}")
            for number in range(NAME_SUFFIXES)
        ]
        prefix = _archive_of(op, "")
        if sequence.startswith(prefix):
            candidates.append(sequence[len(prefix):])
        original = next((c for c in candidates if c != sequence and _archive_of(op, c) == sequence), None)
        if original is not None:
            _rename_sequence(operations, sequence, original, op.schema)


def _postgresql_object_name(name1: str, name2: str | None, label: str) -> str:
    """The name PostgreSQL gives a SERIAL's sequence (``<table>_<column>_seq``) or an unnamed
    constraint (``<table>_pkey``, ``<table>_<columns>_key``), shortened as it does.

    Past 63 bytes, PostgreSQL's makeObjectName() trims the longer of the two names a byte at a
    time (never splitting a character) and keeps the label whole.
    """
    first, second = name1.encode(), (name2 or "").encode()
    room = MAX_NAME_LENGTH - len(label.encode()) - 1 - (0 if name2 is None else 1)
    keep1, keep2 = len(first), len(second)
    while keep1 + keep2 > room:
        if keep1 > keep2:
            keep1 -= 1
        else:
            keep2 -= 1
    short1 = first[:keep1].decode(errors="ignore")
    short2 = second[:keep2].decode(errors="ignore")
    return f"{short1}_{label}" if name2 is None else f"{short1}_{short2}_{label}"


# -- how autogenerate writes them ---------------------------------------------------------


def _on(op: Any) -> str | None:
    return None if op.on == "upgrade" else op.on


def _keywords(**values: Any) -> str:
    return "".join(f", {name}={value!r}" for name, value in values.items() if value)


@renderers.dispatch_for(ArchiveColumnsOp)
def _render_archive_columns(autogen_context: Any, op: ArchiveColumnsOp) -> str:
    return (
        f"op.archive_columns({op.table_name!r}, {op.columns!r}, key={op.key!r}, "
        f"revision={op.revision!r}{_keywords(schema=op.schema, on=_on(op))})"
    )


@renderers.dispatch_for(RestoreColumnsOp)
def _render_restore_columns(autogen_context: Any, op: RestoreColumnsOp) -> str:
    return (
        f"op.restore_columns({op.table_name!r}, {op.columns!r}, key={op.key!r}, "
        f"revision={op.revision!r}{_keywords(required=op.required, schema=op.schema, on=_on(op))}"
        f"{_keywords(unique=op.unique, references=op.references)})"
    )


@renderers.dispatch_for(ArchiveValuesOp)
def _render_archive_values(autogen_context: Any, op: ArchiveValuesOp) -> str:
    return (
        f"op.archive_values({op.table_name!r}, {op.columns!r}, key={op.key!r}, "
        f"revision={op.revision!r}{_keywords(schema=op.schema, on=_on(op))})"
    )


@renderers.dispatch_for(RestoreValuesOp)
def _render_restore_values(autogen_context: Any, op: RestoreValuesOp) -> str:
    return (
        f"op.restore_values({op.table_name!r}, {op.columns!r}, key={op.key!r}, "
        f"revision={op.revision!r}{_keywords(types=op.types, schema=op.schema, on=_on(op))})"
    )


@renderers.dispatch_for(CheckArchiveOp)
def _render_check_archive(autogen_context: Any, op: CheckArchiveOp) -> str:
    columns = f", {op.columns!r}" if op.columns is not None else ""
    kind = op.kind if op.kind != "drop" else None
    return (
        f"op.check_archive({op.table_name!r}{columns}, revision={op.revision!r}"
        f"{_keywords(key=op.key, required=op.required, schema=op.schema, kind=kind)}"
        f"{_keywords(unique=op.unique, references=op.references, types=op.types)})"
    )


@renderers.dispatch_for(ArchiveTableOp)
def _render_archive_table(autogen_context: Any, op: ArchiveTableOp) -> str:
    return (
        f"op.archive_table({op.table_name!r}, revision={op.revision!r}"
        f"{_keywords(schema=op.schema, constraints=op.constraints, on=_on(op))}"
        f"{_keywords(enums=op.enums, defaults=op.defaults)})"
    )


@renderers.dispatch_for(ArchiveRowsOp)
def _render_archive_rows(autogen_context: Any, op: ArchiveRowsOp) -> str:
    return (
        f"op.archive_rows({op.table_name!r}, revision={op.revision!r}"
        f"{_keywords(schema=op.schema, on=_on(op))})"
    )


@renderers.dispatch_for(RestoreRowsOp)
def _render_restore_rows(autogen_context: Any, op: RestoreRowsOp) -> str:
    on = "upgrade" if op.on == "upgrade" else None
    return f"op.restore_rows({op.table_name!r}, revision={op.revision!r}{_keywords(schema=op.schema, on=on)})"


@renderers.dispatch_for(RestoreTableOp)
def _render_restore_table(autogen_context: Any, op: RestoreTableOp) -> str:
    return (
        f"op.restore_table({op.table_name!r}, revision={op.revision!r}"
        f"{_keywords(schema=op.schema, constraints=op.constraints, enums=op.enums, defaults=op.defaults)})"
    )
