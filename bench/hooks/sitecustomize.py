"""Counts (and times) the SQL statements a benchmarked process sends, when BENCH_SQL_COUNT_FILE names a file.

Put on PYTHONPATH for counting runs only (never for timed runs): it imports SQLAlchemy at start-up.
Every statement that goes through a SQLAlchemy Connection is counted, whichever tool sends it. The
dialect's one-time queries on the first connection (server version, isolation level) are not, for
either tool: SQLAlchemy runs them with events off.
"""

import os

_path = os.environ.get("BENCH_SQL_COUNT_FILE")
if _path:
    import atexit
    import time

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _statements: list[str] = []
    _seconds = [0.0]

    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        _statements.append(statement)
        conn.info["bench_started"] = time.perf_counter()

    def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        _seconds[0] += time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())

    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)

    def _write() -> None:
        with open(_path, "w") as f:  # type: ignore[arg-type]
            f.write(f"{len(_statements)} {_seconds[0]:.6f}\n")
            for statement in _statements:
                f.write(" ".join(statement.split())[:300] + "\n")

    atexit.register(_write)
