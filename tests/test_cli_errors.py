"""Mistakes get one `Error:` line saying what to run next, a non-zero exit, no traceback, nothing changed."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Project, Result

USER = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
"""


def one_line_error(result: Result, expected: str) -> str:
    assert result.returncode != 0, str(result)
    assert "Traceback" not in result.output, str(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, str(result)
    assert expected in errors[0], str(result)
    return errors[0]


def folder_state(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def migrated_project(project: Project) -> None:
    project.write_app(USER)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")


def test_migrate_without_a_db_says_so(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER, migrate_args="").write_text(
        (project.path / "app.py").read_text().replace("Migrate(app, db)", "Migrate(app)")
    )
    expected = (
        "Error: Migrate was never given a database: use Migrate(app, db) or call migrate.init_app(app, db)."
    )
    for command in (["init"], ["upgrade"], ["migrate"]):
        assert one_line_error(project.flask("db", *command, ok=False), "never given a database") == expected
    assert not project.migrations.exists()
    # Commands that need no database still work.
    assert "flask-multidb" in project.flask("db", "list-templates").stdout


def test_missing_migrations_folder(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER)
    for command in (["upgrade"], ["migrate"], ["history"]):
        one_line_error(
            project.flask("db", *command, ok=False),
            "Error: No migrations folder at 'migrations': run `flask db init` to create it, "
            "or pass -d/--directory.",
        )
    one_line_error(
        project.flask("db", "-d", "elsewhere", "upgrade", ok=False), "No migrations folder at 'elsewhere'"
    )
    assert not project.migrations.exists() and "user" not in project.tables()


def test_init_over_an_existing_folder(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER)
    project.flask("db", "init")
    before = folder_state(project.migrations)
    one_line_error(project.flask("db", "init", ok=False), "already exists")
    assert folder_state(project.migrations) == before


def test_unknown_revision_arguments(sqlite_project: Project) -> None:
    project = sqlite_project
    migrated_project(project)
    before = folder_state(project.migrations)
    for command in (["upgrade", "nope"], ["downgrade", "nope"], ["show", "nope"]):
        one_line_error(
            project.flask("db", *command, ok=False),
            "Error: No revision 'nope' in 'migrations': `flask db history` lists the revisions.",
        )
    assert project.version() == ["r1"] and project.rows("user") == [{"id": 1, "name": "ada"}]
    assert folder_state(project.migrations) == before


def test_multiple_heads(sqlite_project: Project) -> None:
    project = sqlite_project
    migrated_project(project)
    project.flask("db", "revision", "-m", "left", "--rev-id", "left")
    project.flask("db", "revision", "-m", "right", "--head", "r1", "--splice", "--rev-id", "right")
    before = folder_state(project.migrations)
    for command in (["upgrade"], ["revision", "-m", "x"]):
        one_line_error(
            project.flask("db", *command, ok=False),
            "Error: 'migrations' has more than one head revision: run `flask db merge heads` to join them",
        )
    assert project.version() == ["r1"]
    assert folder_state(project.migrations) == before

    project.flask("db", "upgrade", "left")
    one_line_error(
        project.flask("db", "migrate", ok=False),
        "Error: 'migrations' has 2 head revisions and the database is not at all of them: "
        "run `flask db merge heads`, then `flask db upgrade`, then try again.",
    )
    assert project.version() == ["left"]
    assert folder_state(project.migrations) == before
    project.flask("db", "upgrade", "heads")
    assert project.version() == ["left", "right"]


def test_database_at_a_revision_the_folder_does_not_know(project: Project) -> None:
    migrated_project(project)
    project.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
    before = folder_state(project.migrations)
    for command in (["upgrade"], ["current"], ["migrate"]):
        one_line_error(
            project.flask("db", *command, ok=False),
            "Error: The database is at revision 'f00dcafe', which 'migrations' does not contain: "
            "restore that revision file, or run `flask db stamp --purge head`",
        )
    assert project.version() == ["f00dcafe"] and project.rows("user") == [{"id": 1, "name": "ada"}]
    assert folder_state(project.migrations) == before

    project.flask("db", "stamp", "--purge", "head")
    assert project.version() == ["r1"]


def test_migrate_with_no_changes(project: Project) -> None:
    migrated_project(project)
    quiet = project.flask("db", "migrate")
    assert "No changes in schema detected." in quiet.stderr
    one_line_error(
        project.flask("db", "migrate", "--exit-code", ok=False),
        "Error: No changes in schema detected: no revision was written.",
    )
    assert [p.name for p in (project.migrations / "versions").glob("*.py")] == ["r1_initial.py"]


def test_type_change_is_reported_as_flask_migrate_reports_it(sqlite_project: Project) -> None:
    # Flask-Migrate's own suite greps stderr for exactly this Alembic line.
    project = sqlite_project
    project.write_app(USER)
    project.flask("db", "init")
    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    project.write_app(USER.replace("db.String(128)", "db.String(10)"))
    changed = project.flask("db", "migrate")
    assert "Detected type change from VARCHAR(length=128) to String(length=10)" in changed.stderr
