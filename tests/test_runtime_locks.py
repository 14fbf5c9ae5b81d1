"""The migration lock: a second migrator waits and says so, --lock-timeout bounds the wait."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_evolve.runtime.locks import WAITING_MESSAGE, advisory_key, sqlite_lock_path
from tests.harness import Project
from tests.revision_files import use_flask_migrate_env, write_revision


@contextmanager
def held_lock(project: Project) -> Iterator[None]:
    """Hold the migration lock the way another `flask db upgrade` would."""
    url = sa.make_url(project.database_url)
    if project.dialect == "sqlite":
        path = sqlite_lock_path(url)
        assert path is not None
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)
        return
    with project.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": advisory_key("alembic_version")})
        yield


def _project_with_history(project: Project, *, migrate_args: str = "") -> None:
    project.write_app("", migrate_args=migrate_args)
    project.flask("db", "init")
    write_revision(
        project.migrations, "r1", None, 'op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))'
    )
    write_revision(project.migrations, "r2", "r1", 'op.add_column("a", sa.Column("x", sa.Integer))')


def _assert_one_line_timeout(stderr: str) -> None:
    assert stderr.count(WAITING_MESSAGE) == 1
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Another migration held the lock"), stderr
    assert "--lock-timeout" in last


def test_lock_timeout_gives_up_with_one_line_and_touches_nothing(project: Project) -> None:
    _project_with_history(project)
    with held_lock(project):
        started = time.monotonic()
        result = project.flask("db", "upgrade", "--lock-timeout", "1", ok=False)
        # It gave up while the lock was still held (a wait for ever would reach the harness's
        # 120 s timeout); the margin is for starting Flask on a loaded machine, not the 1 s wait.
        assert time.monotonic() - started < 60
    _assert_one_line_timeout(result.stderr)
    assert project.version() == []
    assert "a" not in project.tables()
    # Nor does the password of the URL appear: it is rendered hidden.
    assert result.stderr.count("\n") < 4


def test_migrate_lock_timeout_option_bounds_stamp_and_downgrade_too(project: Project) -> None:
    _project_with_history(project, migrate_args="lock_timeout=0.5")
    project.flask("db", "upgrade")
    with held_lock(project):
        for command in (["downgrade"], ["stamp", "r1"]):
            result = project.flask("db", *command, ok=False)
            _assert_one_line_timeout(result.stderr)
    assert project.version() == ["r2"]


BAD_LOCK_TIMEOUTS = [float("nan"), float("inf"), -1, "soon", True]


@pytest.mark.parametrize("value", BAD_LOCK_TIMEOUTS, ids=repr)
def test_migrate_refuses_a_lock_timeout_that_is_not_a_wait_when_it_is_built(value: object) -> None:
    from flask import Flask

    from flask_evolve import Migrate

    with pytest.raises(ValueError, match=r"is not a number of seconds: give one such as 30"):
        Migrate(Flask(__name__), object(), lock_timeout=value)
    later = Migrate()
    with pytest.raises(ValueError, match=r"is not a number of seconds: give one such as 30"):
        later.init_app(Flask(__name__), object(), lock_timeout=value)
    assert Migrate(lock_timeout="30").evolve_options == {"lock_timeout": "30"}


def test_a_bad_migrate_lock_timeout_is_one_line_at_flask_db_and_changes_nothing(project: Project) -> None:
    _project_with_history(project)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO a (id) VALUES (1)")
    for bad in ('float("nan")', 'float("inf")', "-1"):
        project.write_app("", migrate_args=f"lock_timeout={bad}")
        for command in (["upgrade"], ["downgrade"], ["stamp", "r2"]):
            result = project.flask("db", *command, ok=False)
            assert result.returncode == 1 and "Traceback" not in result.output, result
            assert result.stderr.strip().splitlines() == [result.stderr.strip()], result
            assert "is not a number of seconds: give one such as 30" in result.stderr, result
            # Named at the app's own line, where the fix goes.
            assert "(app.py, line " in result.stderr, result
            assert project.version() == ["r1"]
            assert list(project.columns("a")) == ["id"] and project.rows("a") == [{"id": 1}]


def test_a_waiting_upgrade_runs_when_the_lock_is_released(project: Project) -> None:
    _project_with_history(project)
    with held_lock(project):
        waiter = subprocess.Popen(
            [sys.executable, "-m", "flask", "db", "upgrade"],
            cwd=project.path,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The waiter says it waits before blocking; only then release the lock. A waiter that
        # blocks without saying so is killed after a while, so the test fails instead of hanging.
        watchdog = threading.Timer(120, waiter.kill)
        watchdog.start()
        assert waiter.stderr is not None
        before = []
        try:
            for line in waiter.stderr:
                before.append(line)
                if WAITING_MESSAGE in line:
                    break
            else:
                raise AssertionError("".join(before))
        finally:
            watchdog.cancel()
        assert waiter.poll() is None, waiter.communicate()
        assert project.version() == []
    _, rest = waiter.communicate(timeout=120)
    stderr = "".join(before) + rest
    assert waiter.returncode == 0, stderr
    assert stderr.count(WAITING_MESSAGE) == 1
    assert project.version() == ["r2"]


def test_offline_sql_takes_no_lock(project: Project) -> None:
    _project_with_history(project)
    with held_lock(project):
        result = project.flask("db", "upgrade", "--sql", "--lock-timeout", "0.2")
    assert "CREATE TABLE a" in result.stdout
    assert WAITING_MESSAGE not in result.stderr


MULTIDB_REVISION = '''\
from alembic import op
import pytest
import sqlalchemy as sa

revision = "m1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))


def downgrade_():
    op.drop_table("a")


def upgrade_other():
    op.create_table("b", sa.Column("id", sa.Integer, primary_key=True))
    {failure}


def downgrade_other():
    op.drop_table("b")
'''


def test_multidb_locks_every_bind_and_rolls_back_all_databases_together(sqlite_project: Project) -> None:
    project = sqlite_project
    other_path = project.path / "other.db"
    other = Project(project.path, f"sqlite:///{other_path}")
    project.write_app("", config=f'app.config["SQLALCHEMY_BINDS"] = {{"other": "sqlite:///{other_path}"}}')
    project.flask("db", "init", "--multidb")
    versions = project.migrations / "versions"
    (versions / "m1.py").write_text(MULTIDB_REVISION.format(failure='op.execute("SELECT * FROM nowhere")'))

    with held_lock(other):
        result = project.flask("db", "upgrade", "--lock-timeout", "0.5", ok=False)
    _assert_one_line_timeout(result.stderr)

    project.flask("db", "upgrade", ok=False)
    assert project.tables() <= {"alembic_version"}
    assert other.tables() <= {"alembic_version"}
    assert project.version() == [] and other.version() == []

    (versions / "m1.py").write_text(MULTIDB_REVISION.format(failure="pass"))
    project.flask("db", "upgrade")
    assert project.tables() == {"alembic_version", "a"}
    assert other.tables() == {"alembic_version", "b"}
    other.dispose()


def test_lock_module_in_process(tmp_path: Path) -> None:
    from flask_evolve.runtime.locks import LockTimeout, migration_lock

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    memory = sa.create_engine("sqlite://")
    messages: list[str] = []
    with migration_lock([engine, memory], notify=messages.append):
        with pytest.raises(LockTimeout), migration_lock([engine], timeout=0.2, notify=messages.append):
            pass
        # In-memory databases are private to their process: no lock, no wait.
        with migration_lock([memory], timeout=0, notify=messages.append):
            pass
    assert messages == [WAITING_MESSAGE]
    assert sqlite_lock_path(sa.make_url("sqlite://")) is None
    assert advisory_key("alembic_version") == advisory_key("alembic_version") != advisory_key("other")


def test_the_lock_also_guards_a_flask_migrate_env_py(sqlite_project: Project) -> None:
    project = sqlite_project
    _project_with_history(project)
    use_flask_migrate_env(project.migrations)
    with held_lock(project):
        result = project.flask("db", "upgrade", "--lock-timeout", "0.5", ok=False)
    _assert_one_line_timeout(result.stderr)
    project.flask("db", "upgrade")
    assert project.version() == ["r2"]
