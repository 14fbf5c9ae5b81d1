"""The autogenerate pipeline: our rewriters over Alembic's op tree, in a fixed order, then the user's hook."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableSequence, Sequence
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
    """The rewriters, in the order they run: names PostgreSQL would cut short (refused), a
    canonical order for what Alembic finds in set order, renames, column CHECKs of new tables,
    constraint names, NOT NULL on populated tables (refused, or filled with ``--fill``),
    archive-before-drop, re-added NOT NULL columns, type-change guards, SQLite planning."""
    from flask_evolve.autogen.archive import archive_before_drop
    from flask_evolve.autogen.checks import keep_column_checks
    from flask_evolve.autogen.guards import guard_type_changes
    from flask_evolve.autogen.identifiers import refuse_names_cut_short
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
        refuse_names_cut_short,
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


def _take_env_hook(context: MigrationContext, app_hook: ProcessRevisionDirectives | None) -> Any:
    """The hook Alembic would call after ours (the env.py's, or the app's through
    ``configure_args``), taken from the context so that we call it, once, in our order.

    Under an env.py that never passes ``configure_args`` (Flask-Migrate before 1.4), the
    app's own hook is called from here instead.
    """
    hook = context.opts.get("process_revision_directives")
    if hook is not None:
        context.opts["process_revision_directives"] = None
    return hook or app_hook


def _env_passes_configure_args(context: MigrationContext, configure_args: Mapping[str, Any]) -> bool:
    # The list object itself: an env.py that spreads configure_args hands Alembic this very one.
    return context.opts.get("autogenerate_plugins") is configure_args.get("autogenerate_plugins")


#: Said once per process: the env.py leaves out what ``configure_args`` carries.
_WARNED_NO_CONFIGURE_ARGS: list[bool] = []


def _drop_archive_table_ops(script: MigrationScript) -> None:
    """Take out what autogenerate proposed for the archive's tables (they have no models):
    without our ``include_name`` it would drop them, and the rows they keep for downgrades."""
    from flask_evolve.runtime.archive_ops import is_archive_table

    for ops_list in (script.upgrade_ops_list, script.downgrade_ops_list):
        for container in ops_list[-1:]:
            container.ops[:] = [
                op for op in container.ops if not is_archive_table(getattr(op, "table_name", None))
            ]


def _warn_no_configure_args() -> None:
    if _WARNED_NO_CONFIGURE_ARGS:
        return
    _WARNED_NO_CONFIGURE_ARGS.append(True)
    import sys

    # Straight to stderr: such an env.py's fileConfig() decides where log lines go, or drops them.
    sys.stderr.write(
        "Warning: this env.py does not pass current_app.extensions['migrate'].configure_args to "
        "context.configure(), so server defaults, CHECK constraints and comments are not compared "
        "and Migrate(...) options are ignored: add **current_app.extensions['migrate'].configure_args "
        "to its context.configure() calls, or replace it with Flask-Evolve's env.py "
        "(`flask db init` in a new folder).\n"
    )


def make_process_revision_directives(
    user_hook: ProcessRevisionDirectives | None,
    rewriters: Sequence[Rewriter] | None = None,
    database_names: Callable[[], Sequence[str]] | None = None,
    configure_args: Mapping[str, Any] | None = None,
) -> ProcessRevisionDirectives:
    """Build the ``process_revision_directives`` hook that commands pass to Alembic's ``command.revision()``.

    Our rewriters run first, then the env.py's own hook or the app's (if any; Alembic
    would call it right after ours, so we call it here instead, once), and last the
    check that drops an autogenerated revision with no operations.

    :param user_hook: the app's own ``process_revision_directives``, if any.
    :param rewriters: the rewriters to run; :data:`REWRITERS` by default.
    :param database_names: the bind names of a multi-database app, so that an
        empty revision is judged only once every database was compared.
    :param configure_args: ``app.extensions['migrate'].configure_args``, to tell an env.py
        that never passes them to ``context.configure()`` (its archive tables are then taken
        out of the script here, and the user is told what else is lost).
    """
    chosen: Sequence[Rewriter] | None = rewriters

    def process_revision_directives(
        context: MigrationContext, revision: Any, directives: MutableSequence[Any]
    ) -> None:
        from flask_evolve.runtime.logs import keep_progress_visible

        # An env.py that never reads configure_args (which does this) disabled our logger.
        keep_progress_visible()
        autogenerate = _is_autogenerate(context)
        env_hook = _take_env_hook(context, user_hook)
        rewrite_context: RewriteContext | None = None
        if autogenerate and directives:
            if configure_args is not None and not _env_passes_configure_args(context, configure_args):
                _warn_no_configure_args()
                _drop_archive_table_ops(directives[0])
            options = {}
            if context.config is not None:
                options = dict(context.config.attributes.get(OPTIONS_ATTRIBUTE, {}))
            rewrite_context = RewriteContext(context, directives[0], options)
            # The rewriters are imported only when a script is generated, not on `upgrade`.
            for rewriter in _default_rewriters() if chosen is None else chosen:
                rewriter(rewrite_context)
        # An env.py's own hook (Flask-Migrate's drop empty revisions) is left out when ours
        # drops this one below anyway; the app's own hook always runs, it may add operations.
        dropped_anyway = (
            env_hook is not user_hook
            and autogenerate
            and bool(directives)
            and _all_compared_and_empty(context, directives[0], database_names)
        )
        if env_hook is not None and directives and not dropped_anyway:
            # Flask-Migrate's hooks read directives[0]: never call them on a dropped revision.
            env_hook(context, revision, directives)
            if autogenerate and not directives:
                # The env.py's hook dropped an empty revision (and said so).
                _explain_no_changes(context)
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
