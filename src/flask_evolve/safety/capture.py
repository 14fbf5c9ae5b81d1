"""Capture the operations a revision script emits, by running it against a recording `op`."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation
    from alembic.script import Script


class _BatchTarget:
    """Stands in for Alembic's batch implementation: the batch ops read only the table name."""

    def __init__(self, table_name: str, schema: str | None) -> None:
        self.table_name = table_name
        self.schema = schema


class OfflineBind:
    """What ``op.get_bind()`` gives a script while it is captured: no database, and no rows.

    Data migrations read and write rows between schema operations; offline
    there are none, so every query returns an empty result (a real SQLAlchemy
    ``Result``) and the script goes on to its next operation. Code that needs
    a row to exist still fails, and the revision is reported as not checked.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect

    @property
    def engine(self) -> OfflineBind:
        # ``op.get_bind().engine.dialect.name``: how scripts skip a step on one database.
        return self

    def execute(self, statement: Any, *args: Any, **kw: Any) -> Result[Any]:
        return IteratorResult(SimpleResultMetaData(["value"]), iter([]))

    exec_driver_sql = execute

    def scalar(self, statement: Any, *args: Any, **kw: Any) -> None:
        return None

    def scalars(self, statement: Any, *args: Any, **kw: Any) -> Any:
        return self.execute(statement).scalars()

    def commit(self) -> None:
        pass

    rollback = commit


class _RecordingBatchOperations(BatchOperations):
    def __init__(
        self, migration_context: MigrationContext, target: _BatchTarget, record: Any, bind: OfflineBind
    ) -> None:
        super().__init__(migration_context, impl=target)  # type: ignore[arg-type]
        self._record = record
        self._bind = bind

    def invoke(self, operation: MigrateOperation) -> Any:
        return self._record(operation)

    def get_bind(self) -> Any:
        return self._bind


def record_into(operations: Operations, recorded: list[MigrateOperation]) -> None:
    """Make ``operations`` (the ``op`` of ``Operations.context()``) record each operation into
    ``recorded`` instead of running it.

    Every ``op.*`` call builds an operation object and hands it to ``invoke()``,
    so recording there sees exactly what the script asks for, batch blocks included.
    Alembic's ``op`` module calls the methods of the installed instance, so replacing
    them on that instance is enough.
    """
    migration_context = operations.migration_context
    bind = OfflineBind(migration_context.dialect)

    def invoke(operation: MigrateOperation) -> Any:
        recorded.append(operation)
        if isinstance(operation, ops.CreateTableOp):
            # Scripts keep the returned Table for op.bulk_insert().
            return operation.to_table(migration_context)
        return None

    @contextmanager
    def batch_alter_table(table_name: str, schema: str | None = None, **kw: Any) -> Iterator[BatchOperations]:
        yield _RecordingBatchOperations(migration_context, _BatchTarget(table_name, schema), invoke, bind)

    operations.invoke = invoke  # type: ignore[method-assign]
    operations.batch_alter_table = batch_alter_table  # type: ignore[method-assign]
    operations.get_bind = lambda: bind  # type: ignore[assignment,method-assign,return-value]


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


def is_multidb_script(revision: Script) -> bool:
    """Whether a revision script is a multi-database one: ``upgrade(engine_name)`` dispatches to
    one ``upgrade_<bind>()`` per database.

    Every multi-database template writes ``upgrade_()`` for the default database, so that
    function tells; the signature alone does not: a decorator without ``functools.wraps``
    turns any ``upgrade()`` into ``wrapper(*args, **kwargs)``.
    """
    import inspect

    module = revision.module
    if callable(getattr(module, "upgrade_", None)):
        return True
    try:
        # A hand-written dispatcher without upgrade_(); inspect follows functools.wraps.
        return "engine_name" in inspect.signature(module.upgrade).parameters
    except (TypeError, ValueError):
        return False


class CaptureError(Exception):
    """The script raised while its operations were being recorded."""


def capture(fn: Callable[[], Any], dialect: str) -> list[MigrateOperation]:
    """Call a script's ``upgrade`` or ``downgrade`` with ``alembic.op`` recording, and return the ops.

    Runs offline (``as_sql``) for ``dialect``, so nothing touches a database;
    ``op.get_bind()`` gives an :class:`OfflineBind`, whose queries find no rows.

    :raises CaptureError: the function raised; the message says what.
    """
    from flask_evolve.runtime.operations import register_script_operations

    register_script_operations()
    with quiet_alembic():
        context = MigrationContext.configure(
            dialect_name=dialect, opts={"as_sql": True, "output_buffer": io.StringIO()}
        )
    recorded: list[MigrateOperation] = []
    failure: Exception | None = None
    with Operations.context(context) as operations:
        record_into(operations, recorded)
        # Caught inside the block: Operations.context() removes its `op` only when the block ends normally.
        try:
            fn()
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise CaptureError(f"{type(failure).__name__}: {failure}") from failure
    return recorded
