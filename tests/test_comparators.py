"""Unit tests of the server-default normaliser: what databases hand back equals what the models say."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flask_evolve.autogen.comparators import compare_server_default


class _Context:
    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect


def _differs(dialect: sa.Dialect, column_type: Any, model: Any, reflected: str | None) -> bool | None:
    column = sa.Column("a", column_type, server_default=model)
    default = column.server_default
    return compare_server_default(_Context(dialect), column, column, reflected, default, None)  # type: ignore[arg-type]


PG, LITE = postgresql.dialect(), sqlite.dialect()


@pytest.mark.parametrize(
    ("dialect", "column_type", "model", "reflected"),
    [
        (PG, sa.String(20), "x", "'x'::character varying"),
        (PG, sa.String(20), "it's", "'it''s'::character varying"),
        (PG, sa.Integer(), "2", "2"),
        (PG, sa.Numeric(10, 2), "1.5", "1.50"),
        (PG, sa.Boolean(), sa.false(), "false"),
        (PG, sa.Boolean(), "0", "false"),
        (PG, sa.DateTime(), sa.func.now(), "now()"),
        (PG, sa.DateTime(), sa.text("CURRENT_TIMESTAMP"), "CURRENT_TIMESTAMP"),
        (LITE, sa.String(20), "x", "'x'"),
        (LITE, sa.String(20), "it's", "'it''s'"),
        (LITE, sa.Boolean(), sa.true(), "1"),
        (LITE, sa.DateTime(), sa.func.now(), "(CURRENT_TIMESTAMP)"),
        (LITE, sa.Integer(), "7", "'7'"),
    ],
)
def test_equal_defaults_are_equal(dialect: sa.Dialect, column_type: Any, model: Any, reflected: str) -> None:
    assert _differs(dialect, column_type, model, reflected) is False


@pytest.mark.parametrize(
    ("dialect", "column_type", "model", "reflected"),
    [
        (PG, sa.String(20), "y", "'x'::character varying"),
        (PG, sa.Integer(), "3", "2"),
        (PG, sa.Boolean(), sa.true(), "false"),
        (PG, sa.DateTime(), None, "now()"),
        (LITE, sa.String(20), "x", None),
        (LITE, sa.String(20), "it's", "'its'"),
    ],
)
def test_changed_defaults_differ(
    dialect: sa.Dialect, column_type: Any, model: Any, reflected: str | None
) -> None:
    assert _differs(dialect, column_type, model, reflected) is True


def test_expressions_it_does_not_understand_are_left_to_alembic() -> None:
    assert (
        _differs(
            PG, sa.Integer(), sa.text("floor(random() * 10)"), "floor((random() * (10)::double precision))"
        )
        is None
    )
