"""How an app sets Flask-Evolve up: directory, renamed group, environment variables, configure callbacks,
`python app.py db ...`, the programmatic API, app.extensions['migrate'] and the app's own logging."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

import flask_evolve
from flask_evolve import Migrate
from tests.harness import Project

USER = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
{extra}
"""
EMAIL = "    email = db.Column(db.String(120))"
FIXTURES = Path(__file__).parent / "fixtures" / "flask_migrate_4"


def test_custom_directory_as_str_and_path_with_configure_callbacks(sqlite_project: Project) -> None:
    project = sqlite_project
    callbacks = """
@migrate.configure
def name_files(config):
    config.set_main_option("file_template", "%%(rev)s_custom_%%(slug)s")
    return config

@migrate.configure
def runs_second(config):
    assert config.get_main_option("file_template").startswith("%(rev)s_custom")
    return config
"""
    project.write_app(USER.format(extra="") + callbacks, migrate_args="directory='db_migrations'")
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    assert (project.path / "db_migrations" / "versions" / "r1_custom_initial.py").exists()
    project.flask("db", "upgrade")
    assert project.version() == ["r1"]
    assert not project.migrations.exists()

    # A pathlib.Path, given later to init_app (the application-factory pattern).
    project.write_app(
        USER.format(extra=EMAIL) + "\nmigrate.init_app(app, db, directory=Path('nested') / 'migrations')\n",
        imports="from pathlib import Path",
    )
    shutil.move(project.path / "db_migrations", project.path / "nested" / "migrations")
    project.flask("db", "migrate", "-m", "email", "--rev-id", "r2")
    assert (project.path / "nested" / "migrations" / "versions" / "r2_email.py").exists()
    project.flask("db", "upgrade")
    assert "email" in project.columns("user")


def test_renamed_command_group_and_its_environment_variables(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""), migrate_args="command='database'")
    missing = project.flask("db", "upgrade", ok=False)
    assert "No such command 'db'" in missing.stderr

    # click's auto_envvar_prefix under `flask`: FLASK_<GROUP>_<OPTION>, FLASK_<GROUP>_<COMMAND>_<OPTION>.
    env = {"FLASK_DATABASE_DIRECTORY": "from_env"}
    project.flask("database", "init", env=env)
    assert (project.path / "from_env" / "env.py").exists()
    project.flask(
        "database",
        "migrate",
        env={**env, "FLASK_DATABASE_MIGRATE_MESSAGE": "env message", "FLASK_DATABASE_MIGRATE_REV_ID": "e1"},
    )
    assert (project.path / "from_env" / "versions" / "e1_env_message.py").exists()

    offline = project.flask("database", "upgrade", env={**env, "FLASK_DATABASE_UPGRADE_SQL": "1"})
    assert "CREATE TABLE user" in offline.stdout
    assert "user" not in project.tables() and project.version() == []
    project.flask("database", "upgrade", env={**env, "FLASK_DATABASE_UPGRADE_SQL": "0"})
    assert project.version() == ["e1"]
    # An explicit option wins over the environment.
    assert (
        "e1"
        in project.flask("database", "heads", "-d", "from_env", env={"FLASK_DATABASE_DIRECTORY": "x"}).stdout
    )


def test_default_group_environment_variables(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    env = {"FLASK_DB_DIRECTORY": "env_dir"}
    project.flask("db", "init", env=env)
    project.flask("db", "migrate", env={**env, "FLASK_DB_MIGRATE_REV_ID": "v1"})
    upgrade = project.flask("db", "upgrade", env={**env, "FLASK_DB_UPGRADE_SQL": "true"})
    assert "INSERT INTO alembic_version (version_num) VALUES ('v1')" in upgrade.stdout
    assert not project.migrations.exists() and "user" not in project.tables()


def test_python_app_py_db_commands_through_manage(sqlite_project: Project) -> None:
    project = sqlite_project
    main = '\nif __name__ == "__main__":\n    from flask_evolve import manage\n\n    manage(app)\n'
    project.write_app(USER.format(extra="") + main)

    def python_app(*args: str) -> subprocess.CompletedProcess[str]:
        env = project.env()
        env.pop("FLASK_APP")
        done = subprocess.run(
            [sys.executable, "app.py", *args], cwd=project.path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    python_app("db", "init")
    python_app("db", "migrate", "-m", "initial")
    python_app("db", "upgrade")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    assert "(head)" in python_app("db", "current").stdout
    assert "upgrade" in python_app("db", "--help").stdout
    assert project.rows("user") == [{"id": 1, "name": "ada"}]


STARTUP_UPGRADE = """
import sys

from flask_evolve import MigrationError, upgrade


@app.cli.command("names")
def names():
    for user in db.session.scalars(db.select(User).order_by(User.id)):
        print(user.name)


# The app migrates itself when it starts; a failure is the app's to handle.
with app.app_context():
    try:
        upgrade()
        print("start-up upgrade done", file=sys.stderr)
    except MigrationError as exc:
        print(f"start-up upgrade failed: {exc}", file=sys.stderr)
"""


def test_upgrade_called_at_app_start_up(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra="") + STARTUP_UPGRADE)
    first = project.flask("routes")
    assert (
        "start-up upgrade failed: No migrations folder at 'migrations': run `flask db init`" in first.stderr
    )
    assert "Traceback" not in first.stderr

    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    assert "user" not in project.tables()
    started = project.flask("names")
    assert "start-up upgrade done" in started.stderr
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")

    project.write_app(USER.format(extra=EMAIL) + STARTUP_UPGRADE)
    project.flask("db", "migrate", "-m", "email")
    assert project.flask("names").stdout == "ada\n"
    assert "email" in project.columns("user")


LOGGING_APP = """
import logging
import sys

import flask_evolve

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="ROOT %(name)s %(message)s")
app_log = logging.getLogger("myapp")
child_log = logging.getLogger("myapp.jobs")


@app.cli.command("deploy")
def deploy():
    app_log.info("before upgrade")
    flask_evolve.upgrade()
    app_log.info("after upgrade")
    child_log.warning("child after upgrade")
"""


@pytest.mark.parametrize("env_py", ["flask_evolve", "flask_migrate_4"])
def test_app_loggers_keep_working_after_a_migration(sqlite_project: Project, env_py: str) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra="email = db.Column(db.String(120))") + LOGGING_APP)
    if env_py == "flask_evolve":
        project.flask("db", "init")
        project.flask("db", "migrate", "-m", "initial")
    else:
        shutil.copytree(FIXTURES / "flask", project.migrations)

    deploy = project.flask("deploy")
    assert "ROOT myapp before upgrade" in deploy.stderr
    assert "Running upgrade" in deploy.stderr
    assert "ROOT myapp after upgrade" in deploy.stderr
    assert "ROOT myapp.jobs child after upgrade" in deploy.stderr
    assert "user" in project.tables()


def test_extension_state_contract(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'x.db'}"
    db = SQLAlchemy(app)
    migrate = Migrate(app, db, directory=tmp_path / "mig", compare_type=False, version_table="v")

    state = app.extensions["migrate"]
    assert state.migrate is migrate and state.db is db
    assert state.directory == str(tmp_path / "mig") == migrate.directory
    assert state.metadata is db.metadata
    args = state.configure_args
    assert args["version_table"] == "v" and args["compare_type"] is False and args["render_as_batch"] is True
    assert "process_revision_directives" not in args  # our pipeline goes to Alembic's command, not env.py
    assert "db" in app.cli.commands

    # Factory pattern, and a renamed group.
    other = Flask("other")
    later = Migrate()
    later.init_app(other, db, command="database", render_as_batch=False)
    assert "database" in other.cli.commands and "db" not in other.cli.commands
    assert other.extensions["migrate"].configure_args["render_as_batch"] is False
    assert other.extensions["migrate"].directory == "migrations"


def test_config_class_and_alembic_version(tmp_path: Path) -> None:
    import alembic

    assert flask_evolve.alembic_version == tuple(int(v) for v in alembic.__version__.split(".")[:3])
    assert all(isinstance(v, int) for v in flask_evolve.alembic_version)

    from flask_evolve import Config

    assert Config(template_directory=str(tmp_path)).get_template_directory() == str(tmp_path)
    default = Path(Config().get_template_directory())
    assert {"flask", "flask-multidb", "aioflask", "aioflask-multidb"} <= {p.name for p in default.iterdir()}
    assert isinstance(Config(), alembic.config.Config)


def test_relative_sqlite_url_lives_in_the_instance_folder(tmp_path: Path) -> None:
    # Flask-SQLAlchemy 3 resolves sqlite:///relative.db against app.instance_path; migrations follow the app.
    (tmp_path / "project").mkdir()
    project = Project(tmp_path / "project", "sqlite:///relative.db")
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    database = Project(project.path, f"sqlite:///{project.path / 'instance' / 'relative.db'}")
    assert {"user", "alembic_version"} == database.tables()
    assert not (project.path / "relative.db").exists()
    database.dispose()


EXIT_PROBE = """
def _probe() -> None:
    print("frozen at exit:", gc.get_freeze_count() > 0, file=sys.stderr)


atexit.register(_probe)
"""


def test_a_command_leaves_the_apps_objects_out_of_the_collections_at_exit(sqlite_project: Project) -> None:
    """At exit the app's objects are frozen (no final garbage-collection walk over every model),
    and the app's own exit handlers still run, after the command's output and with its file written."""
    project = sqlite_project
    project.write_app(
        USER.format(extra=""),
        imports="import atexit, gc, sys",
        config=EXIT_PROBE,
    )
    project.flask("db", "init")
    result = project.flask("db", "migrate", "-m", "initial")
    assert "frozen at exit: True" in result.output
    assert result.output.index("Generating") < result.output.index("frozen at exit")
    (script,) = (project.migrations / "versions").glob("*_initial.py")
    assert "op.create_table('user'" in script.read_text()
    project.flask("db", "upgrade")
    assert project.tables() == {"alembic_version", "user"}
    project.execute("INSERT INTO \"user\" (id, name) VALUES (1, 'Ada')")
    assert project.rows("user") == [{"id": 1, "name": "Ada"}]


def test_a_command_run_in_process_leaves_the_collections_as_they_were(tmp_path: Path) -> None:
    """The app's objects are frozen for the command only: a long-running process that invokes a
    command (here a test client's CLI runner) gets its normal garbage collections back."""
    import gc

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
    db = SQLAlchemy(app)
    Migrate(app, db, directory=str(tmp_path / "migrations"))
    runner = app.test_cli_runner()
    assert gc.get_freeze_count() == 0
    with app.app_context():
        result = runner.invoke(args=["db", "init"])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0
    assert (tmp_path / "migrations" / "env.py").exists()
