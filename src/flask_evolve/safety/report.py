"""The risk report: the changes of an op tree grouped by table, each flagged with the rules it trips."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask_evolve.safety.rules import RULES, Finding, filled_column, findings_per_operation, measure

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation

    from flask_evolve.autogen.pipeline import RewriteContext

#: Key in ``alembic.config.Config.attributes`` where the migrate-time report is left for the command.
REPORT_ATTRIBUTE = "flask_evolve.risk_report"

_COLOURS = {"error": "red", "warning": "yellow", "notice": "cyan"}


def describe(operation: Any) -> str:
    """A short phrase for one operation: ``add column age``, ``drop index ix_name`` …"""
    from alembic.operations import ops

    if isinstance(operation, ops.CreateTableOp):
        return "create table"
    if isinstance(operation, ops.DropTableOp):
        return "drop table"
    if isinstance(operation, ops.RenameTableOp):
        return f"rename table to {operation.new_table_name}"
    if isinstance(operation, ops.AddColumnOp):
        return f"add column {operation.column.name}"
    if isinstance(operation, ops.DropColumnOp):
        return f"drop column {operation.column_name}"
    if isinstance(operation, ops.AlterColumnOp):
        changes = []
        if operation.modify_name:
            changes.append(f"rename to {operation.modify_name}")
        if operation.modify_type is not None:
            changes.append("type")
        if operation.modify_nullable is not None:
            changes.append("NOT NULL" if operation.modify_nullable is False else "NULL")
        if operation.modify_server_default is not False:
            changes.append("server default")
        if operation.modify_comment is not False:
            changes.append("comment")
        return f"alter column {operation.column_name} ({', '.join(changes) or 'no change'})"
    if isinstance(operation, ops.CreateIndexOp):
        return f"create {'unique ' if operation.unique else ''}index {operation.index_name}"
    if isinstance(operation, ops.DropIndexOp):
        return f"drop index {operation.index_name}"
    if isinstance(operation, ops.CreateForeignKeyOp):
        return f"add foreign key {operation.constraint_name or ''} → {operation.referent_table}".replace(
            "  ", " "
        )
    if isinstance(operation, ops.CreateUniqueConstraintOp):
        return f"add unique constraint {operation.constraint_name or ''}".rstrip()
    if isinstance(operation, ops.AddConstraintOp):
        return f"add {operation.constraint_type} constraint"
    if isinstance(operation, ops.DropConstraintOp):
        return f"drop constraint {operation.constraint_name}"
    if isinstance(operation, ops.ExecuteSQLOp):
        from flask_evolve.autogen.rename_ops import RenameObjectOp

        if isinstance(operation, RenameObjectOp):
            return f"rename {operation.kind} {operation.old} to {operation.new}"
        from flask_evolve.autogen.guards import FollowSequenceTypeOp

        if isinstance(operation, FollowSequenceTypeOp):
            return f"sequence of {operation.column_name} follows it to {operation.type_sql}"
        fill = filled_column(operation)
        return f"fill the NULLs of {fill[1]} (--fill)" if fill else "execute SQL"
    if type(operation).__name__ == "SyncEnumValuesOp":  # alembic-postgresql-enum's
        added = [v for v in operation.new_values if v not in operation.old_values]
        removed = [v for v in operation.old_values if v not in operation.new_values]
        changes = [f"add {', '.join(map(repr, added))}"] if added else []
        changes += [f"remove {', '.join(map(repr, removed))}"] if removed else []
        return f"enum {operation.name}: {'; '.join(changes) or 'reorder values'}"
    from flask_evolve.runtime.archive_ops import ArchiveTableOp

    if isinstance(operation, ArchiveTableOp):
        return "drop table (moved into the archive for the downgrade)"
    # Our own operations (archive_columns, restore_rows, …): their name in words, and what they touch.
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(operation).__name__.removesuffix("Op")).lower()
    columns = getattr(operation, "columns", None)
    detail = f" {', '.join(columns)}" if columns else ""
    if getattr(operation, "on", None) == "downgrade" and words.startswith("restore"):
        detail += " (what an earlier downgrade kept, if anything)"
    return f"{words}{detail}"


def _bookkeeping(operation: Any) -> bool:
    """Our own checks around a change (foreign keys after a rebuild, values before a type change, the
    archive before a restore) and restores of what an earlier downgrade kept: nothing a reader decides on."""
    from flask_evolve.autogen.guards import CheckForeignKeysOp, EnsureLosslessTypeChangeOp
    from flask_evolve.runtime.archive_ops import (
        CheckArchiveOp,
        RestoreColumnsOp,
        RestoreRowsOp,
        RestoreValuesOp,
    )

    if isinstance(operation, CheckForeignKeysOp | EnsureLosslessTypeChangeOp | CheckArchiveOp):
        return True
    restores = (RestoreColumnsOp, RestoreRowsOp, RestoreValuesOp)
    return isinstance(operation, restores) and operation.on == "downgrade"


def _table(operation: Any) -> str:
    fill = filled_column(operation)
    if fill:
        return fill[0]
    return str(getattr(operation, "table_name", None) or getattr(operation, "source_table", None) or "")


@dataclass
class Change:
    """One operation and the findings it raised."""

    table: str
    description: str
    findings: list[Finding] = field(default_factory=list)


@dataclass
class RiskReport:
    """The changes of one migration (or several), in order, with their findings."""

    changes: list[Change]
    measured: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for change in self.changes for f in change.findings]

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [
                {
                    "table": c.table,
                    "change": c.description,
                    "findings": [f.as_dict() for f in c.findings],
                }
                for c in self.changes
            ],
            "findings": [f.as_dict() for f in self.findings],
        }

    def render(self, *, colour: bool = False, title: str = "Risk report") -> str:
        """The report as text: one block per table, one line per change, its findings under it."""
        style = _styler(colour)
        if not self.changes:
            return f"{title}: no changes."
        findings = self.findings
        tally = {sev: sum(f.severity == sev for f in findings) for sev in ("error", "warning", "notice")}
        counts = ", ".join(f"{n} {sev}{'s' if n > 1 else ''}" for sev, n in tally.items() if n)
        lines = [f"{title}: {len(self.changes)} change(s), {counts or 'no risks found'}."]
        by_table: dict[str, list[Change]] = {}
        for change in self.changes:
            by_table.setdefault(change.table or "(no table)", []).append(change)
        for table, changes in by_table.items():
            lines.append(f"  {style(table, bold=True)}")
            for change in changes:
                ids = " ".join(sorted({f.rule for f in change.findings}))
                worst = _worst(change.findings)
                flag = f"  [{style(ids, fg=_COLOURS[worst])}]" if ids and worst else ""
                lines.append(f"    {change.description}{flag}")
                for finding in change.findings:
                    label = style(f"{finding.rule} {finding.severity}", fg=_COLOURS[finding.severity])
                    lines.append(f"      {label}: {finding.message}")
        lines += [f"Warning: {note}" for note in self.notes]
        return "\n".join(lines)


def _worst(findings: Sequence[Finding]) -> str | None:
    from flask_evolve.safety.rules import SEVERITIES

    if not findings:
        return None
    return max((f.severity for f in findings), key=SEVERITIES.index)


_ANSI = {"red": "31", "yellow": "33", "cyan": "36", "green": "32"}


def _styler(colour: bool) -> Any:
    """``style(text, fg=..., bold=...)``: ANSI colour when ``colour``, the plain text otherwise."""

    def style(text: str, fg: str | None = None, bold: bool = False) -> str:
        if not colour:
            return text
        codes = ([_ANSI[fg]] if fg else []) + (["1"] if bold else [])
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text

    return style


def build_report(
    operations: Iterable[MigrateOperation],
    dialect: str,
    *,
    connection: Any = None,
    revision: str | None = None,
    ignore: Iterable[str] = (),
) -> RiskReport:
    """Run the rules over ``operations`` and attach each finding to the change that raised it.

    :param connection: the live database; when given, findings gain row counts.
    """
    changes = []
    for operation, found in findings_per_operation(operations, dialect, revision=revision, ignore=ignore):
        if _bookkeeping(operation) and not found:
            continue
        if connection is not None:
            found = measure(found, connection)
        changes.append(Change(_table(operation), describe(operation), found))
    return RiskReport(changes, measured=connection is not None)


def rule_catalogue() -> list[dict[str, Any]]:
    """Every rule, for documentation and ``lint --rules``."""
    return [
        {
            "id": r.id,
            "name": r.name,
            "severity": r.severity,
            "category": r.category,
            "dialects": list(r.dialects) or ["all"],
            "doc": r.doc,
        }
        for r in RULES.values()
    ]


def risk_report(ctx: RewriteContext) -> None:
    """Rewriter placed last: reads the final op tree, never changes it, leaves a report for `migrate`."""
    context = ctx.migration_context
    dialect = context.dialect.name
    connection = context.connection if not context.as_sql else None
    ignore = ctx.options.get("lint_ignore") or ()
    report = build_report(ctx.upgrade_ops.ops, dialect, connection=connection, ignore=ignore)
    config = context.config
    if config is not None:
        reports: list[RiskReport] = config.attributes.setdefault(REPORT_ATTRIBUTE, [])
        reports.append(report)
    if report.changes and connection is not None:
        from flask_evolve.safety.diagnostics import warn_first_revision_over_existing_tables

        warning = warn_first_revision_over_existing_tables(context)
        if warning:
            report.notes.append(warning)
