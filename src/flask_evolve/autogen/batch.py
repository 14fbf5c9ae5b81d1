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
        always: bool = False,
    ) -> None:
        super().__init__(table_name, ops_, schema=schema)
        self.batch_kwargs: dict[str, Any] = dict(batch_kwargs or {})
        #: Render as a batch even under ``render_as_batch=False`` (SQLite cannot do these in place).
        self.always = always

    @classmethod
    def from_modify(
        cls, modify: ops.ModifyTableOps, *, always: bool = False, **batch_kwargs: Any
    ) -> BatchTableOps:
        kwargs = dict(getattr(modify, "batch_kwargs", {}))
        kwargs.update(batch_kwargs)
        always = always or getattr(modify, "always", False)
        return cls(
            modify.table_name, list(modify.ops), schema=modify.schema, batch_kwargs=kwargs, always=always
        )

    def reverse(self) -> BatchTableOps:
        return BatchTableOps(
            self.table_name,
            list(reversed([op.reverse() for op in self.ops])),
            schema=self.schema,
            batch_kwargs=self.batch_kwargs,
            always=self.always,
        )


@renderers.dispatch_for(BatchTableOps)
def _render_batch_table_ops(autogen_context: AutogenContext, op: BatchTableOps) -> list[str]:
    standard = renderers.dispatch(ops.ModifyTableOps)
    opts = autogen_context.opts
    forced = op.always and not opts.get("render_as_batch")
    if forced:
        opts["render_as_batch"] = True
    try:
        lines: list[str] = list(standard(autogen_context, op))
    finally:
        if forced:
            opts["render_as_batch"] = False
    header = "with op.batch_alter_table("
    if not lines or not lines[0].startswith(header) or not op.batch_kwargs:
        return lines
    extra = "".join(f", {key}={value!r}" for key, value in sorted(op.batch_kwargs.items()))
    lines[0] = lines[0].replace(") as batch_op:", f"{extra}) as batch_op:", 1)
    return lines
