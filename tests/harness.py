"""End-to-end test harness: a real Flask app in a temp directory, driven through the real `flask db` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Tables that hold what migrations dropped (lossless downgrades); not part of the app's schema.
ARCHIVE_PREFIX = "_evolve_archive_"

APP_TEMPLATE = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_evolve import Migrate
{imports}

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
{config}
db = SQLAlchemy(app{db_args})
migrate = Migrate(app, db{migrate_args})

{models}
"""


@dataclass
class Result:
    """What one CLI run printed and returned."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"$ flask {' '.join(self.args)}  -> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Project:
    """A Flask project in a temp directory with one database, as a user would have it."""

    def __init__(self, path: Path, database_url: str) -> None:
        self.path = path
        self.database_url = database_url
        self._engine: sa.Engine | None = None

    @property
    def dialect(self) -> str:
        return sa.make_url(self.database_url).get_backend_name()

    @property
    def migrations(self) -> Path:
        return self.path / "migrations"

    def write_app(
        self,
        models: str,
        *,
        migrate_args: str = "",
        db_args: str = "",
        config: str = "",
        imports: str = "",
        name: str = "app.py",
    ) -> Path:
        """Write the app module with the given model classes (source text using ``db``)."""
        source = APP_TEMPLATE.format(
            models=textwrap.dedent(models),
            migrate_args=f", {migrate_args}" if migrate_args else "",
            db_args=f", {db_args}" if db_args else "",
            config=textwrap.dedent(config),
            imports=textwrap.dedent(imports),
        )
        target = self.path / name
        target.write_text(source)
        # A stale bytecode file with the same mtime second could shadow the edit.
        for cached in (self.path / "__pycache__").glob(f"{target.stem}.*"):
            cached.unlink()
        return target

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FLASK_APP="app.py",
            DATABASE_URL=self.database_url,
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.pop("FLASK_DEBUG", None)
        env.update(extra)
        return env

    def flask(
        self,
        *args: str,
        ok: bool | None = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Result:
        """Run ``flask <args>`` in the project. ``ok=True`` asserts exit 0, ``False`` non-zero."""
        completed = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=self.path,
            env=self.env(**(env or {})),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)
        if ok is True:
            assert result.returncode == 0, str(result)
        elif ok is False:
            assert result.returncode != 0, str(result)
        return result

    # -- the database, seen directly -------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        return self._engine

    def execute(self, statement: str, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(statement), params or {})

    def query(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(statement), params or {})]

    def rows(self, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        quoted = self.engine.dialect.identifier_preparer.quote(table)
        order = f" ORDER BY {self.engine.dialect.identifier_preparer.quote(order_by)}" if order_by else ""
        with self.engine.connect() as connection:
            result = connection.execute(sa.text(f"SELECT * FROM {quoted}{order}"))
            return [dict(row._mapping) for row in result]

    def tables(self, *, archive: bool = False) -> set[str]:
        """The table names; Flask-Evolve's archive tables only with ``archive=True``."""
        names = set(sa.inspect(self.engine).get_table_names())
        return names if archive else {n for n in names if not n.startswith(ARCHIVE_PREFIX)}

    def columns(self, table: str) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in sa.inspect(self.engine).get_columns(table)}

    def version(self) -> list[str]:
        if "alembic_version" not in self.tables():
            return []
        return sorted(row[0] for row in self.query("SELECT version_num FROM alembic_version"))

    def schema(self) -> dict[str, Any]:
        """A structural snapshot of every table (names, types, nullability, keys, indexes)."""
        return snapshot_schema(self.engine)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _type_name(column_type: Any, dialect: sa.Dialect) -> str:
    return column_type.compile(dialect=dialect)


def _canonical_default(default: str | None) -> Any:
    """A reflected server default as the database would compare it ('x'::character varying == 'x')."""
    if default is None:
        return None
    from flask_evolve.autogen.comparators import _canonical_sql

    return _canonical_sql(default) or " ".join(default.split())


def _check_constraints(inspector: Any, tables: list[str]) -> dict[str, list[dict[str, Any]]]:
    try:
        found = inspector.get_multi_check_constraints(filter_names=tables)
    except NotImplementedError:
        return {}
    return {table: checks for (_, table), checks in found.items()}


def snapshot_schema(engine: sa.Engine, *, exclude: tuple[str, ...] = ("alembic_version",)) -> dict[str, Any]:
    """Describe the live schema structurally, for equality assertions between two databases.

    One connection and one reflection query per kind of object for all tables (the
    hypothesis round trip takes hundreds of snapshots).
    """
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        tables = [
            t
            for t in sorted(inspector.get_table_names())
            if t not in exclude and not t.startswith(ARCHIVE_PREFIX)
        ]
        if not tables:
            return {}

        def each(found: dict[tuple[str | None, str], Any]) -> dict[str, Any]:
            return {table: value for (_, table), value in found.items()}

        all_columns = each(inspector.get_multi_columns(filter_names=tables))
        primary_keys = each(inspector.get_multi_pk_constraint(filter_names=tables))
        foreign_keys = each(inspector.get_multi_foreign_keys(filter_names=tables))
        uniques = each(inspector.get_multi_unique_constraints(filter_names=tables))
        indexes = each(inspector.get_multi_indexes(filter_names=tables))
        checks = _check_constraints(inspector, tables)
    snapshot: dict[str, Any] = {}
    for table in tables:
        columns = {
            c["name"]: {
                "type": _type_name(c["type"], engine.dialect),
                "nullable": c["nullable"],
                "default": _canonical_default(c.get("default")),
                "comment": c.get("comment"),
            }
            for c in all_columns.get(table, [])
        }
        pk = primary_keys.get(table) or {}
        snapshot[table] = {
            "columns": columns,
            "primary_key": sorted(pk.get("constrained_columns") or []),
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in foreign_keys.get(table, [])
            ),
            "unique": sorted(tuple(u["column_names"]) for u in uniques.get(table, [])),
            "indexes": sorted(
                (tuple(i["column_names"]), bool(i["unique"]))
                for i in indexes.get(table, [])
                if not i.get("duplicates_constraint")
            ),
            "checks": sorted(" ".join(str(ck["sqltext"]).split()) for ck in checks.get(table, [])),
        }
    return snapshot
