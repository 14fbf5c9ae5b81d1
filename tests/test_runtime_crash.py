"""SIGKILL at random moments of an upgrade leaves a consistent revision; stale rebuild tables are dropped."""

from __future__ import annotations

import os
import random
import re
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
# Catches a run that crawls (a lock wait, a hang cut short by a timeout), not a slow machine: the
# test took 225 s of a former 300 s budget on a loaded 2-core machine, so the margin is generous.
BUDGET_SECONDS = 900


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


#: Alembic logs "Running upgrade r1 -> r2, r2" as each step starts (its predecessor is committed).
STEP = re.compile(r"Running upgrade .*-> (\w+),")


def _upgrade_process(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=project.path,
        env=project.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(process: subprocess.Popen[str], rev: str) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        found = STEP.search(line)
        if found and found[1] == rev:
            return
    raise AssertionError(f"the upgrade ended before it started {rev}")


def _timed_steps(project: Project) -> dict[str, float]:
    """Seconds each step of a full upgrade takes: from its start to the next step's (or the end)."""
    process = _upgrade_process(project)
    assert process.stderr is not None
    starts = {}
    for line in process.stderr:
        found = STEP.search(line)
        if found:
            starts[found[1]] = time.monotonic()
    times = [starts[rev] for rev, _ in HISTORY] + [time.monotonic()]
    assert process.wait(timeout=120) == 0
    return {rev: times[i + 1] - times[i] for i, (rev, _) in enumerate(HISTORY)}


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
    steps = _timed_steps(project)

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
            # A random moment of each step in turn, found by its log line rather than by a clock
            # measured once: on a loaded machine the kills still land in every part of the run.
            rev = HISTORY[kill % len(HISTORY)][0]
            _wait_for_step(process, rev)
            time.sleep(rng.uniform(0, steps[rev]))
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


