"""What the user types for a new revision (--rev-id, -m) never breaks or escapes the revision file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.harness import Project

MODEL = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
"""
MORE = MODEL + "    size = db.Column(db.Integer)\n"

VICTIM = "CREATE TABLE victim (id INTEGER PRIMARY KEY, note VARCHAR(20))"

#: Each tries to get out of the revision file or the migrations folder, or to be taken for a symbol.
BAD_REV_IDS = [
    ("y'); DROP TABLE victim; SELECT ('", "use only ASCII letters, digits and underscores"),
    ("x' or '1'='1", "use only ASCII letters, digits and underscores"),
    ("../outside", "use only ASCII letters, digits and underscores"),
    ("two\nlines", "use only ASCII letters, digits and underscores"),
    ("base", "is a name Alembic reserves"),
    ("head", "is a name Alembic reserves"),
    ("current", "is a name Alembic reserves"),
    ("a" * 33, "is 33 characters long; the alembic_version table holds at most 32"),
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_a_rev_id_is_checked_before_anything_is_written(project: Project, tmp_path: Path) -> None:
    project.write_app(MODEL)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "items")
    project.flask("db", "upgrade")
    project.execute(VICTIM)
    project.execute("INSERT INTO victim (id, note) VALUES (1, 'keep me')")
    project.write_app(MORE)
    files, schema, version = _files(tmp_path), project.schema(), project.version()

    for rev_id, rule in BAD_REV_IDS:
        for args in (
            ("migrate", "-m", "size", "--rev-id", rev_id),
            ("revision", "-m", "empty", "--rev-id", rev_id),
            ("merge", "-m", "join", "--rev-id", rev_id, "heads"),
        ):
            result = project.flask("db", *args, ok=False)
            assert result.returncode == 2, result
            assert result.stderr.splitlines() == [result.stderr.strip()] and rule in result.stderr, result
            assert "Traceback" not in result.output and "env.py" not in result.output, result
            assert _files(tmp_path) == files, result
            assert project.schema() == schema and project.version() == version
            assert project.rows("victim") == [{"id": 1, "note": "keep me"}]

    project.flask("db", "migrate", "-m", "size", "--rev-id", "add_size_2")
    project.flask("db", "upgrade")
    assert project.version() == ["add_size_2"]
    assert "size" in project.columns("item")


def test_a_rev_id_of_32_characters_is_the_longest_and_upgrades(project: Project) -> None:
    project.write_app(MODEL)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "items")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'kept')")
    project.write_app(MORE)
    longest = "add_size_" + "x" * 23

    project.flask("db", "migrate", "-m", "size", "--rev-id", longest)
    project.flask("db", "upgrade")

    assert len(longest) == 32 and project.version() == [longest]
    assert "size" in project.columns("item")
    assert project.rows("item") == [{"id": 1, "name": "kept", "size": None}]


MESSAGES = [
    'say """hi""" to the "team"',
    "a backslash \\ and \\N{LATIN SMALL LETTER A} and \\x41",
    'ends with a "quote"',
    "two lines\nthe second one",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_any_message_is_the_revision_s_docstring(sqlite_project: Project, message: str) -> None:
    project = sqlite_project
    project.write_app(MODEL)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", message)
    project.flask("db", "upgrade")
    project.write_app(MORE)
    project.flask("db", "migrate", "-m", message)
    project.flask("db", "revision", "-m", message)
    written = sorted((project.migrations / "versions").glob("*.py"))
    assert len(written) == 3
    for path in written:
        docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        assert docstring is not None and docstring.startswith(message + "\n\nRevision ID: "), path
    project.flask("db", "upgrade")
    project.execute("INSERT INTO item (id, name, size) VALUES (1, 'Ada', 3)")
    assert project.flask("db", "history").stdout.count(message.splitlines()[0]) == 3
    project.flask("db", "downgrade")
    assert project.rows("item") == [{"id": 1, "name": "Ada", "size": 3}]


def test_an_ordinary_message_is_written_as_flask_migrate_writes_it(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(MODEL)
    project.flask("db", "init")
    project.flask("db", "revision", "-m", "add the item's 'name' (it's 50 chars)", "--rev-id", "r1")
    script = (project.migrations / "versions" / "r1_add_the_item_s_name_it_s_50_chars.py").read_text()
    assert script.startswith("\"\"\"add the item's 'name' (it's 50 chars)\n\nRevision ID: r1\nRevises: \n")


def test_a_project_s_own_template_gets_the_message_escaped_too(sqlite_project: Project) -> None:
    """A one-line docstring (\"\"\"${message}\"\"\") in a template of the project's own."""
    project = sqlite_project
    project.write_app(MODEL)
    project.flask("db", "init")
    template = project.migrations / "script.py.mako"
    source = template.read_text()
    assert source.startswith('"""${message}\n')
    template.write_text('"""${message}"""\n' + source.split('"""\n', 1)[1])
    project.flask("db", "revision", "-m", 'the "first"', "--rev-id", "r1")
    script = (project.migrations / "versions" / "r1_the_first.py").read_text()
    assert ast.get_docstring(ast.parse(script)) == 'the "first"'
    assert project.flask("db", "history").stdout.strip() == '<base> -> r1 (head), the "first"'
