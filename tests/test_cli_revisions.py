"""Writing and inspecting revisions through `flask db`: init, list-templates, revision, migrate, edit, merge,
show, history, heads, branches."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.harness import Project

USER = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
{extra}
"""
EMAIL = "    email = db.Column(db.String(120))"

# A second version location and revision_environment, set by a @migrate.configure callback.
MORE_VERSIONS = """
@migrate.configure
def more_versions(config):
    here = config.get_main_option("script_location")
    config.set_main_option("version_locations", f"{here}/versions {here}/more_versions")
    config.set_main_option("revision_environment", "true")
    return config
"""


def versions(project: Project, folder: str = "versions") -> list[str]:
    return sorted(p.name for p in (project.migrations / folder).glob("*.py"))


def test_init_writes_the_chosen_template(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))

    listing = project.flask("db", "list-templates").stdout
    for template in ("flask", "flask-multidb", "aioflask", "aioflask-multidb"):
        assert f"\n{template} - " in listing

    project.flask("db", "init", "--package")
    assert (project.migrations / "__init__.py").exists()
    assert (project.migrations / "versions" / "__init__.py").exists()
    env_py = (project.migrations / "env.py").read_text()
    assert "run_migrations()" in env_py and len(env_py.splitlines()) <= 5
    assert "\n[loggers]" not in (project.migrations / "alembic.ini").read_text()

    project.flask("db", "init", "-d", "multi", "--multidb")
    assert "run_migrations(multidb=True)" in (project.path / "multi" / "env.py").read_text()
    assert (
        (project.path / "multi" / "README").read_text().startswith("Multi-database configuration for Flask")
    )
    assert not (project.path / "multi" / "__init__.py").exists()

    project.flask("db", "init", "--directory", "aio", "--template", "aioflask")
    assert (
        (project.path / "aio" / "README").read_text().startswith("Single-database configuration for aioflask")
    )

    # A template name or path is a usage error, nothing is created.
    missing = project.flask("db", "init", "-d", "none", "-t", "no-such-template", ok=False)
    assert missing.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in missing.stderr
    assert not (project.path / "none").exists()


def test_init_with_a_custom_template_folder(sqlite_project: Project, tmp_path: Path) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    template = project.path / "my_template"
    template.mkdir()
    (template / "README").write_text("My template.\n")
    (template / "alembic.ini.mako").write_text("# my template\n[alembic]\n")
    (template / "script.py.mako").write_text(
        (Path(__file__).parent / "fixtures" / "flask_migrate_4" / "flask" / "script.py.mako").read_text()
    )
    (template / "env.py").write_text(
        "# my template\nfrom flask_evolve.environment import run_migrations\n\nrun_migrations()\n"
    )

    project.flask("db", "init", "-t", "./my_template")
    assert (project.migrations / "env.py").read_text().startswith("# my template")
    assert (project.migrations / "alembic.ini").read_text().startswith("# my template")

    project.flask("db", "init", "-d", "absolute", "-t", str(template))
    assert (project.path / "absolute" / "README").read_text() == "My template.\n"

    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    assert "user" in project.tables()


def test_revision_options(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""), imports="", config="")
    (project.path / "app.py").write_text((project.path / "app.py").read_text() + MORE_VERSIONS)
    project.flask("db", "init")

    project.flask(
        "db", "revision", "-m", "empty one", "--rev-id", "aaa", "--version-path", "migrations/versions"
    )
    assert versions(project) == ["aaa_empty_one.py"]
    assert "op." not in (project.migrations / "versions" / "aaa_empty_one.py").read_text()
    project.flask("db", "upgrade")

    auto = project.flask("db", "revision", "--autogenerate", "-m", "models", "--rev-id", "bbb")
    assert "Detected added table 'user'" in auto.stderr
    assert "op.create_table('user'" in (project.migrations / "versions" / "bbb_models.py").read_text()

    # A second branch from base, labelled, in the second version location.
    project.flask(
        "db",
        "revision",
        "-m",
        "feature",
        "--head",
        "base",
        "--branch-label",
        "feature",
        "--rev-id",
        "ccc",
        "--version-path",
        str(project.migrations / "more_versions"),
    )
    assert versions(project, "more_versions") == ["ccc_feature.py"]
    assert (
        "branch_labels = ('feature',)"
        in (project.migrations / "more_versions" / "ccc_feature.py").read_text()
    )

    # Basing a revision on a non-head needs --splice.
    refused = project.flask("db", "revision", "-m", "spliced", "--head", "aaa", "--rev-id", "ddd", ok=False)
    assert "Error: " in refused.stderr and "--splice" in refused.stderr and "Traceback" not in refused.stderr
    project.flask("db", "revision", "-m", "spliced", "--head", "aaa", "--splice", "--rev-id", "ddd")

    heads = project.flask("db", "heads").stdout
    assert {line.split()[0] for line in heads.splitlines()} == {"bbb", "ccc", "ddd"}
    project.flask("db", "revision", "-m", "on feature", "--head", "feature@head", "--rev-id", "eee")
    assert "ccc" not in project.flask("db", "heads").stdout

    # --sql with a revision_environment runs env.py offline: no database touched.
    project.flask("db", "revision", "--sql", "-m", "offline", "--rev-id", "fff", "--head", "bbb")
    assert "fff_offline.py" in versions(project)
    assert project.version() == ["aaa"] and "user" not in project.tables()


def test_migrate_options(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "one", "--branch-label", "main")
    assert versions(project) == ["one_initial.py"]
    assert "branch_labels = ('main',)" in (project.migrations / "versions" / "one_initial.py").read_text()
    project.flask("db", "upgrade")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")

    project.write_app(USER.format(extra=EMAIL))
    project.flask("db", "migrate", "-m", "email", "--rev-id", "two", "--head", "main@head", "--exit-code")
    assert (
        "batch_op.add_column(sa.Column('email'"
        in (project.migrations / "versions" / "two_email.py").read_text()
    )

    refused = project.flask("db", "migrate", "--sql", ok=False)
    assert "Error: Using --sql with --autogenerate does not make any sense" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert versions(project) == ["one_initial.py", "two_email.py"]
    assert project.rows("user") == [{"id": 1, "name": "ada"}]


def test_edit_opens_the_revision_in_editor(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    editor = project.path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "# edited by $(basename "$1")" >> "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    env = {"EDITOR": str(editor)}
    project.flask("db", "init")
    project.flask("db", "revision", "-m", "first", "--rev-id", "r1")
    project.flask("db", "revision", "-m", "second", "--rev-id", "r2")

    project.flask("db", "edit", env=env)
    assert (
        (project.migrations / "versions" / "r2_second.py").read_text().endswith("# edited by r2_second.py\n")
    )
    project.flask("db", "edit", "r1", env=env)
    assert (project.migrations / "versions" / "r1_first.py").read_text().endswith("# edited by r1_first.py\n")


def test_merge_joins_two_heads(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "base1")
    project.flask("db", "revision", "-m", "left", "--rev-id", "left")
    project.flask("db", "revision", "-m", "right", "--head", "base1", "--splice", "--rev-id", "right")
    project.flask("db", "upgrade", "heads")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    assert project.version() == ["left", "right"]

    project.flask(
        "db", "merge", "-m", "join", "--rev-id", "joined", "--branch-label", "trunk", "left", "right"
    )
    merged = (project.migrations / "versions" / "joined_join.py").read_text()
    assert "down_revision = ('left', 'right')" in merged
    assert project.flask("db", "heads").stdout.split()[0] == "joined"
    project.flask("db", "upgrade")
    assert project.version() == ["joined"]
    assert project.rows("user") == [{"id": 1, "name": "ada"}]

    branches = project.flask("db", "branches", "-v").stdout
    assert "Rev: base1 (branchpoint)" in branches and "Branches into: " in branches


def test_show_history_heads_and_current(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    project.flask("db", "revision", "-m", "second", "--rev-id", "r2")
    project.flask("db", "revision", "-m", "third", "--rev-id", "r3")
    # r3 also depends on a revision of another branch.
    project.flask(
        "db", "revision", "-m", "other", "--head", "base", "--branch-label", "other", "--rev-id", "o1"
    )
    third = project.migrations / "versions" / "r3_third.py"
    third.write_text(third.read_text().replace("depends_on = None", "depends_on = 'o1'"))
    project.flask("db", "upgrade", "r2")

    assert "Rev: r2" in project.flask("db", "show", "r2").stdout
    assert "Rev: r3 (head)" in project.flask("db", "show", "r3").stdout

    assert project.flask("db", "history").stdout.splitlines() == [
        "r2 (o1) -> r3 (head), third",
        "r1 -> r2, second",
        "<base> -> r1, initial",
        "<base> -> o1 (other) (effective head), other",
    ]
    ranged = project.flask("db", "history", "-r", "r1:r2").stdout
    assert "r1 -> r2" in ranged and "r3" not in ranged
    assert "Path: " in project.flask("db", "history", "--rev-range", "r2:r2", "-v").stdout
    assert "r1 -> r2 (current)" in project.flask("db", "history", "-i").stdout

    heads = project.flask("db", "heads", "-v").stdout
    assert "Rev: r3 (head)" in heads and "Also depends on: o1" in heads
    resolved = project.flask("db", "heads", "--resolve-dependencies").stdout
    assert resolved.split() == ["r3", "(head)"]

    assert project.flask("db", "current").stdout.strip() == "r2"
    verbose = project.flask("db", "current", "-v").stdout
    assert "Current revision(s) for " in verbose and "Rev: r2" in verbose


def test_revision_and_directory_options_reach_env_py_even_with_dash_d(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(USER.format(extra=""))
    project.flask("db", "-d", "elsewhere", "init")
    project.flask("db", "-d", "elsewhere", "migrate", "-m", "initial")
    project.flask("db", "upgrade", "-d", "elsewhere")
    [script] = (project.path / "elsewhere" / "versions").glob("*.py")
    assert project.flask("db", "current", "-d", "elsewhere").stdout.split()[0] in script.name
    assert not project.migrations.exists()
