"""A cache of the parsed revision map: ``heads``, ``current``, ``history`` skip importing each revision.

Alembic builds its revision map by importing each file of ``versions/``; over a long history that
is most of what ``flask db heads`` does. Here the identifiers each file declares (``revision``,
``down_revision``, ``branch_labels``, ``depends_on``) are kept in
``versions/__pycache__/flask_evolve_revisions.json``, keyed by the name, size and mtime of every
entry of the folder. A run whose folder listing matches the key builds the map from the cache, and
imports a revision file only when something reads more of it (its ``upgrade()``, its docstring).

Never stale, by construction:

* any added, removed, renamed, resized or re-dated entry of the folder misses the cache;
* a file is cached only when its identifiers are plain literals in its own source (``ast``), equal
  to what importing it gave, so that nothing it imports can change them behind the key;
* no cache is written while any entry is younger than :data:`SETTLE_SECONDS`, since an edit within
  the file system's timestamp granularity could keep the same mtime and size;
* the file is written to a temporary name and renamed, so that concurrent processes read either
  the old or the new cache, never half of one; any unreadable cache is a miss.

Other layouts (``sourceless``, ``recursive_version_locations``, several version locations) are
read as Alembic reads them, uncached.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

CACHE_NAME = "flask_evolve_revisions.json"
#: Part of the key: a cache from another format or Alembic version is a miss.
FORMAT = 1
#: Entries modified less than this long ago keep the cache from being written.
SETTLE_SECONDS = 2.0
#: A folder with a file larger than this (a huge initial revision) is not cached: proving its
#: identifiers with ``ast`` would cost more than importing it from its bytecode each time.
MAX_FILE_BYTES = 512 * 1024
_IDENTIFIERS = ("revision", "down_revision", "branch_labels", "depends_on")
_installed = False


def install() -> None:
    """Make every ScriptDirectory of this process read and write the cache (idempotent)."""
    global _installed
    if _installed:
        return
    from alembic.script import ScriptDirectory

    # Alembic has no public hook for loading revisions: if a future version renames this private
    # method, run uncached rather than break.
    original = getattr(ScriptDirectory, "_load_revisions", None)
    if original is None or not hasattr(ScriptDirectory, "_version_locations"):
        _installed = True
        return

    def _load_revisions(self: ScriptDirectory) -> Iterator[Script]:
        folder = _cacheable_folder(self)
        if folder is None:
            return original(self)
        return iter(_cached_or_loaded(self, folder, original))

    ScriptDirectory._load_revisions = _load_revisions  # type: ignore[method-assign]
    _installed = True


def _cacheable_folder(script_directory: ScriptDirectory) -> Path | None:
    if script_directory.sourceless or script_directory.recursive_version_locations:
        return None
    locations = script_directory._version_locations
    if len(locations) != 1 or not locations[0].is_dir():
        return None
    return locations[0]


def _listing(folder: Path) -> list[list[Any]]:
    """Every entry of the folder but ``__pycache__``, with what a change would alter."""
    entries = []
    with os.scandir(folder) as scan:
        for entry in scan:
            if entry.name == "__pycache__":
                continue
            stat = entry.stat()
            entries.append([entry.name, entry.is_dir(), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    return sorted(entries)


def _key(folder: Path, listing: list[list[Any]]) -> dict[str, Any]:
    from alembic import __version__

    return {"format": FORMAT, "alembic": __version__, "folder": str(folder), "listing": listing}


def _cached_or_loaded(
    script_directory: ScriptDirectory, folder: Path, original: Any
) -> list[Script]:
    cache = folder / "__pycache__" / CACHE_NAME
    listing = _listing(folder)
    key = _key(folder, listing)
    try:
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return [_script(Path(path), ids) for path, ids in stored["scripts"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    scripts = list(original(script_directory))
    _store(cache, key, listing, scripts)
    return scripts


def _store(cache: Path, key: dict[str, Any], listing: list[list[Any]], scripts: list[Script]) -> None:
    newest = max((entry[3] for entry in listing), default=0)
    if newest > time.time_ns() - SETTLE_SECONDS * 1e9:
        return
    if any(entry[2] > MAX_FILE_BYTES for entry in listing):
        return
    entries = []
    for script in scripts:
        ids = _literal_identifiers(script)
        if ids is None:
            return
        entries.append([str(script.path), ids])  # resolved, as Alembic records it
    try:
        cache.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=cache.parent, prefix=".revisions-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "scripts": entries}, f)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from the project's other users
        os.replace(temporary, cache)
    except OSError:
        pass  # a read-only folder: simply no cache


def _literal_identifiers(script: Script) -> dict[str, Any] | None:
    """The identifiers the file assigns as literals at module level, if they are what the import gave."""
    path = Path(script.path)
    if path.suffix != ".py" or path.parent.name == "__pycache__":
        return None
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, Any] = {}
    for node in tree.body:
        targets: list[Any] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _IDENTIFIERS:
                if target.id in found:
                    return None  # assigned twice: trust only the import
                try:
                    found[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
                except ValueError:
                    return None
    module = script.module
    for name in _IDENTIFIERS:
        value = getattr(module, name, None)
        if found.get(name) != value or not _json_safe(value):
            return None
    if found.get("revision") != script.revision:
        return None
    return {name: _jsonable(found.get(name)) for name in _IDENTIFIERS}


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, (tuple, list)) and all(isinstance(item, str) for item in value)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _script(path: Path, ids: dict[str, Any]) -> Script:
    from alembic.script import Script

    def restore(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    module = _DeferredModule(path, {name: restore(ids[name]) for name in _IDENTIFIERS})
    return Script(module, ids["revision"], path)  # type: ignore[arg-type]


class _DeferredModule:
    """A revision module's identifiers; anything else imports the real module, once."""

    def __init__(self, path: Path, identifiers: dict[str, Any]) -> None:
        self.__dict__.update(identifiers)
        self.__dict__["_path"] = path
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        if self.__dict__["_module"] is None:
            from alembic import util

            path = self.__dict__["_path"]
            self.__dict__["_module"] = util.load_python_file(path.parent, path.name)
        return self.__dict__["_module"]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in ("__file__", "__name__"):
            # Dunder lookups Python makes on its own (copy, pickle) must not import.
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    @property  # type: ignore[misc]
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._load().__doc__
