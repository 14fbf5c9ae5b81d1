"""Bad input never hurts: one `Error:` line, non-zero exit, no traceback, database and folder untouched."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Project
from tests.revision_files import FLASK_MIGRATE_ENV, write_revision

SECRET = "s3cr3t-Pa55word"

MODEL = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
"""

R1 = """
op.create_table(
    "item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50), nullable=False)
)
"""
R2 = 'op.add_column("item", sa.Column("age", sa.Integer))'


@dataclass
class Case:
    """One way to get things wrong, and the words the error line must contain."""

    name: str
    args: tuple[str, ...]
    expect: str
    setup: Callable[[Project], dict[str, str] | None] = lambda project: None
    postgresql: bool = False
    #: Something held by another process while the command runs.
    during: Callable[[Project], AbstractContextManager[None]] = lambda project: nullcontext()


def _versions(project: Project) -> Path:
    return project.migrations / "versions"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new))


def _revision_file(rev: str, down: str | None, body: str) -> Callable[[Project], None]:
    def setup(project: Project) -> None:
        write_revision(project.migrations, rev, down, body)

    return setup


def _syntax_error(project: Project) -> None:
    _edit(_versions(project) / "r2.py", "def upgrade():", "def upgrade()")


def _module_import_error(project: Project) -> None:
    _edit(_versions(project) / "r2.py", "import sqlalchemy as sa", "import sqlalchemy as sa\nimport nope_mod")


def _down_revision_nowhere(project: Project) -> None:
    _edit(_versions(project) / "r2.py", "down_revision = 'r1'", "down_revision = 'r0'")


def _cycle(project: Project) -> None:
    _edit(_versions(project) / "r1.py", "down_revision = None", "down_revision = 'r2'")


def _duplicate_id(project: Project) -> None:
    shutil.copy(_versions(project) / "r2.py", _versions(project) / "r2_copy.py")


def _no_revision_variable(project: Project) -> None:
    _edit(_versions(project) / "r2.py", "revision = 'r2'", "")


def _version_row(version: str) -> Callable[[Project], None]:
    def setup(project: Project) -> None:
        project.execute("UPDATE alembic_version SET version_num = :v", {"v": version})

    return setup


def _second_version_row(project: Project) -> None:
    project.execute("INSERT INTO alembic_version (version_num) VALUES ('r2')")


def _app_source(project: Project, old: str, new: str) -> None:
    _edit(project.path / "app.py", old, new)


def _app_import_error(project: Project) -> None:
    _app_source(
        project, "from flask_evolve import Migrate", "from flask_evolve import Migrate\nimport not_installed"
    )


def _models_import_error(project: Project) -> None:
    (project.path / "models.py").write_text("from sqlalchemy import NoSuchThing\n")
    _app_source(
        project, "from flask_evolve import Migrate", "from flask_evolve import Migrate\nimport models"
    )


def _app_raises(project: Project) -> None:
    _app_source(project, "migrate = Migrate(", "undefined_name\nmigrate = Migrate(")


def _no_db_given(project: Project) -> None:
    _app_source(project, "migrate = Migrate(app, db", "migrate = Migrate(app")


def _url(url: str) -> Callable[[Project], dict[str, str]]:
    return lambda project: {"DATABASE_URL": url}


def _read_only(project: Project) -> dict[str, str]:
    database = project.engine.url.database
    return {"DATABASE_URL": f"sqlite:///file:{database}?mode=ro&uri=true"}


def _short_busy_timeout(project: Project) -> None:
    _app_source(
        project,
        'app.config["SQLALCHEMY_DATABASE_URI"]',
        'app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 0.3}}\n'
        'app.config["SQLALCHEMY_DATABASE_URI"]',
    )


@contextmanager
def _exclusive_sqlite_lock(project: Project) -> Iterator[None]:
    holder = sqlite3.connect(project.engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _missing_ini_with_flask_migrate_env(project: Project) -> None:
    (project.migrations / "env.py").write_text(FLASK_MIGRATE_ENV)
    (project.migrations / "alembic.ini").unlink()


def _corrupt_ini(project: Project) -> None:
    (project.migrations / "alembic.ini").write_text("this is not an ini file\n[alembic\n")


def _env_syntax_error(project: Project) -> None:
    (project.migrations / "env.py").write_text(
        "from flask_evolve.environment import run_migrations\nrun_migrations(\n"
    )


def _missing_env(project: Project) -> None:
    (project.migrations / "env.py").unlink()


def _env_reading_x(project: Project) -> None:
    (project.migrations / "env.py").write_text(
        "from alembic import context\n"
        "from flask_evolve.environment import run_migrations\n"
        "tenant = int(context.get_x_argument(as_dictionary=True)['tenant'])\n"
        "run_migrations()\n"
    )


CASES = [
    # -- the migrations folder --------------------------------------------------------
    Case(
        "syntax error in a revision", ("upgrade",), "Syntax error in migrations/versions/r2.py", _syntax_error
    ),
    Case(
        "import error in a revision's upgrade()",
        ("upgrade",),
        "No module named 'nope_mod'; that migration was rolled back and the database is at revision r1",
        _revision_file("r2", "r1", "import nope_mod"),
    ),
    Case(
        "module-level import error in a revision",
        ("history",),
        "migrations/versions/r2.py, line 8: ModuleNotFoundError: No module named 'nope_mod': fix the file",
        _module_import_error,
    ),
    Case(
        "revision raises",
        ("upgrade",),
        "RuntimeError: half done",
        _revision_file(
            "r2", "r1", 'op.add_column("item", sa.Column("age", sa.Integer))\nraise RuntimeError("half done")'
        ),
    ),
    Case(
        "revision SQL fails",
        ("upgrade",),
        "no such table",
        _revision_file(
            "r2",
            "r1",
            'op.add_column("item", sa.Column("age", sa.Integer))\nop.execute("DELETE FROM nowhere")',
        ),
    ),
    Case("down_revision pointing nowhere", ("upgrade",), "'r0'", _down_revision_nowhere),
    Case("a cycle", ("upgrade",), "Cycle is detected", _cycle),
    Case("duplicate revision ids", ("upgrade",), "declare revision 'r2'", _duplicate_id),
    Case("no revision variable", ("upgrade",), "Could not determine revision id", _no_revision_variable),
    Case("two heads", ("upgrade",), "more than one head", _revision_file("r3", "r1", "pass")),
    Case("missing migrations folder", ("upgrade", "-d", "nowhere"), "No migrations folder at 'nowhere'"),
    Case("missing env.py", ("upgrade",), "env.py", _missing_env),
    Case("syntax error in env.py", ("upgrade",), "Syntax error in migrations/env.py", _env_syntax_error),
    Case("corrupted alembic.ini", ("upgrade",), "alembic.ini", _corrupt_ini),
    Case(
        "missing alembic.ini (Flask-Migrate env.py)",
        ("upgrade",),
        "env.py",
        _missing_ini_with_flask_migrate_env,
    ),
    Case(
        "-x garbage for an env.py that reads -x",
        ("-x", "tenant=%%garbage", "upgrade"),
        "env.py",
        _env_reading_x,
    ),
    # -- the version table ------------------------------------------------------------
    Case("database at an unknown revision", ("upgrade",), "does not contain", _version_row("f00dcafe")),
    Case("version table with two rows", ("upgrade",), "r2", _second_version_row),
    # -- revision arguments -----------------------------------------------------------
    Case("upgrade to a typo", ("upgrade", "r9"), "No revision 'r9'"),
    Case("downgrade to a typo", ("downgrade", "r9"), "r9"),
    Case("stamp a typo", ("stamp", "r9"), "r9"),
    Case("stamp --purge a typo", ("stamp", "--purge", "r9"), "No revision 'r9'"),
    Case("downgrade too far", ("downgrade", "-5"), "-5"),
    Case("range without --sql", ("upgrade", "r1:r2"), "--sql"),
    Case("show a typo", ("show", "r9"), "r9"),
    # -- the command line -------------------------------------------------------------
    Case("unknown option", ("upgrade", "--bogus"), "No such option"),
    Case("unknown command", ("upgrad",), "No such command"),
    Case("lock timeout not a number", ("upgrade", "--lock-timeout", "soon"), "--lock-timeout"),
    Case("negative lock timeout", ("upgrade", "--lock-timeout", "-1"), "--lock-timeout"),
    Case("lock timeout nan", ("upgrade", "--lock-timeout", "nan"), "--lock-timeout"),
    Case("lock timeout inf", ("stamp", "--lock-timeout", "inf", "r2"), "--lock-timeout"),
    Case("--rev-id base", ("revision", "-m", "x", "--rev-id", "base"), "'base' is a name Alembic reserves"),
    Case("--rev-id heads for a merge", ("merge", "--rev-id", "heads", "heads"), "Alembic reserves"),
    Case(
        "--rev-id outside the folder",
        ("revision", "-m", "x", "--rev-id", "../escaped"),
        "use only ASCII letters, digits and underscores",
    ),
    Case(
        "--rev-id with SQL in it",
        ("revision", "-m", "x", "--rev-id", "y'); DROP TABLE item; SELECT ('"),
        "use only ASCII letters, digits and underscores",
    ),
    # -- the app ----------------------------------------------------------------------
    Case(
        "app import error", ("upgrade",), "No module named 'not_installed' (app.py, line", _app_import_error
    ),
    Case("models import error", ("upgrade",), "cannot import name 'NoSuchThing'", _models_import_error),
    Case("app raises at import", ("upgrade",), "NameError", _app_raises),
    Case("Migrate without db", ("upgrade",), "never given a database", _no_db_given),
    # -- the database -----------------------------------------------------------------
    Case("unparsable URL", ("upgrade",), "Could not load the app", _url("not a url")),
    Case("unknown dialect", ("upgrade",), "Could not load the app", _url("postgresq://u@localhost/x")),
    Case(
        "unreachable server",
        ("upgrade",),
        "check the host and port",
        _url(f"postgresql+psycopg://someone:{SECRET}@127.0.0.1:9/nowhere?connect_timeout=3"),
    ),
    Case(
        "password in the query string, unreachable server",
        ("upgrade",),
        "check the host and port",
        _url(f"postgresql+psycopg://someone@127.0.0.1:9/nowhere?password={SECRET}&connect_timeout=3"),
    ),
    Case(
        "check on an unreachable server",
        ("check", "--drift"),
        "check the host and port",
        _url(f"postgresql+psycopg://someone@127.0.0.1:9/nowhere?password={SECRET}&connect_timeout=3"),
    ),
    Case(
        "archive --purge on an unreachable server",
        ("archive", "--purge"),
        "check the host and port",
        _url(f"postgresql+psycopg://someone:{SECRET}@127.0.0.1:9/nowhere?connect_timeout=3"),
    ),
    Case(
        "SQLite file in a missing folder",
        ("upgrade",),
        "does not exist",
        _url("sqlite:////nonexistent/dir/app.db"),
    ),
    Case(
        "check on SQLite in a missing folder",
        ("check",),
        "unable to open",
        _url("sqlite:////nonexistent/dir/app.db"),
    ),
    Case(
        "archive on SQLite in a missing folder",
        ("archive",),
        "unable to open",
        _url("sqlite:////nonexistent/dir/app.db"),
    ),
    Case("read-only SQLite file", ("upgrade",), "read-only", _read_only),
    Case(
        "SQLite locked by another process",
        ("upgrade",),
        "database is locked",
        _short_busy_timeout,
        during=_exclusive_sqlite_lock,
    ),
    Case("unknown role with a password", ("upgrade",), "someone_else", postgresql=True),
    Case("missing PostgreSQL database", ("upgrade",), "does not exist", postgresql=True),
    Case("missing PostgreSQL database: check", ("check",), "does not exist", postgresql=True),
    Case("missing PostgreSQL database: archive", ("archive",), "does not exist", postgresql=True),
    Case("--backup on PostgreSQL", ("upgrade", "--backup"), "SQLite only", postgresql=True),
]


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _database_state(project: Project) -> Any:
    return project.schema(), project.rows("item", order_by="id"), project.version()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project at r1 with rows and r2 pending, built once and copied per case."""
    path = tmp_path_factory.mktemp("template") / "project"
    path.mkdir()
    project = Project(path, f"sqlite:///{path / 'app.db'}")
    project.write_app(MODEL)
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, R1)
    write_revision(project.migrations, "r2", "r1", R2)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada'), (2, 'Grace')")
    project.dispose()
    return path


def _postgres_case_url(case: Case, url: str) -> str:
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    if case.name == "unknown role with a password":
        parsed = parsed.set(username="someone_else", password=SECRET)
    elif case.name.startswith("missing PostgreSQL database"):
        parsed = parsed.set(database="no_such_database", password=SECRET)
    return parsed.render_as_string(hide_password=False)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gives_one_line_and_touches_nothing(
    case: Case, template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "project"
    shutil.copytree(template, path)
    project = Project(path, f"sqlite:///{path / 'app.db'}")
    env = case.setup(project) or {}
    pg_project = None
    if case.postgresql:
        request.applymarker(pytest.mark.postgresql)
        postgres_url = request.getfixturevalue("postgres_url")
        env["DATABASE_URL"] = _postgres_case_url(case, postgres_url)
        pg_project = Project(path, postgres_url)
    folder = _folder_hash(project.migrations) if project.migrations.exists() else ""
    database = _database_state(project)

    with case.during(project):
        result = project.flask("db", *case.args, ok=False, env=env, timeout=60)

    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, str(result)
    assert case.expect in errors[0], str(result)
    assert "Traceback" not in result.output, str(result)
    assert SECRET not in result.output
    assert len(errors[0]) < 400, errors[0]
    assert (_folder_hash(project.migrations) if project.migrations.exists() else "") == folder
    assert _database_state(project) == database
    if pg_project is not None:
        assert pg_project.tables() == set()
        pg_project.dispose()
    project.dispose()


def test_the_catalogue_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
