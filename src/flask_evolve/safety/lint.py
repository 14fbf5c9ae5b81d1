"""`lint`: the risk rules over existing revision scripts, from the operations each script emits."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask_evolve.safety.capture import CaptureError, capture, is_multidb_script
from flask_evolve.safety.rules import RULES, SEVERITIES, Finding, at_or_above, check_operations

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.operations.ops import MigrateOperation
    from alembic.script import Script

#: ``# flask-evolve: allow EV102, EV401`` (IDs or rule names) in a revision script silences those rules there.
MARKER = re.compile(r"#\s*flask-evolve:\s*allow\s+([\w\-, ]+)", re.IGNORECASE)


def allowed_rules(source: str) -> set[str]:
    """The rule IDs a script's marker comments silence."""
    by_name = {rule.name: rule.id for rule in RULES.values()}
    allowed: set[str] = set()
    for match in MARKER.finditer(source):
        for word in re.split(r"[,\s]+", match.group(1).strip()):
            if word:
                allowed.add(by_name.get(word.lower(), word.upper()))
    return allowed


@dataclass
class LintResult:
    """Findings over a range of revisions, and the scripts whose operations could not be captured."""

    revisions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    uncaptured: dict[str, str] = field(default_factory=dict)

    def failing(self, fail_on: str) -> list[Finding]:
        return at_or_above(self.findings, fail_on)

    def failed(self, fail_on: str) -> bool:
        """A finding at or above ``fail_on``, or a revision that could not be checked: never a pass."""
        return bool(self.failing(fail_on) or self.uncaptured)

    def as_dict(self, fail_on: str = "error") -> dict[str, Any]:
        return {
            "revisions": self.revisions,
            "findings": [f.as_dict() for f in self.findings],
            "uncaptured": self.uncaptured,
            "fail_on": fail_on,
            "failed": self.failed(fail_on),
        }

    def to_json(self, fail_on: str = "error") -> str:
        return json.dumps(self.as_dict(fail_on), indent=2)

    def render(self, fail_on: str = "error") -> str:
        lines = []
        for finding in self.findings:
            lines.append(f"{finding.revision}  {finding.rule} {finding.severity:<7}  {finding.message}")
        for revision, reason in self.uncaptured.items():
            lines.append(f"{revision}  not checked: its upgrade() could not be captured ({reason})")
        tally = {s: sum(f.severity == s for f in self.findings) for s in reversed(SEVERITIES)}
        counts = ", ".join(f"{n} {s}{'s' if n > 1 else ''}" for s, n in tally.items() if n) or "no findings"
        failing, unchecked = len(self.failing(fail_on)), len(self.uncaptured)
        reasons = [f"{failing} at or above {fail_on}"] if failing else []
        if unchecked:
            reasons.append(f"{unchecked} revision{'s' if unchecked > 1 else ''} not checked")
        verdict = f"FAILED ({', '.join(reasons)})" if reasons else "OK"
        lines.append(f"lint: {verdict}: {counts} in {len(self.revisions)} revision(s).")
        return "\n".join(lines)


def select_revisions(config: Config, rev_range: str | None) -> list[Script]:
    """The revisions of ``rev_range`` (``start:end``, ``start:``, ``:end``, one, or all); oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    if rev_range is None:
        start, end = "base", "heads"
    elif ":" in rev_range:
        start, end = rev_range.split(":", 1)
        start, end = start or "base", end or "heads"
    else:
        one = script.get_revision(rev_range)
        return [one] if one is not None else []
    return list(reversed(list(script.walk_revisions(start, end))))


def lint_script(revision: Script, dialect: str, ignore: Iterable[str] = ()) -> list[Finding]:
    """The findings of one revision script's upgrade(), minus the rules it or the app silences.

    :raises CaptureError: the script's upgrade() could not be run offline.
    """
    with open(revision.path, encoding="utf-8") as f:
        silenced = allowed_rules(f.read()) | set(ignore)
    operations = [op for fn in upgrade_functions(revision) for op in capture(fn, dialect)]
    return check_operations(
        read_rebuilds(operations, tables_before(revision, dialect)),
        dialect,
        revision=revision.revision,
        ignore=silenced,
    )


def tables_before(revision: Script, dialect: str) -> dict[str, list[str]]:
    """The columns each table rebuilt by the script's ``downgrade()`` has once it ran: the tables
    as they were before ``upgrade()``, which the upgrade's own rebuild does not list.

    A script written without the archive (``migrate --no-archive``) drops a column in a rebuild by
    leaving it out of the row copy, and only the downgrade, which rebuilds the old table, names it.
    A downgrade that cannot be captured tells nothing (``{}``); the upgrade alone is still checked.
    """
    try:
        operations = [op for fn in script_functions(revision, "downgrade") for op in capture(fn, dialect)]
    except (CaptureError, AttributeError):  # AttributeError: a script without downgrade()
        return {}
    created: dict[str, list[str]] = {}
    for operation in operations:
        found = _rebuilt_table(operation)
        if found is not None:
            created[found[0]] = found[1]  # the last rebuild of a table leaves it as it was
    return created


#: The new table of a SQLite table rebuild as ``migrate`` writes it (sqlite_plan.rebuild_statements).
_REBUILD_CREATE = re.compile(r'CREATE TABLE (?P<temp>"(?:[^"]|"")+"|\S+)\s*\(.*\)\s*', re.DOTALL)


def _rebuilt_table(operation: MigrateOperation) -> tuple[str, list[str]] | None:
    """``(table, columns)`` when ``operation`` is the CREATE TABLE of a rebuild of ``table``."""
    import sqlite3

    from alembic.operations import ops

    from flask_evolve.autogen.sqlite_plan import REBUILD_PREFIX

    sql = getattr(operation, "sqltext", None) if isinstance(operation, ops.ExecuteSQLOp) else None
    create = _REBUILD_CREATE.fullmatch(sql.strip()) if isinstance(sql, str) else None
    temp = _unquoted(create["temp"]) if create else ""
    if create is None or not temp.startswith(REBUILD_PREFIX):
        return None
    # SQLite itself reads the definition, in an empty in-memory database: no hand-made parser.
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(sql)
        columns = [row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (temp,))]
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return temp[len(REBUILD_PREFIX) :], columns


#: The row copy of a SQLite table rebuild as ``migrate`` writes it (sqlite_plan.rebuild_statements).
_ROW_COPY = re.compile(
    r'INSERT INTO (?P<temp>"(?:[^"]|"")+"|\S+) \((?P<names>.*?)\) SELECT (?P<exprs>.*) '
    r'FROM (?P<table>"(?:[^"]|"")+"|\S+)',
    re.DOTALL,
)


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def read_rebuilds(
    operations: list[MigrateOperation], before: dict[str, list[str]] | None = None
) -> list[MigrateOperation]:
    """The captured ops, with each SQLite table rebuild of a generated script (plain ``op.execute``
    statements) read back into the column changes it makes, for the rules to see: a renamed column
    from the row copy (``SELECT old`` into ``new``), a dropped one from the ``archive_columns`` before
    the rebuild (archived, then left out of the copy) or, without the archive, a column the table had
    (``before``: see :func:`tables_before`) that the copy leaves out."""
    from alembic.operations import ops
    from sqlalchemy.dialects import sqlite

    from flask_evolve.autogen.sqlite_plan import REBUILD_PREFIX, _top_level_items
    from flask_evolve.runtime.archive_ops import ArchiveColumnsOp, ArchiveValuesOp

    quote = sqlite.dialect().identifier_preparer.quote
    archived: dict[str, list[str]] = {}
    # Each table's columns as its next rebuild finds them: before the upgrade, then as a rebuild left it.
    columns = {table: list(names) for table, names in (before or {}).items()}
    created: tuple[str, list[str]] | None = None  # the new table of the rebuild under way
    read: list[MigrateOperation] = []
    for operation in operations:
        read.append(operation)
        if isinstance(operation, ArchiveColumnsOp) and not isinstance(operation, ArchiveValuesOp):
            archived.setdefault(operation.table_name, []).extend(operation.columns)
        _follow_columns(columns, operation)
        created = _rebuilt_table(operation) or created
        sql = getattr(operation, "sqltext", None) if isinstance(operation, ops.ExecuteSQLOp) else None
        copy = _ROW_COPY.fullmatch(sql.strip()) if isinstance(sql, str) else None
        table = _unquoted(copy["table"]) if copy else ""
        if copy is None or _unquoted(copy["temp"]) != REBUILD_PREFIX + table:
            continue
        names = [_unquoted(n) for n in _top_level_items(f"({copy['names']})")]
        exprs = _top_level_items(f"({copy['exprs']})")
        sources = set()
        for name, expr in zip(names, exprs, strict=False):
            if not (expr.startswith('"') or quote(expr) == expr):
                continue  # a new column's default value (a literal, CURRENT_TIMESTAMP ...)
            source = _unquoted(expr)
            sources.add(source)
            if source != name:
                read.append(ops.AlterColumnOp(table, source, modify_name=name))
        kept_in_archive = archived.get(table, [])
        had = kept_in_archive + [c for c in columns.get(table, []) if c not in kept_in_archive]
        dropped = {(o.table_name, o.column_name) for o in read if isinstance(o, ops.DropColumnOp)}
        read += [ops.DropColumnOp(table, c) for c in had if c not in sources and (table, c) not in dropped]
        if created is not None and created[0] == table:
            columns[table] = created[1]
        created = None
    return read


def _follow_columns(columns: dict[str, list[str]], operation: MigrateOperation) -> None:
    """Keep ``columns`` (of the tables whose columns are known) up to date across the plain column
    operations between rebuilds: a column renamed before a rebuild is copied under its new name."""
    from alembic.operations import ops

    known = columns.get(getattr(operation, "table_name", None) or "")
    if known is None:
        return
    if isinstance(operation, ops.AlterColumnOp) and operation.modify_name:
        known[:] = [operation.modify_name if c == operation.column_name else c for c in known]
    elif isinstance(operation, ops.AddColumnOp) and operation.column.name not in known:
        known.append(operation.column.name)
    elif isinstance(operation, ops.DropColumnOp) and operation.column_name in known:
        known.remove(operation.column_name)


def upgrade_functions(revision: Script) -> list[Any]:
    """``upgrade``, or in a multi-database script the ``upgrade_<bind>`` functions it dispatches to."""
    return script_functions(revision, "upgrade")


def script_functions(revision: Script, direction: str) -> list[Any]:
    """``upgrade``/``downgrade`` (``direction``), or in a multi-database script the
    ``<direction>_<bind>`` functions it dispatches to."""
    module = revision.module
    if is_multidb_script(revision):
        return [
            getattr(module, name)
            for name in sorted(dir(module))
            if name.startswith(direction + "_") and callable(getattr(module, name))
        ]
    return [getattr(module, direction)]


def lint(
    config: Config, dialect: str, rev_range: str | None = None, ignore: Iterable[str] = ()
) -> LintResult:
    """Run the rules over each revision of ``rev_range`` for ``dialect``."""
    result = LintResult()
    ignored = tuple(ignore)
    for revision in select_revisions(config, rev_range):
        result.revisions.append(revision.revision)
        try:
            result.findings.extend(lint_script(revision, dialect, ignored))
        except CaptureError as exc:
            result.uncaptured[revision.revision] = str(exc)
    return result
