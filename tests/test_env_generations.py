"""The seed's story under every env.py that Flask-Migrate ever generated, and under ours.

Each project is laid out by our ``flask db init -t <folder>`` from the real template of that
Flask-Migrate release (downloaded at test time, see tests/flask_migrate_templates.py), then
runs the whole story through fresh ``flask db`` subprocesses on a history Flask-Evolve writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import ARCHIVE_PREFIX, Project

EMPLOYEE = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {name} = db.Column(db.String(80), unique=True, nullable=False)
{email}{extra}

class {company}(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    clocation = db.Column(db.String(80), unique=False, nullable=False)
"""
EMAIL = "    email = db.Column(db.String(120), unique=True, nullable=False)\n"
AGE = "    age = db.Column(db.Integer, nullable=True)\n"
LEVEL = "    level = db.Column(db.Integer, nullable=False)\n"


def models(*, name: str = "name", email: bool = True, extra: str = "", company: str = "Company") -> str:
    return EMPLOYEE.format(name=name, email=EMAIL if email else "", extra=extra, company=company)


#: (Flask-Migrate release, template); ``None``: Flask-Evolve's own env.py.
#: 1.3.0 is the last env.py that never passes ``configure_args`` to ``context.configure()``;
#: 2.0.0 builds its own engine from the URL (``engine_from_config``), 2.7.0 and 3.1.0 use the
#: app's engine, 2.0 to 4.0.4 pass their own ``process_revision_directives`` next to
#: ``**configure_args``, 4.0.5 and later install theirs in ``configure_args`` when it has none.
GENERATIONS = [None, "1.3.0", "2.0.0", "2.7.0", "3.1.0", "4.0.4", "4.0.7", "4.1.0"]

NO_CONFIGURE_ARGS_WARNING = "does not pass current_app.extensions['migrate'].configure_args"


def init_args(template: Callable[[str, str], Path], release: str | None, name: str) -> list[str]:
    if release is None:
        return ["--multidb"] if name == "flask-multidb" else []
    return ["-t", str(template(release, name))]


#: These env.py files hand the app's URL to configparser unescaped: a '%' in it (the test
#: server's socket folder, a password) fails there, as it did under Flask-Migrate.
UNESCAPED_URL = {"1.3.0", "2.0.0"}


def plain_url(url: str, release: str | None) -> str:
    return url.replace("%2F", "/") if release in UNESCAPED_URL else url


def revisions(project: Project) -> list[Path]:
    return sorted((project.migrations / "versions").glob("*.py"))


def employees(project: Project, *columns: str) -> list[tuple[object, ...]]:
    return [tuple(row[c] for c in columns) for row in project.rows("employee", order_by="id")]


def migrate(project: Project, *args: str, ok: bool = True) -> str:
    """``flask db migrate``; the empty revision, the drop of an archive table and the
    env.py's hook clash are what older env.py files got wrong."""
    result = project.flask("db", "migrate", *args, ok=ok)
    assert "multiple values for keyword argument" not in result.output, result
    assert "Traceback" not in result.output, result
    for path in revisions(project):
        source = path.read_text()
        assert f"drop_table('{ARCHIVE_PREFIX}" not in source, path
    return result.output


@pytest.mark.parametrize("release", GENERATIONS, ids=lambda r: r or "flask-evolve")
def test_the_seed_story_under_each_env_py_generation(
    project: Project, flask_migrate_template: Callable[[str, str], Path], release: str | None
) -> None:
    project.database_url = plain_url(project.database_url, release)
    project.write_app(models())
    project.flask("db", "init", *init_args(flask_migrate_template, release, "flask"))
    if release is not None:
        assert "flask_evolve" not in (project.migrations / "env.py").read_text()

    output = migrate(project, "-m", "employee and company")
    assert "Detected added table 'employee'" in output
    # Said once, and only under the env.py that leaves configure_args out.
    assert output.count(NO_CONFIGURE_ARGS_WARNING) == (1 if release == "1.3.0" else 0), output
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com'), ('Linus', 'linus@example.com')"
    )
    project.execute("INSERT INTO company (cname, clocation) VALUES ('Acme', 'Paris')")

    # Nothing changed: no revision, said exactly once (our hook and the env.py's both ran).
    again = migrate(project, "--exit-code", ok=False)
    assert again.count("No changes in schema detected.") == 1, again
    assert len(revisions(project)) == 1

    # A NOT NULL column on populated rows is refused, then filled.
    project.write_app(models(extra=AGE + LEVEL))
    refused = migrate(project, "-m", "age and level", ok=False)
    assert "--fill employee.level=VALUE" in refused
    assert len(revisions(project)) == 1
    migrate(project, "-m", "age and level", "--fill", "employee.level=1")
    project.flask("db", "upgrade")
    assert employees(project, "name", "age", "level") == [("Ada", None, 1), ("Linus", None, 1)]

    # A dropped column goes into the archive; later autogenerates leave the archive alone.
    project.write_app(models(email=False, extra=AGE + LEVEL))
    migrate(project, "-m", "drop email")
    project.flask("db", "upgrade")
    assert "email" not in project.columns("employee")
    assert any(t.startswith(ARCHIVE_PREFIX) for t in project.tables(archive=True))

    # Renames, detected without hand edits; the rows follow.
    project.write_app(models(name="full_name", email=False, extra=AGE + LEVEL, company="Organization"))
    output = migrate(project, "-m", "renames")
    assert "Rename column employee.name -> full_name" in output, output
    assert "Rename table company -> organization" in output, output
    project.flask("db", "upgrade")
    assert project.tables() == {"alembic_version", "employee", "organization"}
    assert employees(project, "full_name", "level") == [("Ada", 1), ("Linus", 1)]
    assert project.rows("organization") == [{"cid": 1, "cname": "Acme", "clocation": "Paris"}]
    again = migrate(project, "--exit-code", ok=False)
    assert again.count("No changes in schema detected.") == 1, again

    # Down past the renames and the drop: the email comes back with its values.
    project.flask("db", "downgrade", "--", "-2")
    assert project.tables() == {"alembic_version", "employee", "company"}
    assert employees(project, "name", "email", "level") == [
        ("Ada", "ada@example.com", 1),
        ("Linus", "linus@example.com", 1),
    ]
    project.flask("db", "upgrade")
    assert employees(project, "full_name", "level") == [("Ada", 1), ("Linus", 1)]
    assert len(revisions(project)) == 4

    # The safety net works on this folder too.
    # Also where no naming convention names the UNIQUE of the dropped email (old env.py files).
    verify = project.flask("db", "verify")
    assert "verify: OK: 4 revision(s) replayed" in verify.stdout, verify
    # EV102 reports the archived drop of employee.email as data loss on PostgreSQL.
    project.flask("db", "lint", "--ignore", "EV102")
    project.flask("db", "check")
    project.flask("db", "check", "--drift")
    status = project.flask("db", "status")
    assert "the database is up to date" in status.output, status


BIND_URL = 'app.config["SQLALCHEMY_BINDS"] = {"db1": os.environ["BIND_URL"]}'
GROUP = """
class Group(db.Model):
    __bind_key__ = "db1"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
"""
GROUP_LABEL = "    label = db.Column(db.String(40))\n"


@pytest.mark.parametrize(
    "release", [None, "2.0.0", "2.7.0", "3.1.0", "4.0.4", "4.1.0"], ids=lambda r: r or "flask-evolve"
)
def test_multidb_under_each_env_py_generation(
    project: Project,
    second_database_url: str,
    flask_migrate_template: Callable[[str, str], Path],
    release: str | None,
) -> None:
    # Before 4.0 the multidb env.py looked for a bind's models in db.metadata (Flask-SQLAlchemy 2),
    # and 2.7 calls db.get_engine(app, bind): both still find the bind's tables and engine.
    project.database_url = plain_url(project.database_url, release)
    env = {"BIND_URL": plain_url(second_database_url, release)}
    bind = Project(project.path, second_database_url)
    project.write_app(models() + GROUP, config=BIND_URL)
    project.flask("db", "init", *init_args(flask_migrate_template, release, "flask-multidb"), env=env)

    result = project.flask("db", "migrate", "-m", "initial", env=env)
    assert "multiple values for keyword argument" not in result.output, result
    assert "Detected added table 'employee'" in result.output
    assert "Detected added table 'group'" in result.output
    (script,) = revisions(project)
    default_part, bind_part = script.read_text().split("def upgrade_db1():")
    assert "create_table('group'" in bind_part and "create_table('group'" not in default_part
    project.flask("db", "upgrade", env=env)
    assert project.tables() == {"employee", "company", "alembic_version"}
    assert bind.tables() == {"group", "alembic_version"}
    project.execute("INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com')")
    bind.execute("INSERT INTO \"group\" (title) VALUES ('admins')")

    again = project.flask("db", "migrate", "--exit-code", ok=False, env=env)
    assert again.output.count("No changes in schema detected.") == 1, again
    assert len(revisions(project)) == 1

    project.write_app(models(extra=AGE) + GROUP + GROUP_LABEL, config=BIND_URL)
    result = project.flask("db", "migrate", "-m", "age", env=env)
    assert "Detected added column 'employee.age'" in result.output
    assert "Detected added column 'group.label'" in result.output
    assert len(revisions(project)) == 2
    project.flask("db", "upgrade", env=env)
    assert employees(project, "name", "age") == [("Ada", None)]
    assert bind.rows("group") == [{"id": 1, "title": "admins", "label": None}]

    project.flask("db", "downgrade", env=env)
    assert bind.rows("group") == [{"id": 1, "title": "admins"}]
    assert employees(project, "name", "email") == [("Ada", "ada@example.com")]


def test_a_pre_4_multidb_env_py_refuses_one_table_name_in_two_databases(
    project: Project, second_database_url: str, flask_migrate_template: Callable[[str, str], Path]
) -> None:
    # That env.py picks a bind's tables by name out of one metadata: two tables of one name
    # cannot be told apart, so it must stop before writing a script that mixes them up.
    env = {"BIND_URL": second_database_url}
    same_name = GROUP.replace('__bind_key__ = "db1"', '__bind_key__ = "db1"\n    __tablename__ = "employee"')
    project.write_app(models() + same_name, config=BIND_URL)
    project.flask("db", "init", *init_args(flask_migrate_template, "2.7.0", "flask-multidb"), env=env)
    versions = sorted(p.name for p in (project.migrations / "versions").iterdir())

    result = project.flask("db", "migrate", "-m", "initial", ok=False, env=env)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: Table 'employee' is in bind 'default' and in bind 'db1', which this env.py "
        "(Flask-Migrate before 4.0) cannot tell apart: replace it with the env.py that "
        "`flask db init --multidb` writes."
    ), result
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (project.migrations / "versions").iterdir()) == versions


@pytest.mark.parametrize("release", ["1.3.0", "2.0.0"])
def test_a_failed_migration_is_rolled_back_under_an_env_py_that_builds_its_own_engine(
    sqlite_project: Project, flask_migrate_template: Callable[[str, str], Path], release: str
) -> None:
    # These env.py files call engine_from_config(..., poolclass=NullPool) on the app's URL.
    project = sqlite_project
    project.write_app(models())
    project.flask("db", "init", *init_args(flask_migrate_template, release, "flask"))
    migrate(project, "-m", "employee and company")
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com'), ('Linus', 'linus@example.com')"
    )
    schema, version = project.schema(), project.version()
    rows = project.rows("employee", order_by="id")

    # A generated step of several ops (a column added, a table renamed), then rows changed
    # and a statement that fails at its end.
    project.write_app(models(extra=AGE, company="Organization"))
    migrate(project, "-m", "organization")
    (last,) = [p for p in revisions(project) if p.name.endswith("_organization.py")]
    source = last.read_text()
    assert "rename_table" in source and "add_column" in source
    failing = source.replace(
        "\n\ndef downgrade():",
        "    op.execute(\"UPDATE employee SET name = 'changed'\")\n"
        "    op.execute('SELECT * FROM no_such_table')\n\n\ndef downgrade():",
        1,
    )
    assert failing != source
    last.write_text(failing)

    failed = project.flask("db", "upgrade", ok=False)
    assert "rolled back" in failed.stderr, failed
    assert project.schema() == schema
    assert project.version() == version
    assert project.rows("employee", order_by="id") == rows
