"""The autogenerate pipeline: our rewriters over Alembic's op tree, in a fixed order, then the user's hook."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.operations.ops import DowngradeOps, MigrationScript, UpgradeOps
    from alembic.runtime.migration import MigrationContext

log = logging.getLogger("flask_evolve")

ProcessRevisionDirectives = Callable[["MigrationContext", Any, MutableSequence[Any]], None]

#: Key in ``alembic.config.Config.attributes`` under which a command passes
#: per-invocation options (``--rename``, ``--no-renames`` …) to the pipeline.
OPTIONS_ATTRIBUTE = "flask_evolve.options"


@dataclass
class RewriteContext:
    """What a rewriter may read: the live connection's context and the options in force.

    In a multi-database script, ``upgrade_ops`` and ``downgrade_ops`` are those of
    the database being compared now; the others were rewritten already.
    """

    migration_context: MigrationContext
    script: MigrationScript
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def upgrade_ops(self) -> UpgradeOps:
        return self.script.upgrade_ops_list[-1]

    @property
    def downgrade_ops(self) -> DowngradeOps:
        return self.script.downgrade_ops_list[-1]

    def note(self, message: str) -> None:
        """Record a line for the user; printed after the script is written."""
        self.notes.append(message)
        log.info(message)


Rewriter = Callable[["RewriteContext"], None]


def _default_rewriters() -> list[Rewriter]:
    """The rewriters, in the order they run: a canonical order for what Alembic finds in set order,
    renames, column CHECKs of new tables, constraint names, NOT NULL on populated tables (refused,
    or filled with ``--fill``), archive-before-drop, re-added NOT NULL columns, type-change guards,
    SQLite planning."""
    from flask_evolve.autogen.archive import archive_before_drop
    from flask_evolve.autogen.checks import keep_column_checks
    from flask_evolve.autogen.guards import guard_type_changes
    from flask_evolve.autogen.naming import name_constraints
    from flask_evolve.autogen.not_null import fill_not_null
    from flask_evolve.autogen.ordering import order_unordered_ops
    from flask_evolve.autogen.renames import detect_renames
    from flask_evolve.autogen.restore_columns import restore_not_null_columns
    from flask_evolve.autogen.sqlite_plan import plan_sqlite

    # The canonical order comes first, so that every rewriter (rename pairing included) sees
    # the same tree whatever the hash seed. Archive before the SQLite plan, which must see the
    # archive ops; the plan stays last: it turns every other rewriter's ops into ALTERs or rebuilds.
    return [
        order_unordered_ops,
        detect_renames,
        keep_column_checks,
        name_constraints,
        fill_not_null,
        archive_before_drop,
        restore_not_null_columns,
        guard_type_changes,
        plan_sqlite,
    ]


def __getattr__(name: str) -> Any:
    # REWRITERS is built on first use: `upgrade`, `current` … import this module for its option
    # keys, and importing every rewriter (renames, SQLite planning …) cost each of them ~30 ms.
    if name == "REWRITERS":
        return _default_rewriters()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Key in ``Config.attributes`` where ``--dry-run`` leaves the rendered script instead of writing it.
DRY_RUN_ATTRIBUTE = "flask_evolve.dry_run_script"


def _readers() -> list[Rewriter]:
    """Steps that only read the final tree (after the user's hook): the risk report."""
    from flask_evolve.safety.report import risk_report

    return [risk_report]


def _explain_no_changes(context: MigrationContext) -> None:
    from flask_evolve.safety.diagnostics import explain_no_changes

    try:
        lines = explain_no_changes(context)
    except Exception as exc:  # A diagnostic must never break `migrate`.
        log.debug("could not explain the empty autogenerate: %s", exc)
        return
    for line in lines:
        log.warning(line)


def _render_dry_run(context: MigrationContext, script: MigrationScript) -> str:
    from alembic.autogenerate import render_python_code
    from alembic.runtime.migration import MigrationContext

    from flask_evolve.safety.capture import quiet_alembic

    # A context without the script directory: rendering needs only the dialect.
    with quiet_alembic():
        render_context = MigrationContext.configure(dialect=context.dialect)
    options = {
        "render_as_batch": bool(context.opts.get("render_as_batch")),
        "render_item": context.opts.get("render_item"),
        "user_module_prefix": context.opts.get("user_module_prefix"),
        "migration_context": render_context,
    }
    parts = []
    for up, down in zip(script.upgrade_ops_list, script.downgrade_ops_list, strict=True):
        parts.append("def upgrade():\n    " + render_python_code(up, **options))
        parts.append("def downgrade():\n    " + render_python_code(down, **options))
    return "\n\n".join(parts)


def _is_autogenerate(context: MigrationContext) -> bool:
    config = context.config
    return bool(config is not None and getattr(config.cmd_opts, "autogenerate", False))


def _all_compared(
    context: MigrationContext,
    script: MigrationScript,
    database_names: Callable[[], Sequence[str]] | None,
) -> bool:
    multidb = context.opts.get("upgrade_token") != "upgrades" and database_names is not None
    return not (multidb and len(script.upgrade_ops_list) < len(database_names()) + 1)  # type: ignore[misc]


def _all_compared_and_empty(
    context: MigrationContext,
    script: MigrationScript,
    database_names: Callable[[], Sequence[str]] | None,
) -> bool:
    # A multi-database env.py calls the hook once per database, each time with
    # one more UpgradeOps; judge emptiness only after the last one.
    multidb = context.opts.get("upgrade_token") != "upgrades" and database_names is not None
    if multidb and len(script.upgrade_ops_list) < len(database_names()) + 1:  # type: ignore[misc]
        return False
    return all(ops.is_empty() for ops in script.upgrade_ops_list)


def make_process_revision_directives(
    user_hook: ProcessRevisionDirectives | None,
    rewriters: Sequence[Rewriter] | None = None,
    database_names: Callable[[], Sequence[str]] | None = None,
) -> ProcessRevisionDirectives:
    """Build the ``process_revision_directives`` hook that env.py passes to Alembic.

    Our rewriters run first, then the user's own hook (if any), and last the
    check that drops an autogenerated revision with no operations.

    :param user_hook: the app's own ``process_revision_directives``, if any.
    :param rewriters: the rewriters to run; :data:`REWRITERS` by default.
    :param database_names: the bind names of a multi-database app, so that an
        empty revision is judged only once every database was compared.
    """
    chosen: Sequence[Rewriter] | None = rewriters

    def process_revision_directives(
        context: MigrationContext, revision: Any, directives: MutableSequence[Any]
    ) -> None:
        autogenerate = _is_autogenerate(context)
        rewrite_context: RewriteContext | None = None
        if autogenerate and directives:
            options = {}
            if context.config is not None:
                options = dict(context.config.attributes.get(OPTIONS_ATTRIBUTE, {}))
            rewrite_context = RewriteContext(context, directives[0], options)
            # The rewriters are imported only when a script is generated, not on `upgrade`.
            for rewriter in _default_rewriters() if chosen is None else chosen:
                rewriter(rewrite_context)
        if user_hook is not None:
            user_hook(context, revision, directives)
        if rewrite_context is not None and directives:
            for reader in _readers():
                try:
                    reader(rewrite_context)
                except Exception as exc:  # A report must never cost the user their migration.
                    log.warning("The risk report failed (%r); the script is unaffected.", exc)
        if (
            autogenerate
            and directives
            and _all_compared_and_empty(context, directives[0], database_names)
        ):
            directives[:] = []
            log.info("No changes in schema detected.")
            _explain_no_changes(context)
        elif (
            rewrite_context is not None
            and directives
            and rewrite_context.options.get("dry_run")
            and context.config is not None
            and _all_compared(context, directives[0], database_names)
        ):
            context.config.attributes[DRY_RUN_ATTRIBUTE] = _render_dry_run(context, directives[0])
            directives[:] = []

    process_revision_directives.flask_evolve = True  # type: ignore[attr-defined]
    return process_revision_directives
