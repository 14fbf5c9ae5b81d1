"""The real env.py templates of past Flask-Migrate releases, downloaded at test time (never committed).

``pip download`` fetches each release once per machine into a git-ignored cache; the
``flask_migrate_template`` fixture gives the folder that release's ``flask db init`` copied,
to pass to our ``flask db init -t <folder>``. A release that cannot be had fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

#: Git-ignored: what pip downloaded and the template folders taken out of it.
CACHE = Path(__file__).parent / ".flask-migrate-templates"


def _publish(scratch: Path, target: Path) -> None:
    """Move a finished download or extraction into place; a parallel worker may have won."""
    try:
        scratch.rename(target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)


def _archive(version: str) -> Path:
    folder = CACHE / "downloads" / version
    if not folder.is_dir():
        scratch = folder.with_name(f"{version}.{os.getpid()}.tmp")
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(scratch),
                f"flask-migrate=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if completed.returncode != 0 or not any(scratch.glob("*")):
            shutil.rmtree(scratch, ignore_errors=True)
            pytest.fail(f"could not download Flask-Migrate {version}:\n{completed.stderr}")
        _publish(scratch, folder)
    return sorted(folder.glob("*"))[0]


def _extract(archive: Path, version: str) -> Path:
    """Unpack ``flask_migrate/templates/`` of the release; return that folder."""
    target = CACHE / "templates" / version
    if target.is_dir():
        return target
    scratch = target.with_name(f"{version}.{os.getpid()}.tmp")
    names: dict[str, bytes] = {}
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                names[name] = b"" if name.endswith("/") else bundle.read(name)
    else:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                if member.isfile():
                    extracted = bundle.extractfile(member)
                    assert extracted is not None
                    names[member.name] = extracted.read()
    marker = "flask_migrate/templates/"
    for name, content in names.items():
        if marker not in name or name.endswith("/"):
            continue
        relative = name.split(marker, 1)[1]
        destination = scratch / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    if not (scratch / "flask" / "env.py").is_file():
        pytest.fail(f"Flask-Migrate {version} ({archive.name}) has no flask_migrate/templates/flask/env.py")
    _publish(scratch, target)
    return target


@pytest.fixture(scope="session")
def flask_migrate_template() -> Callable[[str, str], Path]:
    """``(version, template)`` → the template folder Flask-Migrate ``version`` shipped, e.g.
    ``("2.0.0", "flask-multidb")``."""

    def template(version: str, name: str) -> Path:
        folder = _extract(_archive(version), version) / name
        if not (folder / "env.py").is_file():
            pytest.fail(f"Flask-Migrate {version} has no '{name}' template")
        return folder

    return template
