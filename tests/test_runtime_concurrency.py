"""Eight `flask db upgrade` processes at once on one empty database: all succeed, each revision runs once."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.harness import Project
from tests.revision_files import write_revision

PROCESSES = 8
REVISIONS = ["r1", "r2", "r3", "r4", "r5"]

FIRST = """
op.create_table("applied", sa.Column("rev", sa.String(10), nullable=False))
op.execute("INSERT INTO applied (rev) VALUES ('r1')")
op.create_table("t1", sa.Column("id", sa.Integer, primary_key=True))
import time; time.sleep(0.2)
"""
LATER = """
op.execute("INSERT INTO applied (rev) VALUES ('{rev}')")
op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))
op.add_column("t1", sa.Column("c_{rev}", sa.Integer))
import time; time.sleep(0.2)
"""


def test_concurrent_upgrades_apply_every_revision_exactly_once(project: Project) -> None:
    project.write_app("")
    project.flask("db", "init")
    down = None
    for index, rev in enumerate(REVISIONS):
        body = FIRST if rev == "r1" else LATER.format(rev=rev, table=f"t{index + 1}")
        write_revision(project.migrations, rev, down, body)
        down = rev

    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "db", "upgrade"],
            cwd=project.path,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    # Generous: eight Flask start-ups share two loaded cores; waiting for ever is what must not happen.
    outputs = [process.communicate(timeout=300) for process in processes]
    elapsed = time.monotonic() - started

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    assert sorted(row[0] for row in project.query("SELECT rev FROM applied")) == REVISIONS
    assert project.version() == ["r5"]
    assert project.tables() == {"alembic_version", "applied", "t1", "t2", "t3", "t4", "t5"}
    assert set(project.columns("t1")) == {"id", "c_r2", "c_r3", "c_r4", "c_r5"}
    # Every revision ran in exactly one process.
    runs = [line for _, stderr in outputs for line in stderr.splitlines() if "Running upgrade" in line]
    assert len(runs) == len(REVISIONS), runs
    assert elapsed < 300
