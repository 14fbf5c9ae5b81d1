"""The constraint-naming rewriter on op trees: no None names, the convention only where it is in force."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops

from flask_evolve.autogen.batch import BatchTableOps
from flask_evolve.autogen.naming import NAMING_CONVENTION, _name_tree, _with_batch_convention


def employee() -> sa.Table:
    metadata = sa.MetaData()
    company = sa.Table("company", metadata, sa.Column("cid", sa.Integer, primary_key=True))
    return sa.Table(
        "employee",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), unique=True),
        sa.Column("company_id", sa.ForeignKey(company.c.cid)),
    )


def test_unnamed_create_ops_get_convention_names_even_without_a_convention() -> None:
    tree = ops.UpgradeOps(
        [
            ops.ModifyTableOps(
                "employee",
                [
                    ops.CreateUniqueConstraintOp(None, "employee", ["name"]),
                    ops.CreateForeignKeyOp(None, "employee", "company", ["company_id"], ["cid"]),
                    ops.CreateCheckConstraintOp(None, "employee", "length(name) > 0"),
                ],
            )
        ]
    )
    assert _name_tree(tree, None, None, NAMING_CONVENTION) == []
    code = render_python_code(tree, render_as_batch=True)
    assert "(None" not in code
    assert "create_unique_constraint('uq_employee_name', ['name'])" in code
    assert "create_foreign_key('fk_employee_company_id_company', 'company', ['company_id'], ['cid'])" in code
    assert "create_check_constraint('ck_employee_" in code


def test_new_tables_are_named_only_when_the_convention_is_in_force() -> None:
    table = employee()
    unnamed = ops.UpgradeOps([ops.CreateTableOp.from_table(table)])
    _name_tree(unnamed, None, None, NAMING_CONVENTION)
    assert "name='uq_employee_name'" not in render_python_code(unnamed)

    named = ops.UpgradeOps([ops.CreateTableOp.from_table(table)])
    _name_tree(named, NAMING_CONVENTION, None, NAMING_CONVENTION)
    code = render_python_code(named)
    assert "name='uq_employee_name'" in code
    assert "name='pk_employee'" in code
    assert "name='fk_employee_company_id_company'" in code
    # The models' own objects are left alone.
    assert all(c.name is None for c in table.constraints if not isinstance(c, sa.PrimaryKeyConstraint))


def test_an_unnamed_reflected_constraint_is_dropped_through_a_batch_naming_convention() -> None:
    table = employee()
    foreign_key = next(iter(table.foreign_key_constraints))
    tree = ops.UpgradeOps(
        [ops.ModifyTableOps("employee", [ops.DropConstraintOp.from_constraint(foreign_key)])]
    )
    tables = _name_tree(tree, None, None, NAMING_CONVENTION)
    assert tables == ["employee"]
    _with_batch_convention(tree, tables, NAMING_CONVENTION)
    assert isinstance(tree.ops[0], BatchTableOps)
    code = render_python_code(tree, render_as_batch=True)
    assert "batch_alter_table('employee', schema=None, naming_convention={" in code
    assert "drop_constraint('fk_employee_company_id_company', type_='foreignkey')" in code
    down = ops.DowngradeOps([])
    tree.reverse_into(down)
    assert isinstance(down.ops[0], BatchTableOps)
