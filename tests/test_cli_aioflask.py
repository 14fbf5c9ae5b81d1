"""The aioflask and aioflask-multidb templates on an app whose db object hands out AsyncEngines."""

from __future__ import annotations

from pathlib import Path

from tests.async_app import async_app_source
from tests.harness import Project

# A get_event_loop() without a running loop, anywhere in our code, becomes an error.
STRICT = {"PYTHONWARNINGS": "error:There is no current event loop:DeprecationWarning"}


def test_aioflask_template_migrates_an_async_engine(project: Project) -> None:
    (project.path / "app.py").write_text(async_app_source())
    project.flask("db", "init", "-t", "aioflask", env=STRICT)
    assert (
        (project.migrations / "README").read_text().startswith("Single-database configuration for aioflask")
    )
    assert "get_event_loop" not in (project.migrations / "env.py").read_text()

    project.flask("db", "migrate", "-m", "initial", env=STRICT)
    project.flask("db", "upgrade", env=STRICT)
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")

    (project.path / "app.py").write_text(async_app_source('sa.Column("email", sa.String(120))'))
    added = project.flask("db", "migrate", "-m", "email", env=STRICT)
    assert "Detected added column 'user.email'" in added.stderr
    # The new step is verified on a scratch copy through a synchronous driver on the same URL.
    assert "verify: OK" in added.output, added.output
    project.flask("db", "upgrade", env=STRICT)
    assert project.rows("user") == [{"id": 1, "name": "ada", "email": None}]

    # The safety commands read an AsyncEngine's database the same way.
    assert "Drift:            no" in project.flask("db", "status", env=STRICT).stdout
    assert "verify: OK: 2 revision(s)" in project.flask("db", "verify", env=STRICT).stdout
    assert "lint: OK" in project.flask("db", "lint", env=STRICT).stdout
    project.flask("db", "check", env=STRICT)

    project.flask("db", "downgrade", env=STRICT)
    assert project.rows("user") == [{"id": 1, "name": "ada"}]


def test_check_on_an_async_engine_tells_each_reason_apart(project: Project) -> None:
    (project.path / "app.py").write_text(async_app_source())
    project.flask("db", "init", "-t", "aioflask", env=STRICT)
    project.flask("db", "migrate", "-m", "initial", env=STRICT)

    behind = project.flask("db", "check", ok=False, env=STRICT)
    assert behind.returncode == 3 and "not at head" in behind.stderr, behind
    project.flask("db", "upgrade", env=STRICT)
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    project.flask("db", "check", env=STRICT)

    (project.path / "app.py").write_text(async_app_source('sa.Column("email", sa.String(120))'))
    changed = project.flask("db", "check", ok=False, env=STRICT)
    assert changed.returncode == 1 and "add_column user.email" in changed.stderr, changed

    # The same column added by hand: the models and the database agree, the migrations do not.
    project.execute('ALTER TABLE "user" ADD COLUMN email VARCHAR(120)')
    project.flask("db", "check", env=STRICT)
    drifted = project.flask("db", "check", "--drift", ok=False, env=STRICT)
    assert drifted.returncode == 4 and "changed outside migrations" in drifted.stderr, drifted
    assert project.rows("user") == [{"id": 1, "name": "ada", "email": None}]
    assert "Traceback" not in behind.stderr + changed.stderr + drifted.stderr


def test_aioflask_multidb_template_puts_each_table_in_its_database(
    project: Project, second_database_url: str
) -> None:
    env = {**STRICT, "BIND_URL": second_database_url}
    bind = Project(project.path, second_database_url)
    (project.path / "app.py").write_text(async_app_source())
    project.flask("db", "init", "-t", "aioflask-multidb", env=env)

    project.flask("db", "migrate", "-m", "initial", env=env)
    script = next((project.migrations / "versions").glob("*_initial.py")).read_text()
    assert "def upgrade_db1():" in script
    project.flask("db", "upgrade", env=env)
    assert project.tables() == {"user", "alembic_version"}
    assert bind.tables() == {"group", "alembic_version"}
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")

    nothing = project.flask("db", "migrate", env=env)
    assert "No changes in schema detected" in nothing.stderr

    project.flask("db", "downgrade", env=env)
    assert project.tables() == {"alembic_version"} == bind.tables()
    bind.dispose()


def test_no_get_event_loop_in_flask_evolve() -> None:
    # On Python < 3.12 the warning filter above cannot catch it; the source can.
    import flask_evolve

    package = Path(flask_evolve.__file__).parent
    offenders = [str(p) for p in package.rglob("*.py") if "get_event_loop" in p.read_text()]
    offenders += [
        str(p) for p in (package / "templates").rglob("env.py") if "get_event_loop" in p.read_text()
    ]
    assert offenders == []


def test_archive_lists_and_purges_an_aioflask_multidb_project(
    project: Project, second_database_url: str
) -> None:
    env = {**STRICT, "BIND_URL": second_database_url}
    bind = Project(project.path, second_database_url)
    (project.path / "app.py").write_text(async_app_source('sa.Column("email", sa.String(120))'))
    project.flask("db", "init", "-t", "aioflask-multidb", env=env)
    project.flask("db", "migrate", "-m", "initial", env=env)
    project.flask("db", "upgrade", env=env)
    project.execute("INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@x')")
    assert "The archive is empty" in project.flask("db", "archive", env=env).stdout

    (project.path / "app.py").write_text(async_app_source())
    project.flask("db", "migrate", "-m", "drop email", env=env)
    project.flask("db", "upgrade", env=env)
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
    listed = project.flask("db", "archive", env=env).stdout
    assert "user.email" in listed and "1 archive table(s)" in listed

    project.flask("db", "downgrade", env=env)
    assert project.rows("user") == [{"id": 1, "name": "ada", "email": "ada@x"}]
    project.flask("db", "upgrade", env=env)
    purged = project.flask("db", "archive", "--purge", env=env).stdout
    assert "Purged" in purged and "user.email" in purged
    assert "The archive is empty" in project.flask("db", "archive", env=env).stdout
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
    assert bind.tables() == {"group", "alembic_version"}
    bind.dispose()
