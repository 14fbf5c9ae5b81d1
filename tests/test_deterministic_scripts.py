"""The same models and database give byte-identical revision scripts, whatever PYTHONHASHSEED.

Alembic finds some changes by iterating sets (foreign keys, dropped columns, dropped tables), so
their order in its op tree follows the hash seed of the process. Flask-Evolve puts such sibling ops
in a fixed order, so that two developers (or CI and a laptop) get the same script and a reviewer sees
a real diff only when something changed.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic.operations import ops

from flask_evolve.autogen.ordering import order_dropped_tables, order_siblings
from tests.harness import Project

BEFORE = """
class Author(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Tag(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Book(db.Model):
    __table_args__ = (
        db.CheckConstraint("pages > 0", name="pages_positive"),
        db.CheckConstraint("year > 1400", name="year_modern"),
        db.CheckConstraint("price >= 0"),
        db.CheckConstraint("length(isbn) > 3"),
        db.UniqueConstraint("title", "year", name="title_year"),
        db.UniqueConstraint("slug", "year", name="slug_year"),
    )
    id = db.Column(db.Integer, primary_key=True)
    author_id = db.Column(db.Integer, db.ForeignKey("author.id"))
    editor_id = db.Column(db.Integer, db.ForeignKey("author.id"))
    tag_id = db.Column(db.Integer, db.ForeignKey("tag.id"))
    reviewer_id = db.Column(db.Integer)
    translator_id = db.Column(db.Integer)
    isbn = db.Column(db.String(20), unique=True)
    code = db.Column(db.String(20), unique=True)
    slug = db.Column(db.String(20), unique=True)
    title = db.Column(db.String(80), index=True)
    year = db.Column(db.Integer, index=True)
    pages = db.Column(db.Integer, index=True)
    price = db.Column(db.Integer, index=True)
    note = db.Column(db.String(20))
    remark = db.Column(db.Integer)
    blurb = db.Column(db.Text)
    weight = db.Column(db.Numeric(6, 2))


class Shelf(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    label = db.Column(db.String(20), unique=True)


class Box(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    shelf_id = db.Column(db.Integer, db.ForeignKey("shelf.id"))


class Crate(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    box_id = db.Column(db.Integer, db.ForeignKey("box.id"))
    shelf_id = db.Column(db.Integer, db.ForeignKey("shelf.id"))


class Bin(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    size = db.Column(db.Integer, index=True)
"""

# Every foreign key, unique constraint, index and CHECK of ``book`` goes at once, two foreign keys
# come, four columns and four tables (which reference each other) are dropped.
AFTER = """
class Author(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Tag(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Book(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    author_id = db.Column(db.Integer)
    editor_id = db.Column(db.Integer)
    tag_id = db.Column(db.Integer)
    reviewer_id = db.Column(db.Integer, db.ForeignKey("author.id"))
    translator_id = db.Column(db.Integer, db.ForeignKey("author.id"))
    isbn = db.Column(db.String(20))
    code = db.Column(db.String(20))
    slug = db.Column(db.String(20))
    title = db.Column(db.String(80))
    year = db.Column(db.Integer)
    pages = db.Column(db.Integer)
    price = db.Column(db.Integer)
"""

ROWS = [
    "INSERT INTO author (id) VALUES (1), (2)",
    "INSERT INTO tag (id) VALUES (1)",
    "INSERT INTO book (id, author_id, editor_id, tag_id, isbn, code, slug, title, year, pages, price,"
    " note, remark, blurb, weight) VALUES"
    " (1, 1, 2, 1, 'isbn-1', 'c1', 's1', 'Dune', 1965, 412, 10, 'n', 3, 'b', 1.25)",
    "INSERT INTO shelf (id, label) VALUES (1, 'top')",
    "INSERT INTO box (id, shelf_id) VALUES (1, 1)",
    "INSERT INTO crate (id, box_id, shelf_id) VALUES (1, 1, 1)",
    "INSERT INTO bin (id, size) VALUES (1, 3)",
]

#: Seeds under which set iteration orders the foreign keys, columns, tables and indexes differently.
SEEDS = ("0", "1", "12345")


def _migrate(project: Project, seed: str, *args: str) -> tuple[str, str]:
    """The script and the output of ``flask db migrate`` under ``seed``; the script is removed again."""
    result = project.flask("db", "migrate", "-m", "drop many", *args, env={"PYTHONHASHSEED": seed})
    [script] = (project.migrations / "versions").glob("*_drop_many.py")
    text = script.read_text()
    revision = re.search(r"^revision = '(\w+)'$", text, re.MULTILINE)
    assert revision is not None, text
    script.unlink()
    return _without_identity(text, revision[1]), _without_identity(_ours(result.output), revision[1])


def _without_identity(text: str, revision: str) -> str:
    """``text`` without what differs between any two runs: the revision id, the date, timings."""
    text = text.replace(revision, "<rev>")
    text = re.sub(r"\b\d+(\.\d+)?m?s\b", "<time>", text)
    return re.sub(r"^Create Date: .*$", "Create Date: <date>", text, flags=re.MULTILINE)


def _ours(output: str) -> str:
    """Flask-Evolve's lines (notes, risk report, verify); Alembic's own log lines keep Alembic's order."""
    return "\n".join(
        line
        for line in output.splitlines()
        if not line.startswith("INFO  [alembic.") and not line.startswith("Generating ")
    )


def test_migrate_writes_the_same_script_whatever_the_hash_seed(project: Project) -> None:
    project.write_app(BEFORE)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    for statement in ROWS:
        project.execute(statement)
    project.write_app(AFTER)

    [(first_script, first_output), *others] = [_migrate(project, seed) for seed in SEEDS]

    for script, output in others:
        assert script == first_script
        assert output == first_output
    # What is compared is a real migration of everything above, not an empty one.
    upgrade = first_script.split("def downgrade")[0]
    for name in ("'crate'", "'box'", "'shelf'", "'bin'", "'note'", "'weight'", "reviewer_id", "translator_"):
        assert name in upgrade, first_script
    # The script works: the schema loses what the models lost, the rows stay.
    project.write_app(AFTER)
    project.flask("db", "migrate", "-m", "drop many")
    project.flask("db", "upgrade")
    assert project.tables() == {"alembic_version", "author", "tag", "book"}
    assert project.query("SELECT id, author_id, editor_id, tag_id, isbn, title, year FROM book") == [
        (1, 1, 2, 1, "isbn-1", "Dune", 1965)
    ]
    assert "note" not in project.columns("book")


COMPANY = """
class {name}(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(20), unique=True)
    code = db.Column(db.String(20), unique=True)
    slug = db.Column(db.String(20), unique=True)
    a = db.Column(db.Integer, index=True)
    b = db.Column(db.Integer, index=True)
    c = db.Column(db.Integer, index=True)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("{table}.id"))
    boss_id = db.Column(db.Integer, db.ForeignKey("{table}.id"))
    mentor_id = db.Column(db.Integer, db.ForeignKey("{table}.id"))
"""


def test_a_renamed_table_renames_its_indexes_and_constraints_in_one_order(project: Project) -> None:
    """What follows a rename (indexes, uniques, the foreign keys pointing at it) comes in one order."""
    project.write_app(COMPANY.format(name="Company", table="company"))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (id, name, code, a) VALUES (1, 'Acme', 'A', 7)")
    project.execute("INSERT INTO employee (id, company_id, boss_id) VALUES (1, 1, 1)")
    project.write_app(COMPANY.format(name="Organization", table="organization"))

    rename = ("--rename", "company=organization")
    [(first, first_output), *others] = [_migrate(project, seed, *rename) for seed in SEEDS]

    for script, output in others:
        assert script == first
        assert output == first_output
    assert "rename_table('company', 'organization')" in first
    project.flask("db", "migrate", "-m", "drop many", *rename)
    project.flask("db", "upgrade")
    assert project.tables() == {"alembic_version", "organization", "employee"}
    assert project.query("SELECT id, name, code, a FROM organization") == [(1, "Acme", "A", 7)]
    assert project.query("SELECT id, company_id, boss_id FROM employee") == [(1, 1, 1)]


# -- the ordering step on its own ---------------------------------------------------------------


def _fk(table: str, column: str, target: str) -> ops.DropConstraintOp:
    metadata = sa.MetaData()
    sa.Table(target, metadata, sa.Column("id", sa.Integer, primary_key=True))
    source = sa.Table(
        table,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(column, sa.Integer, sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}")),
    )
    [constraint] = source.foreign_key_constraints
    return ops.DropConstraintOp.from_constraint(constraint)


def test_sibling_drops_of_one_kind_come_in_one_order_and_nothing_crosses_another_op() -> None:
    a, b, c = (_fk("book", name, "author") for name in ("a_id", "b_id", "c_id"))
    index = ops.DropIndexOp("ix_book_x", table_name="book")
    x, y = (ops.DropColumnOp("book", name) for name in ("x", "y"))

    assert order_siblings([c, a, b, index, y, x]) == [a, b, c, index, x, y]
    assert order_siblings([b, c, a, index, x, y]) == [a, b, c, index, x, y]
    # A drop of another kind between two foreign-key drops is a boundary: each side is ordered alone.
    assert order_siblings([c, index, b, a]) == [c, index, a, b]


def test_dropped_tables_come_in_one_order_each_before_the_tables_it_references() -> None:
    def dropped(table: str, references: str | None) -> list[ops.MigrateOperation]:
        metadata = sa.MetaData()
        columns: list[sa.Column[int]] = [sa.Column("id", sa.Integer, primary_key=True)]
        if references:
            sa.Table(references, metadata, sa.Column("id", sa.Integer, primary_key=True))
            key = sa.ForeignKey(f"{references}.id", name=f"fk_{table}")
            columns.append(sa.Column("ref", sa.Integer, key))
        reflected = sa.Table(table, metadata, *columns)
        group: list[ops.MigrateOperation] = [ops.DropTableOp.from_table(reflected)]
        if references:
            [constraint] = reflected.foreign_key_constraints
            group.insert(0, ops.ModifyTableOps(table, [ops.DropConstraintOp.from_constraint(constraint)]))
        return group

    created = ops.CreateTableOp("new", [sa.Column("id", sa.Integer, primary_key=True)])
    # shelf <- box <- crate, and bin on its own: names alone would drop box before crate.
    groups = {"shelf": dropped("shelf", None), "box": dropped("box", "shelf")}
    groups |= {"crate": dropped("crate", "box"), "bin": dropped("bin", None)}
    expected = [created, *groups["bin"], *groups["crate"], *groups["box"], *groups["shelf"]]
    for order in (["shelf", "box", "crate", "bin"], ["bin", "box", "shelf", "crate"]):
        tree = ops.UpgradeOps(ops=[created, *(op for name in order for op in groups[name])])
        assert order_dropped_tables(tree.ops) == expected
