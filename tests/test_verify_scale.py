"""`flask db verify` and migrate's automatic verify where PostgreSQL's limits show: wide tables, many."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.postgres_server import find_pg_binaries, start_local_server
from tests.test_safety_cli import write_revision

pytestmark = pytest.mark.postgresql
#: The conftest's `project`, on PostgreSQL only.
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

#: Columns of the wide table besides its key: with the key, 9 below PostgreSQL's 1,600.
WIDE = 1590
#: Add-column steps after the wide table: step-by-step round trips (up, down, up: two column numbers
#: each) pass 1,600 at the fifth; a table upgraded in one go holds them all.
ADDED = 6


def wide_history(project: Project) -> None:
    """r0 creates ``wide`` (id + 1,590 columns); r1..r6 each add a column, as Alembic writes it."""
    columns = "".join(f'    a{i} = db.Column(db.Integer)\n' for i in range(ADDED))
    created = "".join(f'    c{i} = db.Column(db.Integer)\n' for i in range(WIDE))
    key = "    id = db.Column(db.Integer, primary_key=True)\n"
    project.write_app(f"class Wide(db.Model):\n{key}{created}{columns}")
    project.flask("db", "init")
    listed = ", ".join(f'sa.Column("c{i}", sa.Integer())' for i in range(WIDE))
    write_revision(
        project, "r0", None,
        f'op.create_table("wide", sa.Column("id", sa.Integer(), nullable=False), {listed}, '
        'sa.PrimaryKeyConstraint("id"))',
        'op.drop_table("wide")', "wide",
    )
    for i in range(ADDED):
        write_revision(
            project, f"r{i + 1}", f"r{i}",
            f'with op.batch_alter_table("wide") as batch_op:\n'
            f'    batch_op.add_column(sa.Column("a{i}", sa.Integer(), nullable=True))',
            f'with op.batch_alter_table("wide") as batch_op:\n    batch_op.drop_column("a{i}")',
            f"a{i}",
        )


@ON_POSTGRESQL
def test_verify_continues_past_the_column_limit_on_a_fresh_scratch_database(project: Project) -> None:
    wide_history(project)

    result = project.flask("db", "verify")

    assert "verify: OK: 7 revision(s) replayed" in result.stdout
    steps = json.loads(project.flask("db", "verify", "--format", "json").stdout)["steps"]
    assert [s["ok"] for s in steps] == [True] * (ADDED + 1)
    noted = [s["revision"] for s in steps if s["notes"]]
    assert noted == ["r5"]
    assert "continued on a fresh scratch database upgraded from base to r4 in one go" in result.stdout
    assert "counts dropped columns" in result.stdout
    assert project.tables() <= {"alembic_version"}  # the app's own database was not touched


@ON_POSTGRESQL
def test_verify_continues_past_the_column_limit_on_a_given_scratch_database_and_leaves_it_empty(
    project: Project, postgres_server: Any
) -> None:
    wide_history(project)
    scratch = postgres_server.create_database()
    try:
        result = project.flask("db", "verify", "--scratch-url", scratch)
        leftover = sa.inspect(sa.create_engine(scratch, poolclass=sa.pool.NullPool)).get_table_names()
    finally:
        postgres_server.drop_database(sa.make_url(scratch).database)

    assert "verify: OK: 7 revision(s) replayed" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if "1,600" in line]
    assert "counts dropped columns" in line and "continued on a fresh scratch database" in line
    assert "Traceback" not in result.output
    assert leftover == []
    assert project.tables() <= {"alembic_version"}


#: A server whose shared lock table holds about 10 * (10 + 0) = 100 locks (PostgreSQL's defaults: 6,400).
SMALL_LOCK_TABLE = {"max_locks_per_transaction": "10", "max_connections": "10", "max_worker_processes": "0"}


def linked_tables(n: int) -> str:
    """N models, each with an index, a TEXT column (a TOAST table) and a foreign key: ~6 locked relations."""
    return "\n".join(
        f"class T{i}(db.Model):\n"
        f'    __tablename__ = "t{i}"\n'
        "    id = db.Column(db.Integer, primary_key=True)\n"
        "    code = db.Column(db.String(20), index=True)\n"
        "    notes = db.Column(db.Text)\n"
        f'    parent_id = db.Column(db.Integer, db.ForeignKey("t{max(i - 1, 0)}.id"))\n'
        for i in range(n)
    )


@pytest.fixture
def small_lock_table_project(tmp_path: Any) -> Iterator[Project]:
    binaries = find_pg_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server programs not found")
    server = start_local_server(binaries, SMALL_LOCK_TABLE)
    path = tmp_path / "project"
    path.mkdir()
    project = Project(path, server.create_database())
    try:
        yield project
    finally:
        project.dispose()
        server.close()


def test_a_revision_that_fills_postgresqls_lock_table_is_named_in_one_line(
    small_lock_table_project: Project,
) -> None:
    project = small_lock_table_project
    project.write_app(linked_tables(60))
    project.flask("db", "init")

    migrated = project.flask("db", "migrate", "-m", "tables")  # verify warns; the script is written

    [script] = (project.migrations / "versions").glob("*_tables.py")
    lines = [line for line in migrated.output.splitlines() if "lock table" in line]
    assert len(lines) == 1, str(migrated)
    [line] = lines
    assert "upgrade failed: PostgreSQL's lock table is full" in line
    assert "max_locks_per_transaction * (max_connections + max_prepared_transactions) = 10 * (10 + 0)" in line
    assert "raise max_locks_per_transaction (a server restart) or split the revision" in line
    assert "verify: FAILED (1 problem)" in migrated.output and "Traceback" not in migrated.output

    upgraded = project.flask("db", "upgrade", ok=False)
    assert "PostgreSQL's lock table is full" in upgraded.stderr
    assert "raise max_locks_per_transaction or split the revision" in upgraded.stderr
    assert "Traceback" not in upgraded.output
    assert project.tables() <= {"alembic_version"} and project.version() == []
    assert script.exists()
