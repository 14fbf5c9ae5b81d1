"""Run the seed's story end to end through the real CLI, printing the schema and rows after each step."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "demo-run"
# Flask-SQLAlchemy 3 puts a relative SQLite path in the app's instance folder.
DATABASE = WORK / "instance" / "data.db"

AGE_LINE = "    age = db.Column(db.Integer, unique=False, nullable=True)\n"
EMAIL_LINE = "    email = db.Column(db.String, unique=True, nullable=False)\n"
NAME_LINE = "    name = db.Column(db.String, unique=True, nullable=False)\n"
FULL_NAME_LINE = "    full_name = db.Column(db.String, unique=True, nullable=False)\n"


def heading(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def run(*args: str, terminal: bool = True) -> None:
    """Run `python app.py <args>`, the seed's way of calling the CLI, and stop on failure.

    ``terminal=False`` runs it the way CI would (stdin not a terminal): renames are then
    assumed only when unambiguous, and printed, instead of asked about.
    """
    print(f"$ python app.py {' '.join(args)}" + ("" if terminal else " < /dev/null"), flush=True)
    stdin = None if terminal else subprocess.DEVNULL
    result = subprocess.run([sys.executable, "app.py", *args], cwd=WORK, stdin=stdin)
    if result.returncode != 0:
        sys.exit(f"demo failed: `python app.py {' '.join(args)}` exited {result.returncode}")


def show_database() -> None:
    with sqlite3.connect(DATABASE) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            columns = [f"{c[1]} {c[2]}" for c in connection.execute(f'PRAGMA table_info("{table}")')]
            print(f"  {table}({', '.join(columns)})")
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                print(f"      {row}")


def insert(sql: str) -> None:
    with sqlite3.connect(DATABASE) as connection:
        connection.execute(sql)


def edit_models(old: str, new: str) -> None:
    app = WORK / "app.py"
    source = app.read_text()
    assert old in source, f"demo expected {old!r} in app.py"
    app.write_text(source.replace(old, new, 1))


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir()
    shutil.copy(HERE / "app.py", WORK / "app.py")

    heading("1. init: create the migrations repository")
    run("db", "init")

    heading("2. migrate + upgrade: create the employee and company tables")
    run("db", "migrate", "-m", "employee and company")
    run("db", "upgrade")
    insert("INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com')")
    insert("INSERT INTO employee (name, email) VALUES ('Linus', 'linus@example.com')")
    insert("INSERT INTO company (cname, clocation) VALUES ('Acme', 'Paris')")
    show_database()

    heading("3. add the age column to employee (no hand edits)")
    edit_models(EMAIL_LINE, EMAIL_LINE + AGE_LINE)
    run("db", "migrate", "-m", "add age")
    run("db", "upgrade")
    insert("UPDATE employee SET age = 36 WHERE name = 'Ada'")
    show_database()

    heading("4. drop the email column from employee (no hand edits)")
    edit_models(EMAIL_LINE, "")
    run("db", "migrate", "-m", "drop email")
    run("db", "upgrade")
    show_database()

    heading("5. rename Employee.name -> full_name and Company -> Organization (no hand edits)")
    edit_models(NAME_LINE, FULL_NAME_LINE)
    edit_models("class Company(db.Model):", "class Organization(db.Model):")
    run("db", "migrate", "-m", "renames", terminal=False)
    run("db", "upgrade")
    show_database()

    heading("6. downgrade the renames, then upgrade again: the rows follow both ways")
    run("db", "downgrade")
    show_database()
    run("db", "upgrade")
    show_database()

    heading("7. history")
    run("db", "history")

    heading("8. downgrade past the renames and the email drop: email comes back with its values")
    run("db", "downgrade", "--", "-2")
    show_database()

    heading("9. downgrade to base: the tables go into the archive, not away")
    run("db", "downgrade", "base")
    show_database()
    run("db", "archive")

    heading("10. upgrade back to head: every row, age and email come back on the way")
    run("db", "upgrade")
    show_database()
    print("\ndemo finished: the rows survived every step.")


if __name__ == "__main__":
    main()
