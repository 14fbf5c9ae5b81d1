"""`make bench`: Flask-Evolve against Flask-Migrate 4.1, side by side, on SQLite and PostgreSQL.

    .venv/bin/python bench/run.py                 # everything, N = 100, 500, 2000 (tens of minutes)
    .venv/bin/python bench/run.py --quick         # a ~2-minute smoke run
    .venv/bin/python bench/run.py --only wide --sizes 100,500 --databases sqlite
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from environments import BENCH, ROOT, ensure_tools
from projects import Database
from scenarios import Bench, big_sqlite_table, long_history, wide_schema

SCENARIOS = ("wide", "history", "big")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions (~2 minutes)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--sizes", default=None, help="table counts for 'wide' (default 100,500,2000)")
    parser.add_argument("--revisions", type=int, default=None, help="history length (default 1000)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the big SQLite table (default 1e6)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of fast work (default 5)")
    parser.add_argument("--heavy-reps", type=int, default=None, help="repetitions of slow work (default 3)")
    parser.add_argument("--upgrade-max", type=int, default=None,
                        help="largest N whose initial upgrade is timed more than once (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects and databases")
    parser.add_argument("--output", default=str(BENCH / "results" / "latest.md"))
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = [int(s) for s in (args.sizes or ("100" if quick else "100,500,2000")).split(",")]
    args.revisions = args.revisions or (200 if quick else 1000)
    args.rows = args.rows or (100_000 if quick else 1_000_000)
    args.reps = args.reps or (3 if quick else 5)
    args.heavy_reps = args.heavy_reps or (1 if quick else 3)
    args.only = [s for s in args.only.split(",") if s]
    args.databases = [d for d in args.databases.split(",") if d]
    return args


def machine(pg_version: str | None) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- machine: {os.cpu_count()} cores ({cpu}), load average at the start {load}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg_version or 'not measured'}",
        f"- SQLAlchemy {sa.__version__}, Alembic {_version('alembic')}, Flask {_version('flask')}",
    ]


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def render(bench: Bench, args: argparse.Namespace, header: list[str], seconds: float) -> str:
    base, ours = bench.baseline.name, bench.candidate.name
    command = f'make bench BENCH_ARGS="{args.raw}"' if args.raw else "make bench"
    lines = [
        "# Flask-Evolve vs Flask-Migrate: benchmark results",
        "",
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"by `{command}` in {seconds / 60:.1f} min.",
        "",
        *header,
        f"- medians of {args.reps} runs ({args.heavy_reps} for upgrades and the big table), whole processes, "
        "the two tools interleaved; ratio = Flask-Evolve / Flask-Migrate (below 1 is faster or smaller)",
        "",
        f"| work | database | size | {base} | {ours} | ratio | target | holds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in bench.rows:
        a, b = row.median(base), row.median(ours)
        ratio = f"{b / a:.2f}" if a and b is not None else "n/a"
        holds = {True: "yes", False: "**no**", None: ""}[row.holds]
        unit = "" if row.unit == "statements" else f" {row.unit}"
        cells = [_cell(a, unit), _cell(b, unit)]
        lines.append(f"| {row.work} | {row.db} | {row.size} | {cells[0]} | {cells[1]} | {ratio} | "
                     f"{row.target} | {holds} |")
    notes = [row for row in bench.rows if row.note]
    if notes or bench.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {row.work} [{row.size}]: {row.note}" for row in notes]
        lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines) + "\n"


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit.strip() == "MB":
        return f"{value:,.1f}{unit}"
    if unit.strip() == "s":
        return f"{value:.3f}{unit}" if abs(value) < 1 else f"{value:.2f}{unit}"
    return f"{value:,.0f}{unit}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.raw = " ".join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    tools = ensure_tools(log)
    root = Path(tempfile.mkdtemp(prefix="flask-evolve-bench-"))
    log(f"working in {root}")
    server = None
    pg_version = None
    makers: dict[str, Callable[[str], Database]] = {}
    if "sqlite" in args.databases:
        makers["sqlite"] = lambda name: Database("sqlite", f"sqlite:///{root / (name + '.db')}")
    if "postgresql" in args.databases:
        sys.path.insert(0, str(ROOT))
        from tests.postgres_server import find_pg_binaries, start_local_server

        binaries = find_pg_binaries()
        if binaries is None:
            log("PostgreSQL server programs not found: run scripts/ensure-postgres; PostgreSQL skipped")
        else:
            log("starting a throwaway PostgreSQL cluster")
            server = start_local_server(binaries)
            admin = sa.create_engine(server.admin_url)
            with admin.connect() as connection:
                pg_version = connection.exec_driver_sql("SHOW server_version").scalar()
            admin.dispose()
            makers["postgresql"] = lambda name: Database("postgresql", server.create_database(name), server)
    bench = Bench(tools, root, args.reps, args.heavy_reps, log)
    header = machine(pg_version)
    try:
        if "wide" in args.only:
            for make in makers.values():
                for n in args.sizes:
                    wide_schema(bench, make, n, upgrade=args.upgrade_max is None or n <= args.upgrade_max)
        if "history" in args.only:
            for make in makers.values():
                long_history(bench, make, args.revisions)
        if "big" in args.only and "sqlite" in makers:
            big_sqlite_table(bench, makers["sqlite"], args.rows)
    finally:
        if server is not None:
            server.close()
    text = render(bench, args, header, time.perf_counter() - started)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    if args.keep:
        log(f"written to {output}; projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
        log(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
