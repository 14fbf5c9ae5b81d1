"""CHECK constraints through the real CLI: unnamed ones an older project left in the database change, go."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.test_renames import create_all_schema, reference_url, scripts  # noqa: F401 (a fixture)

OLD = """
class Stock(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    qty = db.Column(db.Integer, db.CheckConstraint('qty > 0'))
    sku = db.Column(db.String(20))
    size = db.Column(db.String(2))
    __table_args__ = (
        db.CheckConstraint("sku <> ''"),
        db.CheckConstraint("size IN ('S', 'M', 'L')"),
    )
"""

NEW = """
class Stock(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    qty = db.Column(db.Integer, db.CheckConstraint('qty >= 0'))
    sku = db.Column(db.String(20))
    size = db.Column(db.String(2))
    price = db.Column(db.Integer, db.CheckConstraint('price > 0'))
    __table_args__ = (db.CheckConstraint("size IN ('S', 'M', 'L')"),)
"""

ROWS = [(1, 5, "a", "S"), (2, 1, "b", "L")]


def _rows(project: Project) -> list[tuple[object, ...]]:
    return project.query("SELECT id, qty, sku, size FROM stock ORDER BY id")


def _older_project(project: Project) -> None:
    """Tables made without a naming convention: the database holds the CHECKs unnamed
    (PostgreSQL then names them itself: stock_qty_check, stock_sku_check, stock_size_check)."""
    project.write_app(OLD, migrate_args='naming_convention="off"')
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "old")
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO stock (id, qty, sku, size) VALUES (:i, :q, :s, :z)",
        [dict(zip("iqsz", row, strict=True)) for row in ROWS],
    )


def test_unnamed_checks_of_an_older_project_are_changed_dropped_and_added(
    project: Project, reference_url: str  # noqa: F811
) -> None:
    _older_project(project)
    old_schema = project.schema()
    assert len(old_schema["stock"]["checks"]) == 3  # the column-level CHECK was created too
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again

    project.write_app(NEW, migrate_args='naming_convention="off"')
    migrate = project.flask("db", "migrate", "-m", "checks")
    script = scripts(project)[-1].read_text()
    upgrade = script.split("def downgrade")[0]
    assert "constraint(None" not in script
    if project.dialect == "postgresql":
        # Dropped by the names PostgreSQL gave them (op.f(): as they are, whatever the naming
        # convention); the unchanged one is left alone.
        assert re.search(r"drop_constraint\(batch_op\.f\('stock_qty_check'\)", upgrade), script
        assert re.search(r"drop_constraint\(batch_op\.f\('stock_sku_check'\)", upgrade), script
        assert "stock_size_check" not in script
    assert "Detected added check constraint 'qty >= 0'" in migrate.stderr

    project.flask("db", "upgrade")
    new_schema = project.schema()
    assert new_schema == create_all_schema(project, reference_url)[0]
    assert _rows(project) == ROWS
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    # The database enforces the new conditions, and no longer the dropped one.
    with pytest.raises(sa.exc.IntegrityError):
        project.execute("UPDATE stock SET qty = -1 WHERE id = 2")
    project.execute("UPDATE stock SET qty = 0, sku = '' WHERE id = 2")
    project.execute("UPDATE stock SET qty = 1, sku = 'b' WHERE id = 2")

    project.flask("db", "downgrade")
    assert project.schema() == old_schema
    assert _rows(project) == ROWS
    project.flask("db", "upgrade")
    assert project.schema() == new_schema
    assert _rows(project) == ROWS


NAMED_BY_CONVENTION = """
class Stock(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    qty = db.Column(db.Integer, db.CheckConstraint('qty > 0'))
    sku = db.Column(db.String(20))
    __table_args__ = (db.CheckConstraint("sku <> ''"),)
"""


def test_unnamed_checks_named_by_the_convention_are_no_change(project: Project) -> None:
    # A new project names the models' unnamed CHECKs (ck_stock_<hash>); the models still
    # say nothing of a name, which must not read as "dropped" on the next migrate.
    project.write_app(NAMED_BY_CONVENTION)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    assert re.search(r"CheckConstraint\('qty > 0', name='ck_stock_\w+'\)", scripts(project)[-1].read_text())
    project.flask("db", "upgrade")
    assert len(project.schema()["stock"]["checks"]) == 2
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    assert "check constraint" not in again.stderr


APP_CONVENTION = 'metadata=sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})'
SA = "import sqlalchemy as sa"
WITH_QTY = """
class Stock(db.Model):
    __tablename__ = "{table}"
    __table_args__ = (
        db.CheckConstraint("qty >= 0", name="qty_check"),
        {{"info": {{"renamed_from": "stock"}}}},
    )
    id = db.Column(db.Integer, primary_key=True)
    qty = db.Column(db.Integer)
    sku = db.Column(db.String(20))
"""
WITHOUT_QTY = """
class Stock(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    sku = db.Column(db.String(20))
"""


def _app_convention_project(project: Project) -> None:
    project.write_app(WITH_QTY.format(table="stock"), db_args=APP_CONVENTION, imports=SA)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO stock (id, qty, sku) VALUES (1, 5, 'a'), (2, 0, 'b')")


def test_a_check_named_by_the_apps_convention_drops_under_its_database_name(project: Project) -> None:
    # The app's own convention turns name="qty_check" into ck_stock_qty_check; dropping it must not
    # apply the convention again (PostgreSQL: constraint "ck_stock_ck_stock_qty_check" does not exist).
    _app_convention_project(project)
    project.write_app(WITHOUT_QTY, db_args=APP_CONVENTION, imports=SA)
    project.flask("db", "migrate", "-m", "drop qty")
    project.flask("db", "upgrade")
    assert project.schema()["stock"]["checks"] == []
    assert project.query("SELECT id, sku FROM stock ORDER BY id") == [(1, "a"), (2, "b")]
    project.flask("db", "downgrade")
    assert project.schema()["stock"]["checks"] == ["qty >= 0"]
    assert project.query("SELECT id, qty, sku FROM stock ORDER BY id") == [(1, 5, "a"), (2, 0, "b")]


def test_a_renamed_table_takes_its_check_names_along(
    project: Project, reference_url: str  # noqa: F811
) -> None:
    # ck_stock_qty_check must become ck_item_qty_check, as create_all() names it, in the same migration.
    _app_convention_project(project)
    project.write_app(WITH_QTY.format(table="item"), db_args=APP_CONVENTION, imports=SA)
    project.flask("db", "migrate", "-m", "rename")
    project.flask("db", "upgrade")
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    schema, _ = create_all_schema(project, reference_url)
    assert project.schema() == schema
    checks = sa.inspect(project.engine).get_check_constraints("item")
    assert [c["name"] for c in checks] == ["ck_item_qty_check"]
    assert project.query("SELECT id, qty, sku FROM item ORDER BY id") == [(1, 5, "a"), (2, 0, "b")]
    project.flask("db", "downgrade")
    assert project.query("SELECT id, qty, sku FROM stock ORDER BY id") == [(1, 5, "a"), (2, 0, "b")]
    project.flask("db", "upgrade")
    assert project.query("SELECT id, qty, sku FROM item ORDER BY id") == [(1, 5, "a"), (2, 0, "b")]


NAMED_BY_COLUMN = """
class Stock(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {column} = db.Column(db.Integer, info={info})
    __table_args__ = (db.CheckConstraint('"{column}" >= 0', name="{column}_check"),)
"""


def test_a_renamed_column_takes_its_check_along_both_ways(
    project: Project, reference_url: str  # noqa: F811
) -> None:
    # The CHECK's condition and its name (ck_stock_qty_check) name the column: the old one must go
    # before the rename, the new one come after it, and the downgrade the other way round.
    def models(column: str, info: str = "{}") -> None:
        project.write_app(
            NAMED_BY_COLUMN.format(column=column, info=info), db_args=APP_CONVENTION, imports=SA
        )

    models("qty")
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO stock (id, qty) VALUES (1, 5), (2, 0)")
    old_schema = project.schema()

    models("amount", '{"renamed_from": "qty"}')
    project.flask("db", "migrate", "-m", "rename")
    project.flask("db", "upgrade")
    assert project.schema() == create_all_schema(project, reference_url)[0]
    checks = sa.inspect(project.engine).get_check_constraints("stock")
    assert [c["name"] for c in checks] == ["ck_stock_amount_check"]
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    assert project.query("SELECT id, amount FROM stock ORDER BY id") == [(1, 5), (2, 0)]

    project.flask("db", "downgrade")
    assert project.schema() == old_schema
    assert project.query("SELECT id, qty FROM stock ORDER BY id") == [(1, 5), (2, 0)]
    project.flask("db", "upgrade")
    assert project.query("SELECT id, amount FROM stock ORDER BY id") == [(1, 5), (2, 0)]
