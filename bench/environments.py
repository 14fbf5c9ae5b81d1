"""The two environments under comparison: Flask-Migrate 4.1 and this package, with the same libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FLASK_MIGRATE = "flask-migrate==4.1.0"
#: Pinned to the versions of the environment running the bench, so that both tools
#: run on identical Flask, SQLAlchemy and Alembic and only the tool differs.
SHARED = ("Flask", "Flask-SQLAlchemy", "SQLAlchemy", "alembic", "click", "Werkzeug", "Mako", "psycopg")


@dataclass(frozen=True)
class Tool:
    """One tool under test, in its own virtualenv."""

    name: str
    venv: Path
    #: What the benchmark app imports its Migrate class from.
    module: str

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _pins() -> list[str]:
    pins = [f"{name}=={version(name)}" for name in SHARED]
    pins.append(f"psycopg-binary=={version('psycopg')}")
    return pins


def _ensure(venv: Path, requirements: list[str], log: callable) -> None:  # type: ignore[valid-type]
    stamp = venv / ".bench-installed"
    wanted = json.dumps(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating {venv.relative_to(ROOT)} ({' '.join(requirements)})")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
        cwd=ROOT,
    )
    stamp.write_text(wanted)


def ensure_tools(log: callable) -> list[Tool]:  # type: ignore[valid-type]
    """Create (once) and return the Flask-Migrate and Flask-Evolve environments."""
    pins = _pins()
    migrate = Tool("Flask-Migrate 4.1", BENCH / ".venv-flask-migrate", "flask_migrate")
    evolve = Tool("Flask-Evolve", BENCH / ".venv-flask-evolve", "flask_evolve")
    _ensure(migrate.venv, [FLASK_MIGRATE, *pins], log)
    # Editable: the bench always measures the working tree, without reinstalling.
    _ensure(evolve.venv, ["-e", str(ROOT), *pins], log)
    return [migrate, evolve]
