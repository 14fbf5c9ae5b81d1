"""What archive-before-drop costs: one migration dropping a column of a 1,000,000-row table, with and without.

    .venv/bin/python bench/archive_cost.py                      # SQLite, 1,000,000 rows, 3 runs
    .venv/bin/python bench/archive_cost.py --rows 100000 --runs 5
    .venv/bin/python bench/archive_cost.py --postgresql postgresql+psycopg://user@host/maintenance_db
    .venv/bin/python bench/archive_cost.py --postgresql auto   # a throwaway server, as the tests start

For each mode (archived: the default; plain: `flask db migrate --no-archive`) the
benchmark builds a project through the real CLI, fills the table, then times
`flask db upgrade` (the drop) and `flask db downgrade` (the way back) on fresh
copies of the same database, and reports medians. Disk is the database's size after
the upgrade and the archive table's own size. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

APP = """\
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_evolve import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
{email}
"""
EMAIL = "    email = db.Column(db.String(120))"


def flask(project: Path, url: str, *args: str) -> tuple[float, float]:
    """Run `flask <args>` in the project; return its wall time and CPU time (user + system) in seconds.

    CPU time is the steadier figure on a shared machine, but only for SQLite, whose work happens in
    the CLI's process; PostgreSQL works in its server, so there only wall time counts.
    """
    env = {**os.environ, "FLASK_APP": "app.py", "DATABASE_URL": url, "PYTHONDONTWRITEBYTECODE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=project, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"`flask {' '.join(args)}` failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def fill(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO employee (name, email) "
                "SELECT 'name ' || i, 'user' || i || '@example.com' FROM n",
                (rows,),
            )
        else:
            connection.exec_driver_sql(
                "INSERT INTO employee (name, email) SELECT 'name ' || i, 'user' || i || '@example.com' "
                "FROM generate_series(1, %s) AS i",
                (rows,),
            )
    engine.dispose()


class Database:
    """A SQLite file or a PostgreSQL database that can be reset to a saved state."""

    def __init__(self, workdir: Path, postgresql: str | None) -> None:
        self.postgresql = postgresql
        self.workdir = workdir
        if postgresql:
            self.name = f"archive_bench_{uuid.uuid4().hex[:8]}"
            self.url = str(sa.make_url(postgresql).set(database=self.name))
        else:
            self.url = f"sqlite:///{workdir / 'app.db'}"
        self._reset()

    def _admin(self, sql: str) -> None:
        engine = sa.create_engine(self.postgresql, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
        with engine.connect() as connection:
            connection.exec_driver_sql(sql)
        engine.dispose()

    def _reset(self) -> None:
        if self.postgresql:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}"')

    def save(self) -> None:
        if self.postgresql:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}_saved" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}_saved" TEMPLATE "{self.name}"')
        else:
            shutil.copy(self.workdir / "app.db", self.workdir / "saved.db")

    def restore(self) -> None:
        if self.postgresql:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.name}_saved"')
        else:
            shutil.copy(self.workdir / "saved.db", self.workdir / "app.db")

    def size(self) -> int:
        if not self.postgresql:
            return (self.workdir / "app.db").stat().st_size
        engine = sa.create_engine(self.url)
        with engine.connect() as connection:
            size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
        engine.dispose()
        return int(size)

    def archive_size(self) -> int:
        engine = sa.create_engine(self.url)
        total = 0
        with engine.connect() as connection:
            for name in sa.inspect(connection).get_table_names():
                if not name.startswith("_evolve_archive_"):
                    continue
                if connection.dialect.name == "sqlite":
                    sql = "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :name"
                else:
                    sql = "SELECT pg_total_relation_size(CAST(:name AS regclass))"
                total += int(connection.execute(sa.text(sql), {"name": name}).scalar_one())
        engine.dispose()
        return total

    def drop(self) -> None:
        if self.postgresql:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}_saved" WITH (FORCE)')


class Run:
    """One project and database for one mode, ready to upgrade from the same saved state again and again."""

    def __init__(self, mode: str, rows: int, postgresql: str | None, workdir: Path) -> None:
        self.mode = mode
        self.project = workdir / mode
        self.project.mkdir()
        self.database = Database(self.project, postgresql)
        self.upgrades: list[tuple[float, float]] = []
        self.downgrades: list[tuple[float, float]] = []
        url = self.database.url
        (self.project / "app.py").write_text(APP.format(email=EMAIL))
        flask(self.project, url, "db", "init")
        flask(self.project, url, "db", "migrate", "-m", "initial")
        flask(self.project, url, "db", "upgrade")
        fill(url, rows)
        (self.project / "app.py").write_text(APP.format(email=""))
        extra = ["--no-archive"] if mode == "plain" else []
        flask(self.project, url, "db", "migrate", "-m", "drop email", *extra)
        self.database.save()
        self.size_before = self.database.size()
        self.size_after = self.archive = 0

    def once(self) -> None:
        url = self.database.url
        self.database.restore()
        self.upgrades.append(flask(self.project, url, "db", "upgrade"))
        self.size_after, self.archive = self.database.size(), self.database.archive_size()
        self.downgrades.append(flask(self.project, url, "db", "downgrade"))

    def startup(self, runs: int) -> float:
        # A command that does no migration work: the CLI's own start-up cost, included in every timing.
        return statistics.median(
            flask(self.project, self.database.url, "db", "current")[0] for _ in range(runs)
        )


def measure(rows: int, runs: int, postgresql: str | None) -> dict[str, dict[str, float]]:
    """Both modes, their runs interleaved so that a busy machine slows both alike."""
    with tempfile.TemporaryDirectory(prefix="archive-bench-") as tmp:
        setups = [Run(mode, rows, postgresql, Path(tmp)) for mode in ("plain", "archived")]
        try:
            for _ in range(runs):
                for setup in setups:
                    setup.once()
            return {
                setup.mode: {
                    "upgrade": statistics.median(wall for wall, _ in setup.upgrades),
                    "upgrade_cpu": statistics.median(cpu for _, cpu in setup.upgrades),
                    "downgrade": statistics.median(wall for wall, _ in setup.downgrades),
                    "downgrade_cpu": statistics.median(cpu for _, cpu in setup.downgrades),
                    "startup": setup.startup(runs),
                    "size_before": setup.size_before,
                    "size_after": setup.size_after,
                    "archive": setup.archive,
                }
                for setup in setups
            }
        finally:
            for setup in setups:
                setup.database.drop()


def mib(size: float) -> str:
    return f"{size / 2**20:8.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgresql", help="maintenance-database URL of a PostgreSQL server to use too")
    args = parser.parse_args()
    if args.postgresql == "auto":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.postgres_server import find_pg_binaries, start_local_server

        binaries = find_pg_binaries()
        if binaries is None:
            sys.exit("no initdb/pg_ctl found: run scripts/ensure-postgres")
        server = start_local_server(binaries)
        args.postgresql = server.admin_url
    targets = [("sqlite", None)] + ([("postgresql", args.postgresql)] if args.postgresql else [])
    for dialect, url in targets:
        print(
            f"\n{dialect}: drop a nullable VARCHAR column of a {args.rows:,}-row table, "
            f"medians of {args.runs}"
        )
        print(
            f"{'':10}{'upgrade wall/cpu':>18}{'downgrade wall/cpu':>20}{'CLI start':>11}"
            f"{'db before':>13}{'db after':>13}{'archive':>13}"
        )
        results = measure(args.rows, args.runs, url)
        for mode, r in results.items():
            print(
                f"{mode:10}{r['upgrade']:10.2f}s /{r['upgrade_cpu']:5.2f}s"
                f"{r['downgrade']:11.2f}s /{r['downgrade_cpu']:5.2f}s{r['startup']:10.2f}s"
                f"{mib(r['size_before']):>13}{mib(r['size_after']):>13}{mib(r['archive']):>13}"
            )
        archived, plain = results["archived"], results["plain"]
        print(
            f"archiving adds {archived['upgrade_cpu'] - plain['upgrade_cpu']:+.2f}s CPU "
            f"({archived['upgrade'] - plain['upgrade']:+.2f}s wall) to the upgrade and "
            f"{mib(archived['archive']).strip()} of archive until the downgrade or a purge; "
            f"the plain downgrade brings the column back empty."
        )


if __name__ == "__main__":
    main()
