"""Unit tests of the SQLite planner: which changes stay native ALTER TABLE, which rebuild the table once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops

from flask_evolve.autogen.sqlite_plan import NativeTableOps, RebuildTableOps, _plan


@pytest.fixture
def connection() -> Iterator[sa.Connection]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, plain VARCHAR(10), uniq VARCHAR(10) UNIQUE, "
            "indexed INTEGER, checked INTEGER CHECK (checked > 0))"
        )
        connection.exec_driver_sql("CREATE INDEX ix_t_indexed ON t (indexed)")
        yield connection


def _models() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("plain", sa.String(10)))
    return metadata


def _planned(connection: sa.Connection, *changes: ops.MigrateOperation) -> ops.MigrateOperation:
    planned = _plan(
        [ops.ModifyTableOps("t", list(changes))], upgrade=True, connection=connection, metadatas=[_models()]
    )
    return planned[0]


def test_add_rename_and_drop_of_a_plain_column_stay_native(connection: sa.Connection) -> None:
    planned = _planned(
        connection,
        ops.AddColumnOp("t", sa.Column("extra", sa.Integer)),
        ops.AlterColumnOp("t", "plain", modify_name="renamed"),
        ops.DropColumnOp("t", "plain"),
    )
    assert isinstance(planned, NativeTableOps)


@pytest.mark.parametrize("column", ["uniq", "indexed", "checked", "id"])
def test_dropping_a_column_that_something_uses_rebuilds(connection: sa.Connection, column: str) -> None:
    assert isinstance(_planned(connection, ops.DropColumnOp("t", column)), RebuildTableOps)


def test_a_rebuild_copies_rows_by_name_and_keeps_expression_indexes(connection: sa.Connection) -> None:
    connection.exec_driver_sql("CREATE INDEX ix_t_lower ON t (lower(plain))")
    planned = _planned(connection, ops.AlterColumnOp("t", "plain", modify_nullable=False))
    assert isinstance(planned, RebuildTableOps)
    assert planned.statements[1:] == [
        "INSERT INTO _evolve_new_t (id, plain) SELECT id, plain FROM t",
        "DROP TABLE t",
        "ALTER TABLE _evolve_new_t RENAME TO t",
        "CREATE INDEX ix_t_lower ON t (lower(plain))",
    ]
    assert planned.statements[0].startswith("CREATE TABLE _evolve_new_t (")


def test_a_not_null_column_without_default_or_a_non_constant_default_rebuilds(
    connection: sa.Connection,
) -> None:
    not_null = ops.AddColumnOp("t", sa.Column("x", sa.Integer, nullable=False))
    now = ops.AddColumnOp("t", sa.Column("y", sa.DateTime, server_default=sa.func.now()))
    assert isinstance(_planned(connection, not_null), RebuildTableOps)
    assert isinstance(_planned(connection, now), RebuildTableOps)


def test_without_a_model_to_rebuild_to_it_is_a_batch_even_when_batch_rendering_is_off(
    connection: sa.Connection,
) -> None:
    # SQLite cannot drop a constraint with ALTER TABLE: a plain op.drop_constraint() would fail.
    unique = sa.UniqueConstraint("uniq", name="uq_t_uniq")
    sa.Table("t", sa.MetaData(), sa.Column("uniq", sa.String(10)), unique)
    drop = ops.DropConstraintOp.from_constraint(unique)
    planned = _plan([ops.ModifyTableOps("t", [drop])], upgrade=True, connection=connection, metadatas=[])
    code = render_python_code(ops.UpgradeOps(planned), render_as_batch=False)
    assert "with op.batch_alter_table('t'" in code and "batch_op.drop_constraint('uq_t_uniq'" in code
    reverse = render_python_code(ops.UpgradeOps([planned[0].reverse()]), render_as_batch=False)
    assert "with op.batch_alter_table('t'" in reverse
