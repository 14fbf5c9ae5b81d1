"""SIGKILL at random moments of an upgrade leaves a consistent revision; stale rebuild tables are dropped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

from tests.harness import Project
from tests.revision_files import write_revision

ROWS = 5000

# Each step mixes DDL and data changes, and r3 rebuilds a table (batch recreate),
# so a kill can land between any two statements of a step.
HISTORY: list[tuple[str, str]] = [
    (
        "r1",
        f"""
        t = op.create_table(
            "t",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("v", sa.Integer, nullable=False),
            sa.Column("s", sa.String(20)),
        )
        op.bulk_insert(t, [{{"id": i, "v": i, "s": str(i)}} for i in range(1, {ROWS} + 1)])
        """,
    ),
    (
        "r2",
        """
        op.add_column("t", sa.Column("w", sa.Integer))
        op.execute("UPDATE t SET w = v * 2")
        op.create_index("ix_t_w", "t", ["w"])
        """,
    ),
    (
        "r3",
        """
        with op.batch_alter_table("t", recreate="always") as batch:
            batch.alter_column("s", type_=sa.String(40))
        op.execute("UPDATE t SET s = s || '!'")
        """,
    ),
    (
        "r4",
        """
        op.create_table("u", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
        op.execute("INSERT INTO u (id, v) SELECT id, v FROM t")
        """,
    ),
    (
        "r5",
        """
        with op.batch_alter_table("t") as batch:
            batch.drop_column("v")
        op.execute("UPDATE t SET w = w + 1")
        """,
    ),
    (
        "r6",
        """
        op.create_index("ix_u_v", "u", ["v"])
        op.execute("DELETE FROM u WHERE id % 2 = 0")
        """,
    ),
]
HEAD = HISTORY[-1][0]
KILLS = 20
BUDGET_SECONDS = 300


def _write_history(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    down = None
    for rev, upgrade in HISTORY:
        write_revision(project.migrations, rev, down, upgrade)
        down = rev


def _reset(project: Project) -> None:
    project.dispose()
    if project.dialect == "sqlite":
        database = project.engine.url.database
        assert database
        for path in (database, database + "-journal"):
            if os.path.exists(path):
                os.unlink(path)
    else:
        project.execute("DROP SCHEMA public CASCADE")
        project.execute("CREATE SCHEMA public")


def _state(project: Project) -> dict[str, Any]:
    schema = project.schema()
    return {
        "version": project.version(),
        "schema": schema,
        "rows": {table: project.rows(table, order_by="id") for table in schema},
    }


#: Alembic logs this right before it runs the first migration.
MIGRATING = "Will assume transactional DDL"


def _upgrade_process(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=project.path,
        env=project.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_migrations(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        if MIGRATING in line:
            return
    raise AssertionError("the upgrade ended before it started migrating")


def _timed_full_upgrade(project: Project) -> float:
    """Seconds from the start of the migrations to the end of the process."""
    process = _upgrade_process(project)
    _wait_for_migrations(process)
    clock = time.monotonic()
    assert process.stderr is not None
    process.stderr.read()
    assert process.wait(timeout=120) == 0
    return time.monotonic() - clock


def test_sigkill_at_random_moments_leaves_the_database_at_a_consistent_revision(project: Project) -> None:
    started = time.monotonic()
    _write_history(project)
    expected = {(): _state(project)}
    for rev, _ in HISTORY:
        project.flask("db", "upgrade", rev)
        state = _state(project)
        expected[tuple(state["version"])] = state
    assert list(expected) == [(), *[(rev,) for rev, _ in HISTORY]]

    _reset(project)
    migrating = _timed_full_upgrade(project)

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    observed: list[tuple[str, ...]] = []
    for kill in range(KILLS):
        assert time.monotonic() - started < BUDGET_SECONDS, f"over budget after {kill} kills (seed {seed})"
        _reset(project)
        process = _upgrade_process(project)
        if kill % 5 == 0:
            # Now and then anywhere, start-up and lock included.
            time.sleep(rng.uniform(0, 1.5))
        else:
            _wait_for_migrations(process)
            time.sleep(rng.uniform(0, migrating))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

        state = _state(project)
        version = tuple(state["version"])
        observed.append(version)
        assert version in expected, f"kill {kill} (seed {seed}): unknown version {version}"
        assert state == expected[version], f"kill {kill} (seed {seed}): schema/rows do not match {version}"

        project.flask("db", "upgrade")
        assert _state(project) == expected[(HEAD,)], f"kill {kill} (seed {seed})"
    # The kills must land inside the run, not only before or after it.
    assert len(set(observed)) >= 3, f"kills landed only at {set(observed)} (seed {seed})"


STALE = "CREATE TABLE _alembic_tmp_item (id INTEGER PRIMARY KEY, name VARCHAR(50))"


def test_upgrade_drops_rebuild_tables_left_by_a_failed_flask_migrate_run(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app("")
    project.flask("db", "init")
    write_revision(
        project.migrations,
        "r1",
        None,
        """
        op.create_table(
            "item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50))
        )
        """,
    )
    write_revision(
        project.migrations,
        "r2",
        "r1",
        """
        with op.batch_alter_table("item", recreate="always") as batch:
            batch.alter_column("name", type_=sa.String(80))
        """,
    )
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada')")
    project.execute(STALE)

    result = project.flask("db", "upgrade")
    assert "Dropped '_alembic_tmp_item', left behind by a failed rebuild of 'item'." in result.stderr
    assert project.version() == ["r2"]
    assert project.rows("item") == [{"id": 1, "name": "Ada"}]
    assert "_alembic_tmp_item" not in project.tables()


def test_a_rebuild_table_holding_the_only_rows_is_kept(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, 'op.create_table("other", sa.Column("id", sa.Integer))')
    project.execute(STALE)
    project.execute("INSERT INTO _alembic_tmp_item (id, name) VALUES (1, 'Ada')")

    result = project.flask("db", "upgrade", ok=False)
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Table 'item' is missing and '_alembic_tmp_item' holds its rows")
    assert project.rows("_alembic_tmp_item") == [{"id": 1, "name": "Ada"}]
    assert project.version() == []


