"""The risk rules, one by one: each fires on the risky operation and stays quiet on a safe one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.operations import ops
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

from flask_evolve.safety.capture import CaptureError, capture
from flask_evolve.safety.lint import allowed_rules
from flask_evolve.safety.rules import RULES, at_or_above, check_operations, measure


def rule_ids(operations: list[ops.MigrateOperation], dialect: str = "sqlite") -> set[str]:
    return {f.rule for f in check_operations(operations, dialect)}


def new_table(name: str) -> ops.CreateTableOp:
    columns = [sa.Column("id", sa.Integer, primary_key=True), sa.Column("c", sa.Integer)]
    return ops.CreateTableOp(name, columns)


RISKY: dict[str, tuple[str, ops.MigrateOperation]] = {
    "EV101": ("sqlite", ops.DropTableOp("employee")),
    "EV102": ("sqlite", ops.DropColumnOp("employee", "age")),
    "EV103": (
        "sqlite",
        ops.AlterColumnOp("employee", "name", existing_type=sa.String(80), modify_type=sa.String(20)),
    ),
    "EV201": ("sqlite", ops.AlterColumnOp("employee", "age", existing_nullable=True, modify_nullable=False)),
    "EV202": ("sqlite", ops.CreateUniqueConstraintOp("uq_email", "employee", ["email"])),
    "EV203": ("sqlite", ops.CreateForeignKeyOp("fk", "employee", "company", ["cid"], ["id"])),
    "EV204": (
        "sqlite",
        ops.AlterColumnOp("employee", "age", existing_type=sa.String(10), modify_type=sa.Integer()),
    ),
    "EV205": ("sqlite", ops.CreateCheckConstraintOp("ck_age", "employee", "age >= 0")),
    "EV301": ("postgresql", ops.CreateIndexOp("ix_name", "employee", ["name"])),
    "EV302": (
        "postgresql",
        ops.AlterColumnOp("employee", "id", existing_type=sa.Integer(), modify_type=sa.BigInteger()),
    ),
    "EV303": ("postgresql", ops.CreateForeignKeyOp("fk", "employee", "company", ["cid"], ["id"])),
    "EV304": (
        "postgresql",
        ops.AlterColumnOp("employee", "age", existing_nullable=True, modify_nullable=False),
    ),
    "EV401": ("sqlite", ops.AlterColumnOp("employee", "name", modify_name="full_name")),
}

SAFE: dict[str, tuple[str, list[ops.MigrateOperation]]] = {
    "EV101": ("sqlite", [ops.CreateTableOp("audit", [sa.Column("id", sa.Integer, primary_key=True)])]),
    "EV102": ("sqlite", [ops.AddColumnOp("employee", sa.Column("age", sa.Integer))]),
    "EV103": (
        "sqlite",
        [ops.AlterColumnOp("employee", "name", existing_type=sa.String(20), modify_type=sa.String(80))],
    ),
    "EV201": (
        "sqlite",
        [ops.AddColumnOp("employee", sa.Column("age", sa.Integer, nullable=False, server_default="0"))],
    ),
    "EV202": ("sqlite", [new_table("audit"), ops.CreateUniqueConstraintOp("uq", "audit", ["c"])]),
    "EV203": ("sqlite", [new_table("audit"), ops.CreateForeignKeyOp("fk", "audit", "emp", ["c"], ["i"])]),
    "EV205": ("sqlite", [new_table("audit"), ops.CreateCheckConstraintOp("ck_c", "audit", "c >= 0")]),
    "EV204": (
        "sqlite",
        [ops.AlterColumnOp("employee", "age", existing_type=sa.Integer(), modify_type=sa.String(20))],
    ),
    "EV301": (
        "postgresql",
        [ops.CreateIndexOp("ix_name", "employee", ["name"], postgresql_concurrently=True)],
    ),
    "EV302": (
        "postgresql",
        [ops.AlterColumnOp("employee", "name", existing_type=sa.String(20), modify_type=sa.String(80))],
    ),
    "EV303": ("postgresql", [new_table("audit"), ops.CreateForeignKeyOp("fk", "audit", "emp", ["c"], ["i"])]),
    "EV304": (
        "postgresql",
        [ops.AlterColumnOp("employee", "age", existing_nullable=False, modify_nullable=True)],
    ),
    "EV401": ("sqlite", [ops.AddColumnOp("employee", sa.Column("nickname", sa.String(20)))]),
}


def test_every_rule_has_a_risky_and_a_safe_case() -> None:
    assert set(RISKY) == set(SAFE) == set(RULES)


@pytest.mark.parametrize("rule", sorted(RISKY))
def test_rule_fires_on_the_risky_operation(rule: str) -> None:
    dialect, operation = RISKY[rule]
    assert rule in rule_ids([operation], dialect)


@pytest.mark.parametrize("rule", sorted(SAFE))
def test_rule_stays_quiet_on_a_safe_migration(rule: str) -> None:
    dialect, operations = SAFE[rule]
    assert rule not in rule_ids(operations, dialect)


@pytest.mark.parametrize("rule", sorted(r for r, rule in RULES.items() if rule.dialects))
def test_postgresql_locking_rules_are_quiet_on_sqlite(rule: str) -> None:
    _, operation = RISKY[rule]
    assert rule not in rule_ids([operation], "sqlite")


def test_operations_grouped_per_table_are_opened_up() -> None:
    grouped = ops.ModifyTableOps("employee", [ops.DropColumnOp("employee", "age")])
    assert rule_ids([ops.UpgradeOps([grouped])]) == {"EV102", "EV401"}


def test_narrowing_types() -> None:
    def narrows(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> bool:
        op = ops.AlterColumnOp("t", "c", existing_type=old, modify_type=new)
        return "EV103" in rule_ids([op])

    assert narrows(sa.BigInteger(), sa.Integer())
    assert narrows(sa.Numeric(10, 2), sa.Numeric(10, 0))
    assert narrows(sa.Text(), sa.String(50))
    assert narrows(sa.DateTime(), sa.Date())
    assert not narrows(sa.Integer(), sa.BigInteger())
    assert not narrows(sa.Numeric(8, 2), sa.Numeric(12, 2))
    assert not narrows(sa.String(50), sa.Text())


def test_fail_on_levels() -> None:
    findings = check_operations([ops.DropColumnOp("employee", "age")], "sqlite")
    assert {f.rule for f in at_or_above(findings, "error")} == {"EV102"}
    assert {f.rule for f in at_or_above(findings, "notice")} == {"EV102", "EV401"}


def test_marker_comment_names_rules_by_id_or_name() -> None:
    source = "# flask-evolve: allow EV102, breaks-running-app\nx = 1\n"
    assert allowed_rules(source) == {"EV102", "EV401"}


def test_capture_records_script_operations_including_batch_blocks() -> None:
    from alembic import op

    def upgrade() -> None:
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_column("age")
        op.create_index("ix_name", "employee", ["name"])
        op.execute("UPDATE employee SET name = 'x'")

    recorded = capture(upgrade, "postgresql")
    assert [type(o).__name__ for o in recorded] == ["DropColumnOp", "CreateIndexOp", "ExecuteSQLOp"]
    assert recorded[0].table_name == "employee"


def test_capture_reports_a_script_that_raises() -> None:
    def downgrade() -> None:
        raise NotImplementedError("one way only")

    with pytest.raises(CaptureError, match="NotImplementedError"):
        capture(downgrade, "sqlite")


# -- counting the offending rows on a real database -------------------------------------------


@pytest.fixture
def connection(database_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE company (id INTEGER PRIMARY KEY)"))
        c.execute(
            sa.text(
                "CREATE TABLE employee (id INTEGER PRIMARY KEY, name VARCHAR(80), "
                "email VARCHAR(80), age INTEGER, cid INTEGER)"
            )
        )
        c.execute(sa.text("INSERT INTO company (id) VALUES (1)"))
        c.execute(
            sa.text(
                "INSERT INTO employee (id, name, email, age, cid) VALUES "
                "(1, 'Ada', 'a@x', 36, 1), (2, 'Grace Brewster Murray Hopper', 'a@x', NULL, 7), "
                "(3, 'Linus', 'l@x', NULL, 9)"
            )
        )
    with engine.connect() as c:
        yield c
    engine.dispose()


def measured(connection: sa.Connection, operation: ops.MigrateOperation, rule: str) -> str:
    findings = measure(check_operations([operation], connection.dialect.name), connection)
    return next(f.message for f in findings if f.rule == rule)


def test_counts_the_rows_a_migration_trips_over(connection: sa.Connection) -> None:
    assert "3 rows will be deleted" in measured(connection, RISKY["EV101"][1], "EV101")
    assert "1 row of employee holds" in measured(connection, RISKY["EV102"][1], "EV102")
    assert "2 rows of employee have NULL age: this upgrade will fail" in measured(
        connection, RISKY["EV201"][1], "EV201"
    )
    assert "1 value(s) of employee(email) are repeated" in measured(connection, RISKY["EV202"][1], "EV202")
    assert "1 row of employee has a name longer than 20" in measured(connection, RISKY["EV103"][1], "EV103")
    fk = ops.CreateForeignKeyOp("fk", "employee", "company", ["cid"], ["id"])
    assert "2 rows of employee point at no company row" in measured(connection, fk, "EV203")


@pytest.mark.postgresql
def test_counts_values_that_will_not_convert_on_postgresql(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=NullPool)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE employee (id INTEGER PRIMARY KEY, age VARCHAR(10))"))
        c.execute(sa.text("INSERT INTO employee VALUES (1, '36'), (2, 'forty'), (3, NULL), (4, ' 7 ')"))
    with engine.connect() as c:
        message = measured(c, RISKY["EV204"][1], "EV204")
    assert "1 row of employee has a value of age that is not integer: this upgrade will fail" in message
    engine.dispose()


def test_not_null_column_added_to_a_table_with_rows(connection: sa.Connection) -> None:
    add = ops.AddColumnOp("employee", sa.Column("badge", sa.Integer, nullable=False))
    assert "employee has 3 rows: this upgrade will fail" in measured(connection, add, "EV201")


@pytest.mark.postgresql
def test_a_validated_check_constraint_silences_set_not_null_scan(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=NullPool)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE employee (id INTEGER PRIMARY KEY, age INTEGER)"))
    operation = RISKY["EV304"][1]
    with engine.connect() as c:
        assert "EV304" in {f.rule for f in measure(check_operations([operation], "postgresql"), c)}
    with engine.begin() as c:
        c.execute(sa.text("ALTER TABLE employee ADD CONSTRAINT age_nn CHECK (age IS NOT NULL)"))
    with engine.connect() as c:
        assert "EV304" not in {f.rule for f in measure(check_operations([operation], "postgresql"), c)}
    engine.dispose()


def test_the_readme_documents_every_rule_and_command() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for rule in RULES.values():
        assert f"| {rule.id} | {rule.name} |" in readme
    for command in ("flask db lint", "flask db verify", "flask db check", "flask db status", "--dry-run"):
        assert command in readme


@given(
    old=st.one_of(st.none(), st.integers(1, 500)),
    new=st.one_of(st.none(), st.integers(1, 500)),
)
def test_varchar_changes_are_narrowing_exactly_when_they_shorten(old: int | None, new: int | None) -> None:
    from flask_evolve.safety.rules import narrowing, rewrites_on_postgresql

    shorter = new is not None and (old is None or new < old)
    assert (narrowing(sa.String(old), sa.String(new)) is not None) is shorter
    # PostgreSQL rewrites only when the column gets shorter (a longer VARCHAR is a catalog change).
    assert rewrites_on_postgresql(sa.String(old), sa.String(new)) is shorter


def test_the_report_names_archive_operations_in_words() -> None:
    from flask_evolve.runtime.archive_ops import ArchiveColumnsOp, RestoreColumnsOp
    from flask_evolve.safety.report import describe

    archive = ArchiveColumnsOp("employee", ["email", "phone"], key=["id"], revision="r1")
    assert describe(archive) == "archive columns email, phone"
    assert describe(archive.reverse()) == "restore columns email, phone"
    restore = RestoreColumnsOp("employee", ["note"], key=["id"], revision="r1", on="downgrade")
    assert describe(restore) == "restore columns note (what an earlier downgrade kept, if anything)"


def test_the_report_leaves_out_restores_of_what_a_downgrade_may_have_kept() -> None:
    from flask_evolve.runtime.archive_ops import RestoreRowsOp
    from flask_evolve.safety.report import build_report

    create = ops.CreateTableOp("employee", [sa.Column("id", sa.Integer, primary_key=True)])
    restore = RestoreRowsOp("employee", revision="r1", on="downgrade")
    report = build_report([create, restore], "sqlite")
    assert [change.description for change in report.changes] == ["create table"]
