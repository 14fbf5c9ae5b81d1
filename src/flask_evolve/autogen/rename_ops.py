"""The ops a rename writes: plain Alembic calls with a reverse() that undoes them and a comment saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alembic.autogenerate import renderers
from alembic.operations import ops

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext


class RenameColumnOp(ops.AlterColumnOp):
    """``op.alter_column(table, old, new_column_name=new)`` with a reverse() that renames back.

    Kept out of batch blocks, so SQLite (3.25+) runs a native RENAME COLUMN, not a table copy.
    """

    def __init__(
        self,
        table_name: str,
        column_name: str,
        new_column_name: str,
        *,
        schema: str | None = None,
        existing_type: Any = None,
        existing_nullable: bool | None = None,
        comment: str = "",
    ) -> None:
        super().__init__(
            table_name,
            column_name,
            schema=schema,
            existing_type=existing_type,
            existing_nullable=existing_nullable,
            modify_name=new_column_name,
        )
        self.comment = comment

    @property
    def new_column_name(self) -> str:
        return str(self.modify_name)

    def reverse(self) -> RenameColumnOp:
        return RenameColumnOp(
            self.table_name,
            self.new_column_name,
            self.column_name,
            schema=self.schema,
            existing_type=self.existing_type,
            existing_nullable=self.existing_nullable,
            comment=f"undo rename {self.table_name}.{self.column_name} -> {self.new_column_name}",
        )


class RenameTableOp(ops.RenameTableOp):
    """``op.rename_table(old, new)`` with a reverse() that renames back."""

    def __init__(
        self, old_table_name: str, new_table_name: str, *, schema: str | None = None, comment: str = ""
    ) -> None:
        super().__init__(old_table_name, new_table_name, schema=schema)
        self.comment = comment

    def reverse(self) -> RenameTableOp:
        return RenameTableOp(
            self.new_table_name,
            self.table_name,
            schema=self.schema,
            comment=f"undo rename {self.table_name} -> {self.new_table_name}",
        )


def pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class RenameObjectOp(ops.ExecuteSQLOp):
    """PostgreSQL: rename an index, a constraint or a sequence in place (``op.execute``), no rebuild.

    ``table`` is the table's name when the op runs (after any table rename); ``schema`` the
    schema of the table and the object (None: the default schema).
    """

    def __init__(self, kind: str, old: str, new: str, *, table: str = "", schema: str | None = None) -> None:
        self.kind, self.old, self.new, self.table, self.schema = kind, old, new, table, schema
        prefix = f"{pg_quote(schema)}." if schema is not None else ""
        if kind == "constraint":
            sql = f"ALTER TABLE {prefix}{pg_quote(table)} RENAME CONSTRAINT {pg_quote(old)} TO "
            sql += pg_quote(new)
        else:
            sql = f"ALTER {kind.upper()} {prefix}{pg_quote(old)} RENAME TO {pg_quote(new)}"
        super().__init__(sql)

    def reverse(self) -> RenameObjectOp:
        return RenameObjectOp(self.kind, self.new, self.old, table=self.table, schema=self.schema)


def _comment_lines(comment: str) -> list[str]:
    return [f"# flask-evolve: {comment}"] if comment else []


@renderers.dispatch_for(RenameColumnOp)
def _render_rename_column(autogen_context: AutogenContext, op: RenameColumnOp) -> list[str]:
    standard = renderers.dispatch(ops.AlterColumnOp)(autogen_context, op)
    return [*_comment_lines(op.comment), standard]


@renderers.dispatch_for(RenameTableOp)
def _render_rename_table(autogen_context: AutogenContext, op: RenameTableOp) -> list[str]:
    prefix = autogen_context.opts.get("alembic_module_prefix", "op.")
    schema = f", schema={op.schema!r}" if op.schema else ""
    return [
        *_comment_lines(op.comment),
        f"{prefix}rename_table({op.table_name!r}, {op.new_table_name!r}{schema})",
    ]
