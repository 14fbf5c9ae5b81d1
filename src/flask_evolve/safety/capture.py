"""Capture the operations a revision script emits, by running it against a recording `op`."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation


class _BatchTarget:
    """Stands in for Alembic's batch implementation: the batch ops read only the table name."""

    def __init__(self, table_name: str, schema: str | None) -> None:
        self.table_name = table_name
        self.schema = schema


class _RecordingBatchOperations(BatchOperations):
    def __init__(self, migration_context: MigrationContext, target: _BatchTarget, record: Any) -> None:
        super().__init__(migration_context, impl=target)  # type: ignore[arg-type]
        self._record = record

    def invoke(self, operation: MigrateOperation) -> Any:
        return self._record(operation)


def recording_operations(migration_context: MigrationContext) -> tuple[Operations, list[MigrateOperation]]:
    """An ``op`` that records each operation instead of running it, and the list it records into.

    Every ``op.*`` call builds an operation object and hands it to ``invoke()``,
    so recording there sees exactly what the script asks for, batch blocks included.
    It is a plain ``Operations`` (with ``invoke`` replaced on the instance) because
    Alembic's ``op`` proxy only accepts that class.
    """
    recorded: list[MigrateOperation] = []
    operations = Operations(migration_context)

    def invoke(operation: MigrateOperation) -> Any:
        recorded.append(operation)
        if isinstance(operation, ops.CreateTableOp):
            # Scripts keep the returned Table for op.bulk_insert().
            return operation.to_table(migration_context)
        return None

    @contextmanager
    def batch_alter_table(table_name: str, schema: str | None = None, **kw: Any) -> Iterator[BatchOperations]:
        yield _RecordingBatchOperations(migration_context, _BatchTarget(table_name, schema), invoke)

    operations.invoke = invoke  # type: ignore[method-assign]
    operations.batch_alter_table = batch_alter_table  # type: ignore[method-assign]
    return operations, recorded


@contextmanager
def quiet_alembic() -> Iterator[None]:
    """Hide Alembic's INFO lines for work the user did not ask to watch (scratch runs, captures)."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class CaptureError(Exception):
    """The script raised while its operations were being recorded."""


def capture(fn: Callable[[], Any], dialect: str) -> list[MigrateOperation]:
    """Call a script's ``upgrade`` or ``downgrade`` with ``alembic.op`` recording, and return the ops.

    Runs offline (``as_sql``) for ``dialect``, so nothing touches a database;
    a script that reads data through ``op.get_bind()`` cannot be captured.

    :raises CaptureError: the function raised; the message says what.
    """
    with quiet_alembic():
        context = MigrationContext.configure(
            dialect_name=dialect, opts={"as_sql": True, "output_buffer": io.StringIO()}
        )
    recorder, recorded = recording_operations(context)
    # The same proxy swap Operations.context() does, with our recorder as `op`.
    recorder._install_proxy()
    try:
        fn()
    except Exception as exc:
        raise CaptureError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        recorder._remove_proxy()
    return recorded
