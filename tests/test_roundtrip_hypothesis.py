"""hypothesis: random pairs of schemas with rows make the same round trip on SQLite and PostgreSQL.

Old schema → rows → migrate + upgrade gives the create_all() schema with the rows kept →
a second migrate finds nothing → downgrade gives the old schema with the rows kept →
upgrade works again. Runs the programmatic commands in-process (the CLI is too slow for
hundreds of examples); tests/test_autogenerate_matrix.py covers the real CLI.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import flask_evolve
from flask_evolve import Migrate
from flask_evolve.autogen.not_null import NotNullError
from flask_evolve.errors import MigrationError
from tests.harness import snapshot_schema

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
KINDS = ("int", "str", "bool", "num")
#: CHECKs every generated value, default and fill of an int or num column passes (NULL passes any CHECK).
CHECKS = (None, ">= 0", "> -1")


@dataclass(frozen=True)
class Col:
    name: str
    kind: str
    nullable: bool = True
    default: bool = False
    unique: bool = False
    index: bool = False
    length: int = 20
    references: str | None = None
    renamed_from: str | None = None  # the declarative rename hint, info={"renamed_from": ...}
    check: str | None = None  # a named CHECK on the column: "{column} <check>"


@dataclass(frozen=True)
class Table:
    name: str
    cols: tuple[Col, ...]
    rows: int = 0
    renamed_from: str | None = None  # __table_args__ = {"info": {"renamed_from": ...}}


Schema = tuple[Table, ...]


def _type(col: Col) -> sa.types.TypeEngine[Any]:
    return {
        "int": sa.Integer(),
        "str": sa.String(col.length),
        "bool": sa.Boolean(),
        "num": sa.Numeric(10, 2),
    }[col.kind]


def _default(col: Col) -> Any:
    if not col.default:
        return None
    return {"int": "5", "str": "d", "bool": sa.false(), "num": "1.5"}[col.kind]


#: What ``--fill`` gives existing rows of a column that becomes (or is added) NOT NULL, and how it reads back.
FILL = {"int": ("3", 3), "str": ("f", "f"), "bool": ("true", 1), "num": ("2.5", Decimal("2.5"))}
NULL_ROW = 2  # the row that holds NULL in every nullable column


def _value(col: Col, row: int) -> Any:
    if col.references:
        return row + 1
    if col.nullable and row == NULL_ROW:
        return None
    return {"int": row * 7, "str": f"v{row}", "bool": row == 0, "num": row / 4}[col.kind]


def build(metadata: sa.MetaData, schema: Schema) -> None:
    for table in schema:
        columns: list[Any] = [sa.Column("id", sa.Integer, primary_key=True)]
        for col in table.cols:
            args: list[Any] = [sa.ForeignKey(f"{col.references}.id")] if col.references else []
            columns.append(
                sa.Column(
                    col.name,
                    _type(col),
                    *args,
                    nullable=col.nullable,
                    server_default=_default(col),
                    unique=col.unique or None,
                    index=col.index or None,
                    info={"renamed_from": col.renamed_from} if col.renamed_from else {},
                )
            )
            if col.check:
                columns.append(sa.CheckConstraint(f'"{col.name}" {col.check}', name=f"{col.name}_check"))
        info = {"renamed_from": table.renamed_from} if table.renamed_from else {}
        sa.Table(table.name, metadata, *columns, info=info)


@st.composite
def columns(draw: st.DrawFn, prefix: str, parents: list[str]) -> tuple[Col, ...]:
    cols = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(KINDS))
        nullable = draw(st.booleans())
        cols.append(
            Col(
                f"{prefix}{i}",
                kind,
                nullable=nullable,
                default=draw(st.booleans()),
                unique=kind != "bool" and draw(st.booleans()),
                index=draw(st.booleans()),
                check=draw(st.sampled_from(CHECKS)) if kind in ("int", "num") else None,
            )
        )
    if parents and draw(st.booleans()):
        cols.append(Col("ref", "int", references=draw(st.sampled_from(parents))))
    return tuple(cols)


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    tables: list[Table] = []
    for i in range(draw(st.integers(1, 3))):
        cols = draw(columns("c", [t.name for t in tables if t.rows >= 3]))
        tables.append(Table(f"t{i}", cols, rows=draw(st.sampled_from([0, 3]))))
    return tuple(tables)


def _mutate(draw: st.DrawFn, schema: Schema, step: int, origin: Schema) -> Schema:
    tables = list(schema)
    index = draw(st.integers(0, len(tables) - 1))
    table = tables[index]
    referenced = {c.references for t in tables for c in t.cols if c.references}
    # A renamed column changes no further: a stated rename whose sides differ beyond the name is refused.
    plain = [c for c in table.cols if not c.references and not c.renamed_from]
    # Only a column as the database has it can be renamed by a hint.
    unchanged = {c for t in origin if t.name == table.name for c in t.cols}
    renamable = [c for c in plain if c in unchanged]
    checkable = [c for c in plain if c.kind in ("int", "num")]
    # A table renames once, from its name in the database (a hint names what the database has).
    origin_names = {t.name for t in origin}
    choice = draw(
        st.sampled_from(
            ["add_column", "drop_column", "nullable", "default", "unique", "index", "widen", "add_table"]
            + (["drop_table"] if table.name not in referenced and len(tables) > 1 else [])
            + (["rename"] if renamable else [])
            + (["check"] if checkable else [])
            + (["rename_table"] if table.name in origin_names else [])
        )
    )
    if choice == "rename_table":
        new_name = f"m{step}"
        tables[index] = replace(table, name=new_name, renamed_from=table.name)
        pointing = [c for t in tables for c in t.cols if c.references == table.name]
        follow = {c: replace(c, references=new_name) for c in pointing}
        return tuple(replace(t, cols=tuple(follow.get(c, c) for c in t.cols)) for t in tables)
    if choice == "check":
        col = draw(st.sampled_from(checkable))
        changed_check = replace(col, check=draw(st.sampled_from([c for c in CHECKS if c != col.check])))
        tables[index] = replace(table, cols=tuple(changed_check if c is col else c for c in table.cols))
        return tuple(tables)
    if choice == "rename":
        col = draw(st.sampled_from(renamable))
        renamed = replace(col, name=f"r{step}", renamed_from=col.name)
        tables[index] = replace(table, cols=tuple(renamed if c is col else c for c in table.cols))
        return tuple(tables)
    if choice == "add_table":
        cols = draw(columns("n", [t.name for t in tables if t.rows >= 3]))
        return (*tables, Table(f"n{step}", cols, rows=0))
    if choice == "drop_table":
        return tuple(t for t in tables if t is not table)
    if choice == "add_column":
        kind = draw(st.sampled_from(KINDS))
        col = Col(f"a{step}", kind, nullable=draw(st.booleans()), default=draw(st.booleans()))
        tables[index] = replace(table, cols=(*table.cols, col))
        return tuple(tables)
    if not plain:
        return schema
    col = draw(st.sampled_from(plain))
    if choice == "drop_column":
        changed = None
    elif choice == "nullable":
        changed = replace(col, nullable=not col.nullable)
    elif choice == "default":
        changed = replace(col, default=not col.default)
    elif choice == "unique":
        changed = replace(col, unique=not col.unique and col.kind != "bool")
    elif choice == "index":
        changed = replace(col, index=not col.index)
    else:
        changed = replace(col, length=40) if col.kind == "str" else col
    cols = tuple(c for c in (changed if c is col else c for c in table.cols) if c is not None)
    tables[index] = replace(table, cols=cols)
    return tuple(tables)


@st.composite
def schema_pairs(draw: st.DrawFn) -> tuple[Schema, Schema]:
    old = draw(schemas())
    new = old
    for step in range(draw(st.integers(1, 3))):
        new = _mutate(draw, new, step, old)
    # Every example a real migration: a pair without a change would only test `migrate` finding nothing.
    assume(new != old)
    return old, new


class Workspace:
    """One database and a migrations folder per example, driven through the programmatic API."""

    counter = itertools.count()

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self.directory = str(root / "migrations")
        self.options: dict[str, Any] = {}

    def migrate_refused(self, fills: dict[str, str]) -> None:
        """``migrate --fill`` stops with one line, and writes no script."""
        scripts = sorted(Path(self.directory, "versions").glob("*.py"))
        with pytest.raises(NotNullError, match=r"gives 3 rows the same value, but \S+ is UNIQUE"):
            flask_evolve.migrate(self.directory, verify=False, options={"fill": fills, "no_renames": True})
        assert sorted(Path(self.directory, "versions").glob("*.py")) == scripts

    def migrate_settling_ambiguity(self) -> Any:
        """``migrate``; when two renames are equally likely it writes nothing and asks, and the
        user's answer here is ``--no-renames``."""
        scripts = sorted(Path(self.directory, "versions").glob("*.py"))
        try:
            return flask_evolve.migrate(self.directory, verify=False, options=self.options)
        except MigrationError as exc:
            if not str(exc).startswith("Ambiguous renames, not guessed:"):
                raise
        assert sorted(Path(self.directory, "versions").glob("*.py")) == scripts
        settled = {**self.options, "no_renames": True}
        return flask_evolve.migrate(self.directory, verify=False, options=settled)

    def app(self, schema: Schema) -> tuple[Flask, SQLAlchemy]:
        app = Flask(f"roundtrip{next(self.counter)}")
        app.config["SQLALCHEMY_DATABASE_URI"] = self.url
        db = SQLAlchemy(app, metadata=sa.MetaData(naming_convention=NAMING))
        build(db.metadata, schema)
        Migrate(app, db, directory=self.directory)
        return app, db

    def run(self, schema: Schema, *steps: str | Callable[[], None]) -> None:
        """Run the commands named by ``steps`` (and the checks given as callables) with one app."""
        app, db = self.app(schema)
        try:
            with app.app_context():
                for step in steps:
                    # verify (a scratch replay that only warns) is off: the round trip runs the
                    # same steps on the real database and asserts what they leave.
                    if callable(step):
                        step()
                    elif step == "migrate":
                        written = self.migrate_settling_ambiguity()
                        assert written is not None, "migrate found nothing"
                    elif step == "migrate-nothing":
                        assert flask_evolve.migrate(self.directory, verify=False) is None, (
                            "second migrate found changes"
                        )
                    else:
                        getattr(flask_evolve, step)(self.directory)
        finally:
            with app.app_context():
                db.engine.dispose()


@functools.lru_cache(maxsize=8)
def _server_engine(url: str) -> sa.Engine:
    # One engine per PostgreSQL database for the whole run: its compiled-query cache then
    # serves every example's reflection. (SQLite URLs are new files per example.)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    return _server_engine(url)


def _rows(engine: sa.Engine, schema: Schema) -> dict[str, list[dict[str, Any]]]:
    out = {}
    with engine.connect() as connection:
        for table in schema:
            result = connection.execute(sa.text(f'SELECT * FROM "{table.name}" ORDER BY id'))
            out[table.name] = [
                {k: (int(v) if isinstance(v, bool) else v) for k, v in row._mapping.items()} for row in result
            ]
    return out


@dataclass(frozen=True)
class Fills:
    """What ``migrate --fill`` must be given for ``new``, and what the rows then hold."""

    options: dict[str, str]
    added: frozenset[tuple[str, str]]  # new NOT NULL columns: every row gets the value
    nulls: frozenset[tuple[str, str]]  # columns made NOT NULL: the NULL row gets it
    refused: bool  # one value for every row of a UNIQUE column: migrate must refuse

    @classmethod
    def of(cls, old: Schema, new: Schema) -> Fills:
        options: dict[str, str] = {}
        added: set[tuple[str, str]] = set()
        nulls: set[tuple[str, str]] = set()
        refused = False
        for table in new:
            before = next((t for t in old if t.name == (table.renamed_from or table.name)), None)
            if before is None or not before.rows:
                continue
            was = {c.name: c for c in before.cols}
            for col in table.cols:
                if col.name not in was and col.default and not col.renamed_from:
                    # Every row gets the default, nullable or not: one value for a UNIQUE column is refused.
                    refused = refused or (col.unique and before.rows > 1)
                    continue
                if col.nullable or col.renamed_from:
                    continue
                if col.name not in was:
                    added.add((table.name, col.name))
                    refused = refused or col.unique
                elif col.name in was and was[col.name].nullable and before.rows > NULL_ROW:
                    nulls.add((table.name, col.name))
                else:
                    continue
                options[f"{table.name}.{col.name}"] = FILL[col.kind][0]
        return cls(options, frozenset(added), frozenset(nulls), refused)

    def value(self, new: Schema, table: str, column: str) -> Any:
        col = next(c for t in new if t.name == table for c in t.cols if c.name == column)
        return FILL[col.kind][1]


def _kept(
    before: dict[str, list[dict[str, Any]]],
    after: dict[str, list[dict[str, Any]]],
    new: Schema,
    fills: Fills,
    *,
    upgraded: bool,
) -> None:
    """Every row is still there with its values: after the upgrade in the columns that survive
    (renamed ones under their new name), after the downgrade in every column of the old schema.
    Rows that had NULL in a column made NOT NULL hold the --fill value from then on."""
    tables = {t.name: t for t in new}
    moved = {t.renamed_from: t.name for t in new if t.renamed_from}
    for old_name, rows in before.items():
        new_name = moved.get(old_name, old_name)  # the name ``fills`` knows it by
        table = new_name if upgraded else old_name
        if upgraded and table not in tables:
            continue
        assert table in after and len(after[table]) == len(rows), table
        names = {c.renamed_from: c.name for c in tables[table].cols if c.renamed_from} if upgraded else {}
        for old, now in zip(rows, after[table], strict=True):
            expected = {names.get(k, k): v for k, v in old.items()}
            for _, column in (n for n in fills.nulls if n[0] == new_name):
                if expected.get(column, 0) is None:
                    expected[column] = fills.value(new, new_name, column)
            if upgraded:
                for _, column in (a for a in fills.added if a[0] == table):
                    expected[column] = fills.value(new, table, column)
                shared = set(expected) & set(now)
                expected, now = {k: expected[k] for k in shared}, {k: now[k] for k in shared}
            assert expected == now, table


#: Real files, but in memory where the machine has it: a commit then costs no fsync.
SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _insert_rows(engine: sa.Engine, schema: Schema) -> None:
    with engine.begin() as connection:
        for table in schema:
            for row in range(table.rows):
                values = {c.name: _value(c, row) for c in table.cols}
                values["id"] = row + 1
                names = ", ".join(f'"{k}"' for k in values)
                params = ", ".join(f":{k}" for k in values)
                connection.execute(sa.text(f'INSERT INTO "{table.name}" ({names}) VALUES ({params})'), values)


def _create_all_schema(fresh_url: str, schema: Schema) -> dict[str, Any]:
    fresh = _engine(fresh_url)
    metadata = sa.MetaData(naming_convention=NAMING)
    build(metadata, schema)
    metadata.create_all(fresh)
    try:
        return snapshot_schema(fresh)
    finally:
        metadata.drop_all(fresh)


def round_trip(url: str, fresh_url: str, old: Schema, new: Schema) -> None:
    root = Path(tempfile.mkdtemp(prefix="roundtrip-", dir=SCRATCH_DIR))
    engine = _engine(url)
    fills = Fills.of(old, new)
    try:
        work = Workspace(url, root)
        work.run(old, "init", "migrate", "upgrade")
        _insert_rows(engine, old)
        old_schema = snapshot_schema(engine)
        before = _rows(engine, old)
        if fills.refused:
            work.run(new, lambda: work.migrate_refused(fills.options))
            assert snapshot_schema(engine) == old_schema and _rows(engine, old) == before
            return
        expected = _create_all_schema(fresh_url, new)
        upgraded: dict[str, Any] = {}

        def at_new() -> None:
            upgraded.update(snapshot_schema(engine))
            assert upgraded == expected
            _kept(before, _rows(engine, new), new, fills, upgraded=True)

        def at_old() -> None:
            assert snapshot_schema(engine) == old_schema
            _kept(before, _rows(engine, old), new, fills, upgraded=False)

        def at_new_again() -> None:
            assert snapshot_schema(engine) == upgraded
            _kept(before, _rows(engine, new), new, fills, upgraded=True)

        work.options = {"fill": fills.options} if fills.options else {}
        if fills.added:
            # An added NOT NULL column could be guessed as the rename of a dropped one; stated
            # renames (the info hints) still apply.
            work.options["no_renames"] = True
        work.run(
            new, "migrate", "upgrade", "migrate-nothing", at_new, "downgrade", at_old, "upgrade", at_new_again
        )
    finally:
        if url.startswith("sqlite"):
            engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


def _reset(url: str) -> None:
    with _engine(url).begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")


@pytest.fixture(scope="module")
def pg_urls(postgres_server: Any) -> Iterator[tuple[str, str]]:
    urls = postgres_server.create_database(), postgres_server.create_database()
    yield urls
    for url in urls:
        postgres_server.drop_database(sa.make_url(url).database)


def _settings(examples: int) -> settings:
    # CI runs the same examples every time; ROUNDTRIP_EXPLORE=N runs N fresh random ones instead.
    explore = int(os.environ.get("ROUNDTRIP_EXPLORE", "0"))
    return settings(
        max_examples=explore or examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not explore,
        database=None,
    )


@_settings(250)
@given(pair=schema_pairs())
def test_random_schema_pairs_round_trip_on_sqlite(pair: tuple[Schema, Schema]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH_DIR) as folder:
        url = f"sqlite:///{folder}/app.db"
        round_trip(url, f"sqlite:///{folder}/fresh.db", *pair)


@pytest.mark.postgresql
@_settings(100)
@given(pair=schema_pairs())
def test_random_schema_pairs_round_trip_on_postgresql(
    pg_urls: tuple[str, str], pair: tuple[Schema, Schema]
) -> None:
    url, fresh = pg_urls
    _reset(url)
    _reset(fresh)
    round_trip(url, fresh, *pair)
