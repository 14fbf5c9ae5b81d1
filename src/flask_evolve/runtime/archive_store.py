"""What the archive keeps in a database (tables, the revision that wrote them, sizes), and purging it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flask_evolve.errors import MigrationError
from flask_evolve.runtime.archive_ops import (
    ARCHIVE_PREFIX,
    KINDS,
    SHAPES_TABLE,
    archive_name,
    is_archive_table,
)


@dataclass(frozen=True)
class ArchivedTable:
    """One archive table.

    :param revision: the revision that wrote it, or ``None`` if no revision in
        the migrations folder matches its name.
    :param table: the app's table it came from (``None`` when unknown).
    :param columns: the archived columns, or ``None`` when the whole table is kept.
    :param on: ``"upgrade"`` if the revision's upgrade dropped it (its downgrade
        restores it), ``"downgrade"`` if its downgrade did (the next upgrade does).
    :param kind: ``"values"`` for the original values of columns whose type changed.
    :param bind: the ``SQLALCHEMY_BINDS`` key of its database (``None``: the default one).
    """

    name: str
    revision: str | None
    table: str | None
    columns: tuple[str, ...] | None
    rows: int
    size: int | None
    on: str = "upgrade"
    kind: str = "drop"
    bind: str | None = None

    @property
    def what(self) -> str:
        if self.table is None:
            return "?"
        if self.columns is None:
            return f"table {self.table}"
        listed = ", ".join(f"{self.table}.{c}" for c in self.columns)
        return f"{listed} (old type)" if self.kind == "values" else listed


def human_size(size: int | None) -> str:
    """``size`` bytes in words (``16.0 KiB``), or ``?`` when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _size(connection: Connection, name: str, schema: str | None) -> int | None:
    try:
        if connection.dialect.name == "postgresql":
            sql = (
                "SELECT pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :name AND n.nspname = coalesce(:schema, current_schema())"
            )
            return int(connection.execute(sa.text(sql), {"name": name, "schema": schema}).scalar_one())
        if connection.dialect.name == "sqlite":
            sql = "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :name"
            return int(connection.execute(sa.text(sql), {"name": name}).scalar_one())
    except sa.exc.DBAPIError:
        # dbstat is a compile-time option of SQLite; without it there is no size to tell.
        return None
    return None


def _origin(
    name: str, revisions: Iterable[str], tables: Iterable[str]
) -> tuple[str | None, str | None, str, str]:
    """The (revision, table, on, kind) whose archive is called ``name``."""
    candidates = list(tables)
    for revision in revisions:
        for kind in KINDS:
            for on in ("upgrade", "downgrade"):
                token = revision if on == "upgrade" else f"down_{revision}"
                if kind == "values":
                    token = f"val_{token}"
                if not name.startswith(f"{ARCHIVE_PREFIX}{token[:17]}"):
                    continue
                rest = name[len(f"{ARCHIVE_PREFIX}{token}_") :]
                for table in [rest, *candidates]:
                    if archive_name(revision, table, on, kind) == name:
                        return revision, table, on, kind
    return None, None, "upgrade", "drop"


def list_archive(
    connection: Connection, revisions: Sequence[str], schema: str | None = None
) -> list[ArchivedTable]:
    """The archive tables in the database, with rows and bytes.

    :param revisions: the revision ids of the migrations folder, to tell which
        revision wrote each table.
    """
    inspector = sa.inspect(connection)
    names = inspector.get_table_names(schema=schema)
    live = [n for n in names if not is_archive_table(n)]
    preparer = connection.dialect.identifier_preparer
    archived: list[ArchivedTable] = []
    # The registry of the archives' shapes is no archive: it goes with the last one.
    for name in sorted(n for n in names if is_archive_table(n) and n != SHAPES_TABLE):
        revision, table, on, kind = _origin(name, revisions, live)
        # A renamed table keeps its primary key; CREATE TABLE AS (archived columns) has none.
        columns: tuple[str, ...] | None = None
        # A SQLite table with foreign keys is archived as a copy (no key either), and its table is gone.
        copied = table is not None and table not in live and kind == "drop"
        if not copied and not inspector.get_pk_constraint(name, schema=schema).get("constrained_columns"):
            key: set[str] = set()
            if table is not None and table in live:
                key = set(inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
            columns = tuple(
                c["name"] for c in inspector.get_columns(name, schema=schema) if c["name"] not in key
            )
        quoted = preparer.quote(name)
        if schema is not None:
            quoted = f"{preparer.quote_schema(schema)}.{quoted}"
        rows = int(connection.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar_one())
        size = _size(connection, name, schema)
        archived.append(ArchivedTable(name, revision, table, columns, rows, size, on, kind))
    return archived


#: The views (and materialized views) that read a PostgreSQL table, by their qualified names.
_DEPENDENT_VIEWS = """
SELECT DISTINCT CAST(CAST(v.oid AS regclass) AS text) FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
WHERE d.classid = CAST('pg_rewrite' AS regclass) AND d.refobjid = to_regclass(:table) AND v.oid <> d.refobjid
ORDER BY 1
"""


def _query_of(create_view: str) -> str:
    """What a ``CREATE VIEW name AS query`` selects from (the part after the first ``AS``)."""
    return re.split(r"\bAS\b", create_view, maxsplit=1, flags=re.IGNORECASE)[-1]


def dependent_views(connection: Connection, table: str, schema: str | None = None) -> list[str]:
    """The views that read ``table``: dropping or archiving it must not take them along or leave
    them reading the archive (renaming a table rewrites the views on it, on SQLite too)."""
    if connection.dialect.name == "sqlite":
        # SQLite records no dependencies: a view whose query names the table, quoted or not.
        name = re.escape(table)
        mentions = re.compile(rf"[\"`\[]{name}[\"`\]]|(?<![\w$]){name}(?![\w$])", re.IGNORECASE)
        views = connection.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        return sorted(view for view, sql in views if mentions.search(_query_of(sql)))
    if connection.dialect.name != "postgresql":
        return []
    preparer = connection.dialect.identifier_preparer
    quoted = (f"{preparer.quote_schema(schema)}." if schema else "") + preparer.quote(table)
    return list(connection.execute(sa.text(_DEPENDENT_VIEWS), {"table": quoted}).scalars())


def purge(connection: Connection, tables: Sequence[ArchivedTable], schema: str | None = None) -> None:
    """Drop archive tables for good, with their records in the registry, in the caller's transaction.

    :raises MigrationError: a view reads one of them (CASCADE would drop the view too).
    """
    preparer = connection.dialect.identifier_preparer
    for table in tables:
        quoted = preparer.quote(table.name)
        if schema is not None:
            quoted = f"{preparer.quote_schema(schema)}.{quoted}"
        views = dependent_views(connection, table.name, schema)
        if views:
            raise MigrationError(
                f"{table.name} is read by view {', '.join(views)}, which purging it would drop too: "
                f"drop or change that view first, then run the command again (that database's archive "
                f"is as it was)."
            )
        # An archived table may still hold a foreign key to another archived
        # table; CASCADE drops only such constraints, never rows elsewhere.
        cascade = " CASCADE" if connection.dialect.name == "postgresql" else ""
        connection.execute(sa.text(f"DROP TABLE {quoted}{cascade}"))
    _forget_shapes(connection, [table.name for table in tables], schema)


def _forget_shapes(connection: Connection, names: list[str], schema: str | None) -> None:
    """Drop the registry's records of purged archives, and the registry once it holds none."""
    if not names or not sa.inspect(connection).has_table(SHAPES_TABLE, schema=schema):
        return
    preparer = connection.dialect.identifier_preparer
    registry = preparer.quote(SHAPES_TABLE)
    if schema is not None:
        registry = f"{preparer.quote_schema(schema)}.{registry}"
    connection.execute(
        sa.text(f"DELETE FROM {registry} WHERE archive IN :names").bindparams(
            sa.bindparam("names", expanding=True)
        ),
        {"names": names},
    )
    if connection.execute(sa.text(f"SELECT 1 FROM {registry} LIMIT 1")).first() is None:
        connection.execute(sa.text(f"DROP TABLE {registry}"))


_ARCHIVE_CALL = re.compile(
    r"op\.archive_(?P<kind>columns|table|values|rows)\(\s*(?P<quote>['\"])(?P<table>[^'\"]+)(?P=quote)"
    r"(?P<rest>[^)]*)\)"
)


def _upgrade_source(source: str, bind: str | None) -> str:
    """A script's upgrade text: all before ``def downgrade``, or (multidb) ``upgrade_<bind>()``'s body."""
    if bind is None:
        return source.split("def downgrade", 1)[0]
    body = re.search(rf"^def upgrade_{re.escape(bind)}\(\):\n(.*?)(?=^def |\Z)", source, re.M | re.S)
    return body.group(1) if body else ""


def archived_by(source: str, bind: str | None = None) -> list[tuple[str, str]]:
    """The (table, kind) pairs that a revision's upgrade archives, read from its script's source.

    :param bind: in a multidb script, the database whose ``upgrade_<bind>()`` to read
        (``""``: the default one); ``None``: a single-database script.
    """
    upgrade = _upgrade_source(source, bind)
    return [
        (m.group("table"), m.group("kind"))
        for m in _ARCHIVE_CALL.finditer(upgrade)
        if "on='downgrade'" not in m.group("rest") and 'on="downgrade"' not in m.group("rest")
    ]


def purged_archives(
    connection: Connection,
    revisions: Iterable[tuple[str, str]],
    schema: str | None = None,
    bind: str | None = None,
) -> list[tuple[str, str]]:
    """The (revision, table) whose upgrade archived data that is no longer in the database.

    :param revisions: (revision id, script source) pairs.
    :param bind: the database of ``connection`` in a multidb script (see :func:`archived_by`).
    """
    inspector = sa.inspect(connection)
    missing: list[tuple[str, str]] = []
    for revision, source in revisions:
        for table, kind in archived_by(source, bind):
            name = archive_name(revision, table, kind="values" if kind == "values" else "drop")
            if not inspector.has_table(name, schema=schema):
                missing.append((revision, table))
    return missing
