"""All-or-nothing migrations: a failure anywhere leaves schema, rows and version as before that migration."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.revision_files import use_flask_migrate_env, write_revision

CREATE_ITEM = """
op.create_table(
    "item",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)
"""

# Several DDL statements, a table rebuild (batch mode, recreate on SQLite), a data
# update, and only then a statement that fails.
FAILING_SECOND = """
op.add_column("item", sa.Column("price", sa.Integer, nullable=True))
op.create_table("tag", sa.Column("id", sa.Integer, primary_key=True))
op.create_index("ix_item_name", "item", ["name"])
with op.batch_alter_table("item", recreate="always") as batch:
    batch.alter_column("name", type_=sa.String(120), existing_nullable=False)
op.execute("UPDATE item SET price = 10")
{failure}
"""
FAILURE = 'op.execute("INSERT INTO item (id, name) VALUES (3, NULL)")'


def _snapshot(project: Project) -> tuple[object, ...]:
    return project.schema(), project.rows("item", order_by="id"), project.version()


def _two_step_project(project: Project, *, flask_migrate_env: bool = False) -> None:
    project.write_app("")
    project.flask("db", "init")
    if flask_migrate_env:
        use_flask_migrate_env(project.migrations)
    write_revision(project.migrations, "r1", None, CREATE_ITEM)
    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=FAILURE))
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada'), (2, 'Grace')")


@pytest.mark.parametrize("env", ["flask-evolve env.py", "Flask-Migrate 4 env.py"])
def test_a_failing_migration_leaves_the_database_as_before_it(project: Project, env: str) -> None:
    _two_step_project(project, flask_migrate_env=env.startswith("Flask-Migrate"))
    before = _snapshot(project)

    failed = project.flask("db", "upgrade", ok=False)

    assert "Traceback" not in failed.output
    assert _snapshot(project) == before
    assert not any(t.startswith("_alembic_tmp") for t in project.tables())

    # The author fixes the migration; the retry applies all of it.
    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=""))
    project.flask("db", "upgrade")
    assert project.version() == ["r2"]
    assert {"price", "name", "id"} == set(project.columns("item"))
    assert "tag" in project.tables()
    assert project.rows("item", order_by="id") == [
        {"id": 1, "name": "Ada", "price": 10},
        {"id": 2, "name": "Grace", "price": 10},
    ]


def test_each_migration_commits_on_its_own_by_default(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_ITEM)
    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=FAILURE))

    project.flask("db", "upgrade", ok=False)
    assert project.version() == ["r1"]
    assert set(project.columns("item")) == {"id", "name"}
    assert "tag" not in project.tables()


def test_single_transaction_rolls_back_the_whole_run(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_ITEM)
    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=FAILURE))

    project.flask("db", "upgrade", "--single-transaction", ok=False)
    assert project.version() == []
    assert "item" not in project.tables()


def test_a_failing_downgrade_leaves_the_database_as_before_it(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_ITEM, 'op.drop_table("item")')
    write_revision(
        project.migrations,
        "r2",
        "r1",
        'op.add_column("item", sa.Column("price", sa.Integer))',
        """
        with op.batch_alter_table("item") as batch:
            batch.drop_column("price")
        op.execute("SELECT * FROM no_such_table")
        """,
    )
    project.flask("db", "upgrade")
    project.execute("INSERT INTO item (id, name, price) VALUES (1, 'Ada', 5)")
    before = _snapshot(project)

    project.flask("db", "downgrade", "base", ok=False)
    assert _snapshot(project) == before


FK_APP_CONFIG = """
from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _foreign_keys_on(dbapi_connection, record):
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
"""

PARENT_CHILD = """
op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
op.create_table(
    "child",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id"), nullable=False),
)
"""


def test_sqlite_foreign_keys_are_checked_before_commit_and_rebuilds_keep_children(
    sqlite_project: Project,
) -> None:
    project = sqlite_project
    project.write_app("", config=FK_APP_CONFIG)
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, PARENT_CHILD)
    # Rebuilding the referenced table drops it while children point at it:
    # only possible with enforcement off inside the transaction.
    write_revision(
        project.migrations,
        "r2",
        "r1",
        """
        with op.batch_alter_table("parent", recreate="always") as batch:
            batch.alter_column("name", type_=sa.String(80))
        """,
    )
    write_revision(project.migrations, "r3", "r2", 'op.execute("DELETE FROM parent WHERE id = 1")')
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO parent (id, name) VALUES (1, 'p')")
    project.execute("INSERT INTO child (id, parent_id) VALUES (1, 1)")

    project.flask("db", "upgrade", "r2")
    assert project.rows("child") == [{"id": 1, "parent_id": 1}]

    failed = project.flask("db", "upgrade", ok=False)
    assert "violating foreign keys (child → parent)" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert project.version() == ["r2"]
    assert project.rows("parent") == [{"id": 1, "name": "p"}]


def test_autocommit_block_runs_outside_the_transaction_and_is_reported(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_ITEM)
    if project.dialect == "postgresql":
        outside = 'op.create_index("ix_item_name", "item", ["name"], postgresql_concurrently=True)'
    else:
        outside = 'op.execute("VACUUM")'
    write_revision(
        project.migrations,
        "r2",
        "r1",
        f"""
        op.add_column("item", sa.Column("price", sa.Integer))
        with op.get_context().autocommit_block():
            {outside}
        op.execute("UPDATE item SET price = 1")
        """,
    )
    result = project.flask("db", "upgrade")
    assert "outside a transaction (autocommit_block)" in result.stderr
    assert project.version() == ["r2"]
    if project.dialect == "postgresql":
        valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_item_name'::regclass"
        assert project.query(valid) == [(True,)]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sqlite3's autocommit attribute is new in Python 3.12")
@pytest.mark.parametrize("autocommit", [True, False])
def test_python_312_autocommit_connections_get_real_transactions_too(
    sqlite_project: Project, autocommit: bool
) -> None:
    project = sqlite_project
    options = f'{{"connect_args": {{"autocommit": {autocommit}}}}}'
    project.write_app("", config=f'app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {options}')
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_ITEM)
    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=FAILURE))
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada')")
    before = _snapshot(project)

    project.flask("db", "upgrade", ok=False)
    assert _snapshot(project) == before

    write_revision(project.migrations, "r2", "r1", FAILING_SECOND.format(failure=""))
    project.flask("db", "upgrade")
    assert project.version() == ["r2"]


CREATE_PRODUCT = """
op.create_table(
    "product",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(20), nullable=False),
)
"""
ADD_STOCK = 'op.add_column("product", sa.Column("stock", sa.Integer))'
# What `flask db migrate` writes for a type change that could lose values.
CODE_TO_INTEGER = """
op.ensure_lossless_type_change("product", "code", "INTEGER")
with op.batch_alter_table("product") as batch:
    batch.alter_column("code", type_=sa.Integer(), existing_nullable=False, postgresql_using="code::integer")
"""


def _three_step_project(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE_PRODUCT)
    write_revision(project.migrations, "r2", "r1", ADD_STOCK, 'op.drop_column("product", "stock")')
    write_revision(project.migrations, "r3", "r2", CODE_TO_INTEGER)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO product (id, code) VALUES (1, '42'), (2, 'A1')")


def _error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, result
    return errors[0]


def test_an_upgrade_refused_after_earlier_steps_committed_says_where_the_database_is_now(
    project: Project,
) -> None:
    _three_step_project(project)

    stopped = project.flask("db", "upgrade", ok=False)

    error = _error_line(stopped)
    assert "cannot change product.code to INTEGER" in error and "A1" in error, stopped
    assert "nothing was changed" not in error.lower(), stopped
    assert "the database is now at r2 (it was at r1)" in error, stopped
    assert "`flask db downgrade r1` takes it back" in error, stopped
    # r2 committed on its own; r3 refused before changing anything.
    assert project.version() == ["r2"]
    assert isinstance(project.columns("product")["code"]["type"], sa.String)
    assert set(project.columns("product")) == {"id", "code", "stock"}
    assert project.rows("product", order_by="id") == [
        {"id": 1, "code": "42", "stock": None},
        {"id": 2, "code": "A1", "stock": None},
    ]

    # The command it names takes the database back.
    project.flask("db", "downgrade", "r1")
    assert project.version() == ["r1"] and set(project.columns("product")) == {"id", "code"}


def test_an_upgrade_refused_with_nothing_committed_still_says_nothing_was_changed(project: Project) -> None:
    _three_step_project(project)
    before = project.schema(), project.rows("product", order_by="id")

    # One transaction for the run: r2 is rolled back with r3.
    whole = project.flask("db", "upgrade", "--single-transaction", ok=False)
    assert "nothing was changed" in _error_line(whole) and "now at" not in _error_line(whole), whole
    assert project.version() == ["r1"]
    assert (project.schema(), project.rows("product", order_by="id")) == before

    # The refusing step is the first one run.
    project.flask("db", "upgrade", "r2")
    first = project.flask("db", "upgrade", ok=False)
    assert "nothing was changed" in _error_line(first) and "now at" not in _error_line(first), first
    assert project.version() == ["r2"] and set(project.columns("product")) == {"id", "code", "stock"}


def _rows_then_a_generated_change(project: Project, models: str, rows: str, changed_models: str) -> Any:
    """A history `flask db migrate` wrote: the models upgraded, ``rows`` inserted (statements split
    on ``; ``), then a second revision for ``changed_models``, not yet applied (its `migrate`'s result)."""
    project.write_app(models)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "first")
    project.flask("db", "upgrade")
    for statement in rows.split("; "):
        project.execute(statement)
    project.write_app(changed_models)
    return project.flask("db", "migrate", "-m", "second")


ACCOUNT = """
class Account(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(80){unique})
"""


def test_a_unique_constraint_that_the_rows_repeat_names_the_values_and_changes_nothing(
    project: Project,
) -> None:
    _rows_then_a_generated_change(
        project,
        ACCOUNT.format(unique=""),
        "INSERT INTO account (id, email) VALUES (1, 'ada@x'), (2, 'ada@x'), (3, 'bob@x')",
        ACCOUNT.format(unique=", unique=True"),
    )
    before = (project.schema(), project.rows("account", order_by="id"), project.version())

    failed = project.flask("db", "upgrade", ok=False)

    error = _error_line(failed)
    # The data is at fault, not the script: the line names the key, how many values repeat, and the query.
    assert "account(email) must be unique and 1 value(s) of it are repeated in the rows" in error, error
    assert "that migration was rolled back" in error, error
    assert "SELECT email, count(*) FROM account GROUP BY email HAVING count(*) > 1" in error, error
    assert "_evolve_new_" not in error and "fix the migration" not in error, error
    assert (project.schema(), project.rows("account", order_by="id"), project.version()) == before

    # Doing what it says lets the same script through.
    project.execute("UPDATE account SET email = 'grace@x' WHERE id = 2")
    project.flask("db", "upgrade")
    assert [row["email"] for row in project.rows("account", order_by="id")] == ["ada@x", "grace@x", "bob@x"]


MEMBERSHIP = """
class Team(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Member(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    team_id = db.Column(db.Integer{foreign_key})
"""


def test_a_foreign_key_that_rows_point_past_names_them_and_changes_nothing(project: Project) -> None:
    _rows_then_a_generated_change(
        project,
        MEMBERSHIP.format(foreign_key=""),
        "INSERT INTO team (id) VALUES (1); INSERT INTO member (id, team_id) VALUES (1, 1), (2, 7), (3, 8)",
        MEMBERSHIP.format(foreign_key=', db.ForeignKey("team.id")'),
    )
    before = (project.schema(), project.rows("member", order_by="id"), project.version())

    failed = project.flask("db", "upgrade", ok=False)

    error = _error_line(failed)
    assert "of member reference missing rows of team (first: " in error, error
    assert "point those rows at existing team rows or delete them first" in error, error
    if project.dialect == "postgresql":
        assert "(first: team_id=7)" in error and "that migration was rolled back" in error, error
    assert "fix the migration" not in error, error
    assert (project.schema(), project.rows("member", order_by="id"), project.version()) == before

    project.execute("DELETE FROM member WHERE team_id <> 1")
    project.flask("db", "upgrade")
    assert project.rows("member", order_by="id") == [{"id": 1, "team_id": 1}]


PRODUCT = """
class Product(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    price = db.Column(db.Integer)
{check}
"""


PRICE_CHECK = '    __table_args__ = (db.CheckConstraint("price >= 0", name="price_positive"),)'


def test_a_check_that_rows_break_is_counted_at_migrate_and_named_at_upgrade(project: Project) -> None:
    written = _rows_then_a_generated_change(
        project,
        PRODUCT.format(check=""),
        "INSERT INTO product (id, price) VALUES (1, 5), (2, -3), (3, -4), (4, NULL)",
        PRODUCT.format(check=PRICE_CHECK),
    )
    # NULL breaks no CHECK: two rows, not three.
    assert "EV205 warning: adds CHECK price_positive on product: 2 rows of product break it" in written.stderr
    assert "this upgrade will fail." in written.stderr
    before = (project.schema(), project.rows("product", order_by="id"), project.version())

    failed = project.flask("db", "upgrade", ok=False)

    error = _error_line(failed)
    assert "failed: rows of product break CHECK " in error and "price_positive" in error, error
    assert "that migration was rolled back" in error, error
    assert "make those rows satisfy it first, or change the CHECK in the model" in error, error
    assert (project.schema(), project.rows("product", order_by="id"), project.version()) == before

    project.execute("UPDATE product SET price = 0 WHERE price < 0")
    project.flask("db", "upgrade")
    assert [row["price"] for row in project.rows("product", order_by="id")] == [5, 0, 0, None]
