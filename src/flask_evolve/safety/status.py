"""`status`: where the database is, what is pending and how risky it is, and whether the schema drifted."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flask_evolve.errors import hide_credentials
from flask_evolve.runtime.archive_store import ArchivedTable, human_size, list_archive
from flask_evolve.safety.capture import CaptureError
from flask_evolve.safety.drift import drift, recorded_revisions, version_table_of
from flask_evolve.safety.lint import lint_script
from flask_evolve.safety.report import _styler
from flask_evolve.safety.rules import SEVERITIES, Finding, measure

if TYPE_CHECKING:
    from alembic.config import Config

_COLOURS = {"error": "red", "warning": "yellow", "notice": "cyan"}


@dataclass
class Pending:
    revision: str
    message: str
    findings: list[Finding] = field(default_factory=list)
    uncaptured: str | None = None


@dataclass
class Status:
    current: tuple[str, ...] | None
    heads: tuple[str, ...]
    pending: list[Pending]
    drift: list[str] | None
    drift_error: str | None = None
    drift_checked: bool = True
    archive: list[ArchivedTable] = field(default_factory=list)
    #: How the user calls the migration commands, for the hints.
    command: str = "flask db"

    @property
    def not_checked(self) -> list[str]:
        """What status was asked to check and could not: never reported as a pass."""
        reasons = []
        uncaptured = sum(p.uncaptured is not None for p in self.pending)
        if uncaptured:
            reasons.append(
                f"the risks of {uncaptured} pending revision{'s' if uncaptured > 1 else ''} "
                "(their upgrade() could not be run offline)"
            )
        if self.drift_error:
            reasons.append(f"drift ({self.drift_error})")
        return reasons

    @property
    def archive_bytes(self) -> int | None:
        """The archive's size on disk, or None when the database cannot tell."""
        sizes = [t.size for t in self.archive]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": list(self.current) if self.current is not None else None,
            "heads": list(self.heads),
            "up_to_date": self.current is not None and set(self.current) == set(self.heads),
            "pending": [
                {
                    "revision": p.revision,
                    "message": p.message,
                    "findings": [f.as_dict() for f in p.findings],
                    "uncaptured": p.uncaptured,
                }
                for p in self.pending
            ],
            "drift": None if self.drift is None else bool(self.drift),
            "drift_details": self.drift or [],
            "drift_error": self.drift_error,
            "drift_checked": self.drift_checked,
            "complete": not self.not_checked,
            "not_checked": self.not_checked,
            "archive": {
                "tables": [
                    {
                        "name": t.name,
                        "database": t.bind,
                        "revision": t.revision,
                        "dropped_by": t.on,
                        "kept": t.what,
                        "rows": t.rows,
                        "bytes": t.size,
                    }
                    for t in self.archive
                ],
                "rows": sum(t.rows for t in self.archive),
                "bytes": self.archive_bytes,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def render(self, *, colour: bool = False) -> str:
        style = _styler(colour)
        if self.current is None:
            current = style("none (no version table: never migrated or stamped)", fg="yellow")
        else:
            current = ", ".join(self.current) or "base (empty)"
        lines = [f"Current revision: {current}", f"Head revision:    {', '.join(self.heads) or 'none'}"]
        if not self.pending:
            lines.append(f"Pending:          {style('none, the database is up to date', fg='green')}")
        else:
            lines.append(f"Pending:          {len(self.pending)} migration(s)")
            for p in self.pending:
                ids = sorted({f.rule for f in p.findings})
                worst = max((f.severity for f in p.findings), key=SEVERITIES.index, default=None)
                flags = f"  [{style(' '.join(ids), fg=_COLOURS[worst])}]" if worst else ""
                lines.append(f"  {p.revision}  {p.message}{flags}")
                for f in p.findings:
                    lines.append(f"      {style(f.rule, fg=_COLOURS[f.severity])} {f.message}")
                if p.uncaptured:
                    lines.append(f"      not checked: {p.uncaptured}")
        if not self.drift_checked:
            lines.append("Drift:            not checked")
        elif self.drift_error:
            lines.append(f"Drift:            {style('not checked', fg='red')} ({self.drift_error})")
        elif self.drift is None:
            lines.append("Drift:            unknown (no recorded revision)")
        elif self.drift:
            lines.append(f"Drift:            {style('yes', fg='red')}")
            lines += [f"  {d}" for d in self.drift]
        else:
            lines.append(f"Drift:            {style('no', fg='green')}")
        if not self.archive:
            lines.append("Archive:          empty")
        else:
            rows = sum(t.rows for t in self.archive)
            size = style(human_size(self.archive_bytes), fg="cyan", bold=True)
            databases = len({t.bind for t in self.archive})
            where = f" in {databases} databases" if databases > 1 else ""
            lines.append(
                f"Archive:          {size} in {len(self.archive)} table(s){where}, {rows} row(s) "
                f"kept for downgrades (`{self.command} archive` lists them, `--purge` deletes them)"
            )
        if self.not_checked:
            lines.append(style(f"Not checked: {'; '.join(self.not_checked)}.", fg="red"))
        return "\n".join(lines)


def status(
    config: Config,
    live: sa.Engine,
    *,
    ignore: Iterable[str] = (),
    check_drift: bool = True,
    scratch_url: str | None = None,
    compare_args: Mapping[str, Any] | None = None,
    archive: list[ArchivedTable] | None = None,
) -> Status:
    """Gather the status of ``live`` against the migrations folder of ``config``.

    :param compare_args: the app's ``context.configure()`` arguments (version
        table, include filters), which the drift check honours.
    :param archive: the archive tables of every database of the app; ``None``:
        those of ``live``.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    heads = tuple(sorted(script.get_heads()))
    with live.connect() as connection:
        current = recorded_revisions(connection, version_table_of(compare_args))
    upper = set(current or ())
    pending: list[Pending] = []
    for revision in reversed(list(script.walk_revisions("base", "heads"))):
        if upper and (revision.revision in upper or _is_ancestor(script, revision.revision, upper)):
            continue
        entry = Pending(revision.revision, revision.doc or "")
        try:
            entry.findings = lint_script(revision, live.dialect.name, ignore)
        except CaptureError as exc:
            entry.uncaptured = str(exc)
        if entry.findings:
            with live.connect() as connection:
                entry.findings = measure(entry.findings, connection)
        pending.append(entry)
    if archive is None:
        with live.connect() as connection:
            archive = list_archive(connection, [r.revision for r in script.walk_revisions()])
    result = Status(current, heads, pending, None, drift_checked=check_drift, archive=archive)
    if check_drift:
        try:
            result.drift = drift(config, live, scratch_url, compare_args=compare_args)
        except Exception as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.drift_error = hide_credentials(line)
    return result


def _is_ancestor(script: Any, revision: str, descendants: set[str]) -> bool:
    for descendant in descendants:
        for ancestor in script.iterate_revisions(descendant, "base"):
            if ancestor.revision == revision:
                return True
    return False
