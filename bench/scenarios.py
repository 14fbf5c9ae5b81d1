"""The benchmark scenarios: each sets up one project per tool, then measures them interleaved."""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from environments import Tool
from projects import Database, Project, sqlite_fill, wide_models

Log = Callable[[str], None]


@dataclass
class Row:
    """One line of the results table: the same measurement for both tools."""

    work: str
    db: str
    size: str
    unit: str
    values: dict[str, list[float]]
    #: Largest acceptable Flask-Evolve / Flask-Migrate ratio, or an absolute limit for Flask-Evolve.
    target: str = ""
    holds: bool | None = None
    note: str = ""

    def median(self, tool: str) -> float | None:
        values = self.values.get(tool)
        return statistics.median(values) if values else None


@dataclass
class Bench:
    """Settings of one benchmark run, and the rows it collected."""

    tools: list[Tool]
    root: Path
    reps: int
    heavy_reps: int
    log: Log
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> Tool:
        return self.tools[0]

    @property
    def candidate(self) -> Tool:
        return self.tools[1]

    def add(self, row: Row, *, ratio_at_most: float | None = None, at_most: float | None = None) -> Row:
        base, ours = row.median(self.baseline.name), row.median(self.candidate.name)
        if ratio_at_most is not None and base and ours is not None:
            row.target = f"ratio ≤ {_ratio(ratio_at_most)}"
            row.holds = ours <= base * ratio_at_most
        if at_most is not None and ours is not None:
            row.target = f"≤ {at_most:g}"
            row.holds = ours <= at_most
        self.rows.append(row)
        self.log(f"  {row.work} [{row.db} {row.size}]: " + ", ".join(
            f"{tool.name} {_fmt(row.median(tool.name))}" for tool in self.tools
        ))
        return row

    def interleaved(
        self, projects: dict[str, Project], measure: Callable[[Project], float], reps: int | None = None
    ) -> dict[str, list[float]]:
        """Measure each tool ``reps`` times, alternating tools (and their order) to spread machine noise."""
        values: dict[str, list[float]] = {name: [] for name in projects}
        names = list(projects)
        for rep in range(reps or self.reps):
            for name in names if rep % 2 == 0 else reversed(names):
                values[name].append(measure(projects[name]))
        return values


def _ratio(value: float) -> str:
    return f"1/{round(1 / value):g}" if value < 1 else f"{value:g}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _slug(tool: Tool) -> str:
    return tool.module.replace("_", "-")


def _new_versions(project: Project, before: list[Path]) -> list[Path]:
    return [p for p in project.versions() if p not in before]


def wide_schema(bench: Bench, make_db: Callable[[str], Database], n: int, *, upgrade: bool) -> None:
    """No-change ``flask db migrate`` over N tables: time, start-up, SQL statements, peak RSS; upgrade."""
    projects: dict[str, Project] = {}
    first_upgrades: dict[str, list[float]] = {}
    kind = ""
    for tool in bench.tools:
        database = make_db(f"wide{n}_{tool.module}")
        kind = database.kind
        project = Project(tool, database, bench.root, f"wide-{database.kind}-{n}-{_slug(tool)}")
        project.write_models(wide_models(n))
        bench.log(f"setting up {n} tables on {database.kind} for {tool.name}")
        project.flask("db", "init")
        project.migrate_untimed("-m", "initial")
        # The set-up's own upgrade is the first sample of "upgrade of the initial revision".
        first_upgrades[tool.name] = [project.flask("db", "upgrade").seconds]
        projects[tool.name] = project
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    size = f"N={n}"

    help_times = bench.interleaved(projects, lambda p: p.flask("db", "--help").seconds)
    rss: dict[str, list[float]] = {name: [] for name in projects}
    beyond: dict[str, list[float]] = {name: [] for name in projects}

    def migrate(project: Project) -> float:
        before = project.versions()
        run = project.flask("db", "migrate")
        written = _new_versions(project, before)
        if written:
            raise RuntimeError(
                f"{project.tool.name} found changes where there are none: {written[0]}\n{run.stderr[-3000:]}"
            )
        rss[project.tool.name].append(run.max_rss_mb)
        # Measured in the same process (from the end of the app's import to exit), not as a
        # difference of two noisy medians, which a loaded machine can make negative.
        assert run.after_import is not None
        beyond[project.tool.name].append(run.after_import)
        return run.seconds

    migrate_times = bench.interleaved(projects, migrate)
    bench.add(Row("`flask db migrate`, no changes", label, size, "s", migrate_times))
    bench.add(Row("  of which app + models import (`flask db --help`)", label, size, "s", help_times),
              ratio_at_most=1.05 if n == 100 else None)
    bench.add(Row("  no-change migrate beyond app import", label, size, "s", beyond),
              ratio_at_most=0.2 if n >= 2000 else None)
    sql = {name: [float(p.sql_count("db", "migrate"))] for name, p in projects.items()}
    for project in projects.values():
        (bench.root / f"sql-{kind}-{n}-{_slug(project.tool)}.log").write_text("\n".join(project.last_sql))
    bench.add(Row("SQL statements per no-change migrate", label, size, "statements", sql), at_most=25)
    bench.add(Row("peak RSS of no-change migrate", label, size, "MB", rss),
              ratio_at_most=1.0 if n >= 2000 else None)

    def fresh_upgrade(project: Project) -> float:
        project.database.reset()
        return project.flask("db", "upgrade").seconds

    more = bench.heavy_reps - 1 if upgrade else 0
    times = bench.interleaved(projects, fresh_upgrade, reps=more) if more > 0 else {}
    for name in projects:
        times.setdefault(name, []).extend(first_upgrades[name])
    bench.add(Row("`flask db upgrade` of the initial revision", label, size, "s", times))


def history_models(count: int) -> str:
    """The model at the head of :func:`write_history`'s ``count`` revisions (``verify`` compares them)."""
    columns = "".join(f"    c{i:05d} = db.Column(db.Integer)\n" for i in range(1, count))
    return (
        "from app import db\n\n\n"
        "class HistoryLog(db.Model):\n"
        '    __tablename__ = "history_log"\n'
        "    id = db.Column(db.Integer, primary_key=True)\n" + columns
    )

REVISION = '''\
"""step {i}

Revision ID: {rev}
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down_repr}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def write_history(project: Project, count: int) -> None:
    """A linear history of ``count`` plain Alembic revisions: create a table, then add one column each."""
    versions = project.path / "migrations" / "versions"
    for i in range(count):
        rev = f"r{i:05d}"
        down = f"r{i - 1:05d}" if i else None
        if i == 0:
            upgrade = '    op.create_table("history_log", sa.Column("id", sa.Integer(), primary_key=True))'
            downgrade = '    op.drop_table("history_log")'
        else:
            upgrade = f'    op.add_column("history_log", sa.Column("c{i:05d}", sa.Integer()))'
            downgrade = f'    op.drop_column("history_log", "c{i:05d}")'
        (versions / f"{rev}_step_{i}.py").write_text(
            REVISION.format(
                i=i, rev=rev, down=down, down_repr=repr(down), upgrade=upgrade, downgrade=downgrade
            )
        )


def long_history(bench: Bench, make_db: Callable[[str], Database], count: int) -> None:
    """``flask db heads``, ``upgrade`` base → head (and ``verify`` where it exists) over a linear history."""
    projects: dict[str, Project] = {}
    kind = ""
    for tool in bench.tools:
        database = make_db(f"hist{count}_{tool.module}")
        kind = database.kind
        project = Project(tool, database, bench.root, f"history-{database.kind}-{count}-{_slug(tool)}")
        project.write_models(history_models(count))
        project.flask("db", "init")
        write_history(project, count)
        projects[tool.name] = project
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    size = f"{count} revisions"
    if kind == "sqlite":
        heads = bench.interleaved(projects, lambda p: p.flask("db", "heads").seconds)
        bench.add(Row("`flask db heads`", "-", size, "s", heads), ratio_at_most=1.0)

    def fresh_upgrade(project: Project) -> float:
        project.database.reset()
        return project.flask("db", "upgrade").seconds

    times = bench.interleaved(projects, fresh_upgrade, reps=bench.heavy_reps)
    bench.add(Row("`flask db upgrade` base → head", label, size, "s", times), ratio_at_most=1.0)

    # Flask-Evolve commits each migration on its own (a failure keeps the steps before it);
    # Flask-Migrate runs them all in one transaction, which --single-transaction asks of ours.
    def single_transaction(project: Project) -> float:
        project.database.reset()
        one = ("--single-transaction",) if project.tool is bench.candidate else ()
        return project.flask("db", "upgrade", *one).seconds

    times = bench.interleaved(projects, single_transaction, reps=bench.heavy_reps)
    bench.add(Row("  the same, Flask-Evolve with `--single-transaction`", label, size, "s", times))

    ours = projects[bench.candidate.name]
    if " verify " not in ours.flask("db", "--help").stdout:
        if kind == "sqlite":
            bench.notes.append("`flask db verify` does not exist yet: its scenario was skipped.")
        return
    runs = []
    for _ in range(bench.heavy_reps):
        runs.append(ours.flask("db", "verify", check=False))
        if runs[-1].returncode != 0:
            break  # a failure repeats itself (minutes over a long history): report it once
    failed = [run for run in runs if run.returncode != 0]
    if failed:
        fail = [line.strip() for line in failed[0].stdout.splitlines() if line.strip().startswith("FAIL")]
        bench.notes.append(
            f"`flask db verify` [{label} {size}] exited {failed[0].returncode} after "
            f"{failed[0].seconds:.1f} s: {' '.join(fail)[:300] or failed[0].stdout[-300:]}"
        )
        return
    verify = {bench.candidate.name: [run.seconds for run in runs]}
    bench.add(Row("`flask db verify` (Flask-Evolve only)", label, size, "s", verify))


def _operations(scripts: list[Path]) -> str:
    """The body of the upgrade functions of ``scripts``, comments left out, in one line."""
    found = []
    for script in scripts:
        upgrade = script.read_text().split("def upgrade", 1)[-1].split("def downgrade", 1)[0]
        lines = [line.strip() for line in upgrade.splitlines()[1:] if not line.strip().startswith("#")]
        found.append(" ".join(" ".join(lines).split()))
    return "`" + "; ".join(found) + "`" if found else "no script"


def _restore(project: Project, template: Path) -> None:
    project.database.reset()
    shutil.copyfile(template, project.database.path)


BIG_MODELS = """\
from app import db


class Big(db.Model):
    __tablename__ = "big"
    id = db.Column(db.Integer, primary_key=True)
    {label} = db.Column(db.String(40))
    qty = db.Column(db.Integer, index=True)
    code = db.Column(db.String(12), index=True)
{note}"""
NOTE_COLUMN = "    note = db.Column(db.String(40))\n"


def big_sqlite_table(bench: Bench, make_db: Callable[[str], Database], rows: int) -> None:
    """Drop and rename a column of a SQLite table with ``rows`` rows and two secondary indexes.

    Each tool migrates with the script its own ``flask db migrate`` wrote. Work is the time the
    upgrade spends executing SQL statements (start-up and Python excluded, so that machine noise
    does not drown it); growth is the file's size after less before.
    """
    projects: dict[str, Project] = {}
    templates: dict[str, Path] = {}
    for tool in bench.tools:
        database = make_db(f"big_{tool.module}")
        project = Project(tool, database, bench.root, f"big-sqlite-{rows}-{_slug(tool)}")
        project.write_models(BIG_MODELS.format(label="label", note=NOTE_COLUMN))
        bench.log(f"setting up a {rows}-row SQLite table for {tool.name}")
        project.flask("db", "init")
        project.migrate_untimed("-m", "initial")
        project.flask("db", "upgrade")
        sqlite_fill(database.path, "big", rows)
        templates[tool.name] = bench.root / f"big-template-{_slug(tool)}.db"
        shutil.copyfile(database.path, templates[tool.name])
        projects[tool.name] = project
    size = f"{rows:,} rows"
    changes = {
        "drop column": (BIG_MODELS.format(label="label", note=""), ()),
        "rename column": (
            BIG_MODELS.format(label="title", note=NOTE_COLUMN),
            ("--rename", "big.label=title"),
        ),
    }
    for change, (models, hint) in changes.items():
        for project in projects.values():
            _restore(project, templates[project.tool.name])
            initial = project.versions()
            project.write_models(models)
            migrate_help = project.flask("db", "migrate", "--help").stdout
            args = hint if hint and hint[0] in migrate_help else ()
            project.migrate_untimed("-m", change, *args)
            generated = _new_versions(project, initial)
            bench.notes.append(f"{change}, {project.tool.name} wrote: {_operations(generated)}")
            project.initial = initial  # type: ignore[attr-defined]
        growth: dict[str, list[float]] = {name: [] for name in projects}
        kept: dict[str, str] = {}

        def upgrade(
            project: Project, change: str = change, growth: dict = growth, kept: dict = kept
        ) -> float:
            _restore(project, templates[project.tool.name])
            before = project.database.size_mb()
            seconds = project.sql_seconds("db", "upgrade")
            growth[project.tool.name].append(project.database.size_mb() - before)
            if change == "rename column":
                import sqlite3

                with sqlite3.connect(project.database.path) as conn:
                    count = conn.execute("SELECT count(title) FROM big").fetchone()[0]
                conn.close()
                kept[project.tool.name] = f"{count:,} of {rows:,} values kept"
            return seconds

        work = bench.interleaved(projects, upgrade, reps=bench.heavy_reps)
        target = 0.01 if change == "rename column" else 1 / 3
        row = bench.add(
            Row(f"{change}: time in SQL statements", "SQLite", size, "s", work), ratio_at_most=target
        )
        if kept:
            row.note = "; ".join(f"{name}: {text}" for name, text in kept.items())
        bench.add(Row(f"{change}: file growth", "SQLite", size, "MB", growth))
        for project in projects.values():
            project.remove_new_versions(project.initial)  # type: ignore[attr-defined]
            project.write_models(BIG_MODELS.format(label="label", note=NOTE_COLUMN))
