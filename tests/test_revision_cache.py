"""The revision-map cache: the same map as Alembic's own reading, and never a stale one.

Each test ages the files it writes (the cache is written only once every file is older than a
couple of seconds), reads the map once to write the cache, changes the folder, and requires the
next reading to see the change.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from flask_evolve.runtime import revision_cache
from tests.harness import Project
from tests.revision_files import write_revision

revision_cache.install()


def age(folder: Path, seconds: float = 60) -> None:
    """Date every file of ``folder`` ``seconds`` in the past, each a little differently."""
    now = time.time()
    for i, path in enumerate(sorted(folder.glob("*.py"))):
        os.utime(path, (now - seconds - i, now - seconds - i))


def chain(migrations: Path, count: int) -> None:
    for i in range(count):
        write_revision(migrations, f"r{i}", f"r{i - 1}" if i else None, f"op.execute('SELECT {i}')")


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    return folder


def script_directory(migrations: Path) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    return ScriptDirectory.from_config(config)


def read_map(migrations: Path) -> dict[str, tuple[object, ...]]:
    """Every revision as (down_revision, branch_labels, dependencies, path, module kind), and the heads."""
    script = script_directory(migrations)
    found: dict[str, tuple[object, ...]] = {
        rev.revision: (
            rev.down_revision, rev.branch_labels, rev.dependencies, str(rev.path), type(rev.module).__name__
        )
        for rev in script.walk_revisions()
    }
    found["heads"] = tuple(sorted(script.get_heads()))
    return found


def cache_file(migrations: Path) -> Path:
    return migrations / "versions" / "__pycache__" / revision_cache.CACHE_NAME


def without_kind(found: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    return {rev: value if rev == "heads" else value[:4] for rev, value in found.items()}


def test_a_second_reading_comes_from_the_cache_and_equals_the_files(migrations: Path) -> None:
    chain(migrations, 5)
    side = write_revision(migrations, "side", "r2", "pass")
    side.write_text(
        side.read_text()
        .replace("branch_labels = None", "branch_labels = ('feature',)")
        .replace("depends_on = None", "depends_on = 'r1'")
    )
    age(migrations / "versions")

    first = read_map(migrations)
    assert cache_file(migrations).exists()
    second = read_map(migrations)

    assert {kind for rev, (*_, kind) in first.items() if rev != "heads"} == {"module"}
    assert {kind for rev, (*_, kind) in second.items() if rev != "heads"} == {"_DeferredModule"}
    assert without_kind(second) == without_kind(first)
    assert second["heads"] == ("r4", "side")
    assert second["side"][:3] == ("r2", {"feature"}, "r1")
    # What the map does not hold is read from the file itself, on demand.
    cached = script_directory(migrations).get_revision("r3")
    assert cached.doc == "r3"
    assert callable(cached.module.upgrade)


@pytest.mark.parametrize("change", ["edit", "edit, same size", "add", "delete", "rename"])
def test_any_change_to_the_folder_gives_a_fresh_map(migrations: Path, change: str) -> None:
    chain(migrations, 4)
    versions = migrations / "versions"
    age(versions)
    read_map(migrations)
    assert cache_file(migrations).exists()

    if change == "edit":
        # r3 now branches off r1: r2 becomes a head too.
        write_revision(migrations, "r3", "r1", "op.execute('SELECT 3')", message="branch off r1")
        expected_heads = ("r2", "r3")
    elif change == "edit, same size":
        path = versions / "r3.py"
        path.write_text(path.read_text().replace("down_revision = 'r2'", "down_revision = 'r1'"))
        expected_heads = ("r2", "r3")
    elif change == "add":
        write_revision(migrations, "r4", "r3", "pass")
        expected_heads = ("r4",)
    elif change == "delete":
        (versions / "r3.py").unlink()
        expected_heads = ("r2",)
    else:
        (versions / "r3.py").rename(versions / "r3.py.disabled")
        expected_heads = ("r2",)
    age(versions, seconds=30)  # a new date, still old enough to be cached again

    after = read_map(migrations)
    assert after["heads"] == expected_heads
    assert {kind for rev, (*_, kind) in after.items() if rev != "heads"} == {"module"}


def test_files_younger_than_the_settle_time_are_never_cached(
    migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour, not 2 s: the files just written stay younger than it however slowly a loaded
    # machine gets from writing them to reading the map.
    monkeypatch.setattr(revision_cache, "SETTLE_SECONDS", 3600.0)
    chain(migrations, 3)
    read_map(migrations)
    assert not cache_file(migrations).exists()


def test_a_folder_with_a_huge_revision_file_is_not_cached(migrations: Path) -> None:
    chain(migrations, 2)
    path = migrations / "versions" / "r1.py"
    path.write_text(path.read_text() + "\n# " + "x" * revision_cache.MAX_FILE_BYTES + "\n")
    age(migrations / "versions")

    assert read_map(migrations)["heads"] == ("r1",)
    assert not cache_file(migrations).exists()


def test_identifiers_that_are_not_literals_are_never_cached(migrations: Path) -> None:
    chain(migrations, 2)
    write_revision(migrations, "r2", None, "pass")
    path = migrations / "versions" / "r2.py"
    path.write_text(path.read_text().replace("down_revision = None", "down_revision = 'r' + str(1)"))
    age(migrations / "versions")

    assert read_map(migrations)["heads"] == ("r2",)
    assert not cache_file(migrations).exists()


def test_an_unreadable_cache_is_a_miss(migrations: Path) -> None:
    chain(migrations, 3)
    age(migrations / "versions")
    read_map(migrations)
    cache_file(migrations).write_text('{"key": ')

    found = read_map(migrations)
    assert found["heads"] == ("r2",)
    assert found["r2"][-1] == "module"


MODELS = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(40))
    size = db.Column(db.Integer)
"""


def test_heads_and_upgrade_through_the_cli_run_from_the_cache(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(MODELS)
    project.flask("db", "init")
    write_revision(
        project.migrations, "r0", None,
        "op.create_table('item', sa.Column('id', sa.Integer(), primary_key=True), "
        "sa.Column('name', sa.String(40)))\nop.execute(\"INSERT INTO item (id, name) VALUES (1, 'a')\")",
    )
    write_revision(project.migrations, "r1", "r0", "op.add_column('item', sa.Column('size', sa.Integer()))")
    age(project.migrations / "versions")

    assert project.flask("db", "heads").stdout.strip() == "r1 (head)"
    assert cache_file(project.migrations).exists()
    write_revision(project.migrations, "r2", "r1", "op.execute('UPDATE item SET size = 7')")
    age(project.migrations / "versions", seconds=30)
    assert project.flask("db", "heads").stdout.strip() == "r2 (head)"

    project.flask("db", "upgrade")
    assert project.flask("db", "current").stdout.strip() == "r2 (head)"
    assert set(project.columns("item")) == {"id", "name", "size"}
    assert project.rows("item") == [{"id": 1, "name": "a", "size": 7}]
