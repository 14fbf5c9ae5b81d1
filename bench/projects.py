"""Benchmark projects: generated apps and models, databases to reset, and timed runs of the real CLI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from environments import BENCH, Tool

HOOKS = BENCH / "hooks"

APP = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from {module} import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db = SQLAlchemy(app)
migrate = Migrate(app, db)

import models  # noqa: E402,F401

if os.environ.get("BENCH_APP_LOADED_FILE"):  # when the app and its models are imported
    import time

    with open(os.environ["BENCH_APP_LOADED_FILE"], "w") as loaded:
        loaded.write(repr(time.monotonic()))
"""


def wide_models(n: int) -> str:
    """N tables of 10 columns, one secondary index and one foreign key each."""
    lines = ["from app import db", ""]
    for i in range(n):
        parent = f"t{max(i - 1, 0):04d}"
        lines += [
            "",
            f"class T{i:04d}(db.Model):",
            f'    __tablename__ = "t{i:04d}"',
            "    id = db.Column(db.Integer, primary_key=True)",
            "    name = db.Column(db.String(80), nullable=False)",
            "    code = db.Column(db.String(20), index=True)",
            "    qty = db.Column(db.Integer, nullable=False)",
            "    price = db.Column(db.Numeric(10, 2))",
            "    active = db.Column(db.Boolean, nullable=False)",
            "    created = db.Column(db.DateTime)",
            "    notes = db.Column(db.Text)",
            "    ratio = db.Column(db.Float)",
            f'    parent_id = db.Column(db.Integer, db.ForeignKey("{parent}.id"))',
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Run:
    """One finished process: wall time, peak resident memory, output."""

    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    #: Seconds from the end of the app's import (app module and models) to the process's exit.
    after_import: float | None = None


class Database:
    """A database a project migrates: a SQLite file or a PostgreSQL database that can be reset."""

    def __init__(self, kind: str, url: str, server: object | None = None) -> None:
        self.kind = kind
        self.url = url
        self._server = server

    @property
    def path(self) -> Path:
        assert self.kind == "sqlite"
        return Path(sa.make_url(self.url).database or "")

    def reset(self) -> None:
        """Make the database empty again."""
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        name = sa.make_url(self.url).database
        self._server.drop_database(name)  # type: ignore[union-attr]
        self._server.create_database(name)  # type: ignore[union-attr]

    def size_mb(self) -> float:
        total = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                total += p.stat().st_size
        return total / 1e6


class Project:
    """A generated Flask project for one tool, in a temp directory."""

    def __init__(self, tool: Tool, database: Database, root: Path, name: str) -> None:
        self.tool = tool
        self.database = database
        self.path = root / name
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        (self.path / "app.py").write_text(APP.format(module=tool.module))

    def write_models(self, source: str) -> None:
        (self.path / "models.py").write_text(source)
        shutil.rmtree(self.path / "__pycache__", ignore_errors=True)

    def flask(self, *args: str, check: bool = True, count_sql: bool = False) -> Run:
        """Run ``flask db ...`` in a fresh process; time it and read its peak RSS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLASK_", "VIRTUAL_ENV"))}
        env.update(DATABASE_URL=self.database.url, FLASK_APP="app", PYTHONDONTWRITEBYTECODE="")
        count_file = None
        if count_sql:
            fd, count_file = tempfile.mkstemp(prefix="bench-sql-")
            os.close(fd)
            env.update(PYTHONPATH=str(HOOKS), BENCH_SQL_COUNT_FILE=count_file)
        out = self.path / ".out"
        err = self.path / ".err"
        loaded = self.path / ".loaded"
        loaded.unlink(missing_ok=True)
        env["BENCH_APP_LOADED_FILE"] = str(loaded)
        with out.open("w") as stdout, err.open("w") as stderr:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [str(self.tool.python), "-m", "flask", *args],
                cwd=self.path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            ended = time.monotonic()  # the clock the app writes: system-wide CLOCK_MONOTONIC
            proc.returncode = os.waitstatus_to_exitcode(status)
        after_import = ended - float(loaded.read_text()) if loaded.exists() else None
        run = Run(
            seconds, usage.ru_maxrss / 1024, proc.returncode, out.read_text(), err.read_text(), after_import
        )
        if check and run.returncode != 0:
            raise RuntimeError(
                f"{self.tool.name}: flask {' '.join(args)} exited {run.returncode} in {self.path}\n"
                f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
            )
        if count_file:
            self.last_sql = Path(count_file).read_text().splitlines()
            os.unlink(count_file)
        return run

    def migrate_untimed(self, *args: str) -> Run:
        """``flask db migrate`` for set-up, without Flask-Evolve's automatic verification of the new
        revision on a scratch database (minutes for thousands of tables; not what is measured)."""
        if not hasattr(self, "_no_verify"):
            self._no_verify = "--no-verify" in self.flask("db", "migrate", "--help").stdout
        return self.flask("db", "migrate", *args, *(["--no-verify"] if self._no_verify else []))

    def sql_count(self, *args: str) -> int:
        """How many SQL statements ``flask db ...`` sends (in a separate, untimed run)."""
        self.flask(*args, count_sql=True)
        return int(self.last_sql[0].split()[0])

    def sql_seconds(self, *args: str) -> float:
        """Seconds ``flask db ...`` spends executing SQL statements (start-up excluded)."""
        self.flask(*args, count_sql=True)
        return float(self.last_sql[0].split()[1])

    def versions(self) -> list[Path]:
        return sorted((self.path / "migrations" / "versions").glob("*.py"))

    def remove_new_versions(self, keep: list[Path]) -> None:
        for path in self.versions():
            if path not in keep:
                path.unlink()


def sqlite_fill(path: Path, table: str, rows: int) -> None:
    """Fill a table of the benchmark's big model with rows, quickly (recursive CTE, one transaction)."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"""
            WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
            INSERT INTO {table} (id, label, qty, code, note)
            SELECT i, 'label ' || i, i % 1000, printf('C%08d', (i * 7919) % ?), 'note ' || (i % 97)
            FROM seq
            """,
            (rows, rows),
        )
    conn.close()
