"""An existing Flask-Migrate 4.x migrations folder (its env.py, script.py.mako, revisions) runs unchanged."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.async_app import async_app_source
from tests.harness import Project

FIXTURES = Path(__file__).parent / "fixtures" / "flask_migrate_4"

USER = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
    email = db.Column(db.String(120))
{extra}
"""
AGE = "    age = db.Column(db.Integer)"

GROUP = """
class Group(db.Model):
    __bind_key__ = "db1"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
"""
BINDS = 'app.config["SQLALCHEMY_BINDS"] = {"db1": os.environ["BIND_URL"]}'


def copy_fixture(project: Project, template: str) -> dict[str, bytes]:
    """Put the Flask-Migrate folder in the project; return its files, to prove we leave them alone."""
    shutil.copytree(FIXTURES / template, project.migrations)
    return folder_files(project.migrations)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def revision_files(project: Project) -> list[Path]:
    return sorted((project.migrations / "versions").glob("*.py"))


def test_upgrade_and_downgrade_run_the_flask_migrate_folder_unchanged(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    original = copy_fixture(project, "flask")

    project.flask("db", "upgrade")
    assert project.version() == ["9d3e5b2c6a10"]
    project.execute(
        "INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@example.com'), ('bob', 'bob@example.com')"
    )

    project.flask("db", "downgrade")
    assert project.version() == ["4f1c2a9b7e01"]
    assert "email" not in project.columns("user")
    assert [row["name"] for row in project.rows("user", order_by="id")] == ["ada", "bob"]

    project.flask("db", "upgrade")
    assert project.rows("user", order_by="id") == [
        {"id": 1, "name": "ada", "email": None},
        {"id": 2, "name": "bob", "email": None},
    ]
    assert folder_files(project.migrations) == original


def test_migrate_and_check_on_a_flask_migrate_folder(project: Project) -> None:
    project.write_app(USER.format(extra=AGE))
    copy_fixture(project, "flask")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@example.com')")

    assert project.flask("db", "check", ok=False).returncode != 0
    migrate = project.flask("db", "migrate", "-m", "add age")
    assert "Detected added column 'user.age'" in migrate.stderr
    [new_file] = [f for f in revision_files(project) if f.name.endswith("_add_age.py")]
    # Written through the folder's own script.py.mako, in batch mode as Flask-Migrate does.
    assert "Revises: 9d3e5b2c6a10" in new_file.read_text()
    assert "batch_alter_table('user'" in new_file.read_text()

    project.flask("db", "upgrade")
    project.flask("db", "check")
    assert project.rows("user") == [{"id": 1, "name": "ada", "email": "ada@example.com", "age": None}]


NO_EMAIL = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
"""


def test_a_generated_drop_runs_and_passes_the_safety_net_under_a_flask_migrate_env_py(
    project: Project,
) -> None:
    # The generated script calls our ops (op.archive_columns, and on SQLite op.check_foreign_keys);
    # Flask-Migrate's env.py never imports Flask-Evolve, so the commands must register them.
    project.write_app(USER.format(extra=""))
    original = copy_fixture(project, "flask")
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@example.com'), ('bob', 'bob@example.com')"
    )
    project.write_app(NO_EMAIL)
    project.flask("db", "migrate", "-m", "drop email")
    [drop] = [f for f in revision_files(project) if f.name.endswith("_drop_email.py")]
    assert "op.archive_columns(" in drop.read_text()

    project.flask("db", "upgrade")
    assert "email" not in project.columns("user")
    project.flask("db", "downgrade")
    assert project.rows("user", order_by="id") == [
        {"id": 1, "name": "ada", "email": "ada@example.com"},
        {"id": 2, "name": "bob", "email": "bob@example.com"},
    ]
    project.flask("db", "upgrade")
    assert project.rows("user", order_by="id") == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]

    for command in (("verify",), ("status",), ("check", "--drift")):
        result = project.flask("db", *command)
        assert "has no attribute" not in result.stdout + result.stderr, str(result)
    # lint fails this history on purpose (the drop is an error-level finding); what matters is that
    # every revision was read.
    lint = project.flask("db", "lint", ok=None)
    assert "drops column user.email" in lint.stdout
    assert "not checked" not in lint.stdout, str(lint)
    assert "Drift:            no" in project.flask("db", "status").stdout
    assert {k: v for k, v in folder_files(project.migrations).items() if k in original} == original


def test_our_pipeline_drops_empty_revisions_under_a_flask_migrate_env_py(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    copy_fixture(project, "flask")
    project.flask("db", "upgrade")

    again = project.flask("db", "migrate", "-m", "nothing")
    # The old env.py installs its own hook only when configure_args has none:
    # ours runs, and its line survives the env.py's fileConfig().
    assert "INFO  [flask_evolve] No changes in schema detected." in again.stderr
    assert "[alembic.env]" not in again.stderr
    assert len(revision_files(project)) == 2
    assert project.flask("db", "migrate", "--exit-code", ok=False).returncode == 1
    assert len(revision_files(project)) == 2


def test_offline_sql_from_a_flask_migrate_folder(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    copy_fixture(project, "flask")

    sql = project.flask("db", "upgrade", "--sql").stdout
    assert "CREATE TABLE user" in sql
    assert "ALTER TABLE user ADD COLUMN email VARCHAR(120)" in sql
    assert "alembic_version" in sql
    assert project.tables() == set()


def test_flask_migrate_multidb_folder_runs_unchanged(project: Project, second_database_url: str) -> None:
    project.write_app(USER.format(extra="") + GROUP, config=BINDS)
    env = {"BIND_URL": second_database_url}
    original = copy_fixture(project, "flask-multidb")
    bind = Project(project.path, second_database_url)

    project.flask("db", "upgrade", env=env)
    assert {"user", "alembic_version"} <= project.tables() and "group" not in project.tables()
    assert {"group", "alembic_version"} <= bind.tables() and "user" not in bind.tables()
    assert project.version() == bind.version() == ["c81f04d2b6e3"]
    project.execute("INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@example.com')")
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")

    nothing = project.flask("db", "migrate", env=env)
    assert "No changes in schema detected" in nothing.stderr
    assert len(revision_files(project)) == 2

    project.flask("db", "downgrade", env=env)
    assert "email" not in project.columns("user")
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]

    project.flask("db", "downgrade", "base", env=env)
    assert project.tables() == {"alembic_version"} == bind.tables()
    assert folder_files(project.migrations) == original
    bind.dispose()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="get_event_loop() without a loop fails on 3.14")
def test_flask_migrate_aioflask_folder_runs_unchanged(project: Project) -> None:
    (project.path / "app.py").write_text(async_app_source('sa.Column("email", sa.String(120))'))
    copy_fixture(project, "aioflask")

    project.flask("db", "upgrade")
    assert project.version() == ["9d3e5b2c6a10"]
    project.execute("INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@example.com')")
    project.flask("db", "downgrade")
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
