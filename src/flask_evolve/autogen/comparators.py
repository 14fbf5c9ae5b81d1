"""Autogenerate comparators that close Alembic's detection gaps: server defaults, sizes, CHECKs."""

from __future__ import annotations

import logging
import re
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.runtime.plugins import Plugin
from alembic.util import DispatchPriority, PriorityDispatchResult

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext
    from alembic.operations.ops import AlterColumnOp
    from alembic.runtime.migration import MigrationContext

log = logging.getLogger("alembic.autogenerate.compare")

#: The name under which our comparators register; ``flask_evolve.*`` in
#: ``autogenerate_plugins`` selects them.
PLUGIN_NAME = "flask_evolve.comparators"

#: What ``Migrate`` passes to ``context.configure()`` unless the app gave its own.
DEFAULT_PLUGINS = ("alembic.autogenerate.*", "alembic.ext.checkconstraint_byname", "flask_evolve.*")

# Spellings of "the current time" that databases hand back for what models say.
_NOW = {"now()", "current_timestamp", "transaction_timestamp()", "localtimestamp", "current_timestamp()"}
_TRUE = {"true", "1", "t", "yes", "on"}
_FALSE = {"false", "0", "f", "no", "off"}
# A PostgreSQL cast suffix as reflected: 'x'::character varying, 0::numeric(10,2), '{}'::text[]
_PG_CAST = re.compile(r"::\s*[a-z_][\w ]*(\(\s*\d+(\s*,\s*\d+)?\s*\))?(\[\])*\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quoted


def _canonical_sql(text: str) -> tuple[str, str] | None:
    """Reduce a default as SQL text to ``(kind, value)``, or ``None`` when it is an
    expression we do not understand (then Alembic's own comparison decides)."""
    text = _strip_parens(text)
    while True:
        stripped = _PG_CAST.sub("", text)
        if stripped == text:
            break
        text = _strip_parens(stripped)
    if len(text) >= 2 and text.startswith("'") and text.endswith("'") and _balanced(text[1:-1]):
        return ("literal", text[1:-1].replace("''", "'"))
    lowered = text.lower()
    if lowered in _NOW:
        return ("now", "")
    if lowered in _TRUE | _FALSE or _BARE_NUMBER.match(lowered) or lowered == "null":
        return ("literal", lowered)
    return None


def _canonical_metadata_default(default: Any, dialect: sa.Dialect) -> tuple[str, str] | None:
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    if isinstance(arg, str):
        return ("literal", arg)
    if isinstance(arg, sa.TextClause):
        return _canonical_sql(arg.text)
    if isinstance(arg, sa.ClauseElement):
        compiled = str(arg.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        return _canonical_sql(compiled)
    return None


def _same_literal(a: str, b: str, column_type: sa.types.TypeEngine[Any]) -> bool:
    affinity = column_type._type_affinity
    if affinity is not None and issubclass(affinity, sa.Boolean):
        a_l, b_l = a.lower(), b.lower()
        if (a_l in _TRUE and b_l in _TRUE) or (a_l in _FALSE and b_l in _FALSE):
            return True
    if affinity is not None and issubclass(affinity, (sa.Integer, sa.Numeric, sa.Boolean)):
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            pass
    return a == b


def compare_server_default(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's ``compare_server_default`` hook: ``True`` when the defaults differ.

    Reflected defaults come back rewritten by the database (PostgreSQL's
    ``'x'::character varying``, SQLite's quoting, ``now()`` for
    ``CURRENT_TIMESTAMP``, ``true`` for ``1``). We reduce both sides to a literal
    or "now" and compare those; for any other expression we return ``None``
    and Alembic's own comparison decides.
    """
    if metadata_default is None and inspected_default is None:
        return False
    if isinstance(metadata_default, (sa.Computed, sa.Identity)) or not isinstance(
        metadata_default, (sa.DefaultClause, type(None))
    ):
        return None
    if metadata_default is None or inspected_default is None:
        # Serial/identity columns reflect a nextval() default the model never states.
        if inspected_default and "nextval(" in inspected_default.lower():
            return None
        return True
    dialect = context.dialect
    meta = _canonical_metadata_default(metadata_default, dialect)
    conn = _canonical_sql(inspected_default)
    if meta is None or conn is None:
        return None
    if meta[0] != conn[0]:
        return True
    if meta[0] == "now":
        return False
    return not _same_literal(meta[1], conn[1], metadata_column.type)


def _lengths(column_type: sa.types.TypeEngine[Any]) -> tuple[Any, ...] | None:
    """The size parameters that Alembic treats as "less specific, so equal" when one side lacks them."""
    if isinstance(column_type, (sa.Enum, sa.Float)):
        return None
    if isinstance(column_type, sa.String):
        return (column_type.length,)
    if isinstance(column_type, sa.Numeric):
        return (column_type.precision, column_type.scale)
    return None


def _compare_type_size(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    tname: str,
    cname: str,
    conn_col: sa.Column[Any],
    metadata_col: sa.Column[Any],
) -> PriorityDispatchResult:
    """Detect ``String`` → ``String(80)`` and ``Numeric`` → ``Numeric(10, 2)``.

    Alembic compares a size only when both sides state one; a column created
    without a length and later given one (or the reverse) would drift forever.
    """
    if autogen_context.migration_context._user_compare_type is False:
        return PriorityDispatchResult.CONTINUE
    conn_type, meta_type = conn_col.type, metadata_col.type
    if conn_type._type_affinity is not meta_type._type_affinity:
        return PriorityDispatchResult.CONTINUE
    conn_size, meta_size = _lengths(conn_type), _lengths(meta_type)
    if conn_size is None or meta_size is None or conn_size == meta_size:
        return PriorityDispatchResult.CONTINUE
    alter_column_op.existing_type = conn_type
    alter_column_op.modify_type = meta_type
    log.info("Detected type change from %r to %r on '%s.%s'", conn_type, meta_type, tname, cname)
    return PriorityDispatchResult.STOP


def setup(plugin: Plugin) -> None:
    """Register our comparators on ``plugin`` (Alembic's plugin protocol)."""
    from flask_evolve.autogen.checks import compare_checks
    from flask_evolve.autogen.fingerprint import order_tables

    # Before Alembic's comparison of the schemas, which reads the (unsorted) table list lazily.
    plugin.add_autogenerate_comparator(
        order_tables, "autogenerate", "flask_evolve.table_order", priority=DispatchPriority.FIRST
    )

    # Between Alembic's user hook (FIRST) and its dialect comparison (LAST).
    plugin.add_autogenerate_comparator(
        _compare_type_size, "column", "types", priority=DispatchPriority.MEDIUM
    )
    # Before Alembic's by-name CHECK comparison, which it stops on SQLite and PostgreSQL.
    plugin.add_autogenerate_comparator(
        compare_checks, "table", "checkconstraints", priority=DispatchPriority.FIRST
    )


Plugin.setup_plugin_from_module(sys.modules[__name__], PLUGIN_NAME)
