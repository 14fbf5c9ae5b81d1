"""Batch blocks with extra batch_alter_table() arguments (naming_convention, recreate …)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alembic.autogenerate import renderers
from alembic.operations import ops

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext


class BatchTableOps(ops.ModifyTableOps):
    """A ``ModifyTableOps`` rendered as ``with op.batch_alter_table(table, **batch_kwargs)``.

    Rewriters that need Alembic's batch options (the SQLite plan's ``recreate``,
    the ``naming_convention`` that names a reflected unnamed constraint so it can
    be dropped) put them here; they survive ``reverse()`` into the downgrade.
    """

    def __init__(
        self,
        table_name: str,
        ops_: list[Any],
        *,
        schema: str | None = None,
        batch_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(table_name, ops_, schema=schema)
        self.batch_kwargs: dict[str, Any] = dict(batch_kwargs or {})

    @classmethod
    def from_modify(cls, modify: ops.ModifyTableOps, **batch_kwargs: Any) -> BatchTableOps:
        kwargs = dict(getattr(modify, "batch_kwargs", {}))
        kwargs.update(batch_kwargs)
        return cls(modify.table_name, list(modify.ops), schema=modify.schema, batch_kwargs=kwargs)

    def reverse(self) -> BatchTableOps:
        return BatchTableOps(
            self.table_name,
            list(reversed([op.reverse() for op in self.ops])),
            schema=self.schema,
            batch_kwargs=self.batch_kwargs,
        )


@renderers.dispatch_for(BatchTableOps)
def _render_batch_table_ops(autogen_context: AutogenContext, op: BatchTableOps) -> list[str]:
    standard = renderers.dispatch(ops.ModifyTableOps)
    lines: list[str] = list(standard(autogen_context, op))
    header = "with op.batch_alter_table("
    if not lines or not lines[0].startswith(header) or not op.batch_kwargs:
        return lines
    extra = "".join(f", {key}={value!r}" for key, value in sorted(op.batch_kwargs.items()))
    lines[0] = lines[0].replace(") as batch_op:", f"{extra}) as batch_op:", 1)
    return lines
