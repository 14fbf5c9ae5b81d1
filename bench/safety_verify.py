"""Benchmark of the safety net: `verify` over long histories, and what auto-verify adds to `migrate`.

    .venv/bin/python bench/safety_verify.py [--sizes 10,100,1000] [--postgres-url URL]

Histories are synthetic: 50 tables created one per revision, then columns added and (in batch mode, as
Flask-Migrate renders them) to those tables round-robin. Times are wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config

from flask_evolve.safety.scratch import scratch_engine
from flask_evolve.safety.verify import Target, run_scripts, verify_history, verify_new_revision

TABLES = 50


def _script(rev: str, down: str | None, upgrade: str, downgrade: str) -> str:
    return (
        f'"""{rev}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n{upgrade}\n\n\ndef downgrade():\n{downgrade}\n"
    )


def _step(i: int) -> tuple[str, str]:
    if i < TABLES:
        return (
            f'    op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True))',
            f'    op.drop_table("t{i}")',
        )
    table = f"t{i % TABLES}"
    return (
        f'    with op.batch_alter_table("{table}") as b:\n'
        f'        b.add_column(sa.Column("c{i}", sa.Integer))',
        f'    with op.batch_alter_table("{table}") as b:\n        b.drop_column("c{i}")',
    )


def make_history(root: Path, revisions: int) -> Config:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    previous = None
    for i in range(revisions):
        rev = f"r{i:05d}"
        upgrade, downgrade = _step(i)
        (versions / f"{rev}.py").write_text(_script(rev, previous, upgrade, downgrade))
        previous = rev
    config = Config()
    config.set_main_option("script_location", str(root / "migrations"))
    return config


def bench_verify(url: str, sizes: list[int]) -> None:
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            config = make_history(Path(tmp), size)
            started = time.perf_counter()
            result = verify_history(config, [Target(sa.create_engine(url))])
            elapsed = time.perf_counter() - started
            assert result.ok, result.summary()
            print(f"verify  {sa.make_url(url).get_backend_name():<10} {size:>5} revisions  {elapsed:8.2f}s"
                  f"  ({elapsed / size * 1000:.0f} ms per step: up, down, up)")


def bench_migrate_gain(url: str, repeat: int = 3) -> None:
    """The time auto-verify adds to `migrate` for one new column on a 50-table app."""
    with tempfile.TemporaryDirectory() as tmp, scratch_engine(url) as live:
        config = make_history(Path(tmp), TABLES)
        with live.connect() as connection:
            run_scripts(config, connection, "heads")
        new = Path(tmp) / "migrations" / "versions" / "new.py"
        upgrade, downgrade = _step(TABLES + 7)
        new.write_text(_script("new", f"r{TABLES - 1:05d}", upgrade, downgrade))
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            result = verify_new_revision(config, "new", [Target(live)])
            times.append(time.perf_counter() - started)
            assert result.ok, result.summary()
        backend = sa.make_url(url).get_backend_name()
        print(f"migrate {backend:<10} auto-verify on a {TABLES}-table app adds {min(times):.2f}s "
              f"(best of {repeat}; median {sorted(times)[len(times) // 2]:.2f}s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--postgres-url", default=os.environ.get("FLASK_EVOLVE_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{tmp}/live.db"]
        if args.postgres_url:
            urls.append(args.postgres_url)
        else:
            print("PostgreSQL skipped: pass --postgres-url (a server where you may CREATE DATABASE)")
        for url in urls:
            bench_migrate_gain(url)
            bench_verify(url, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
