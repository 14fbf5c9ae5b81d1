"""Who decides which rename candidates become renames: hints, a terminal prompt, or the no-rival rule."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from flask_evolve.errors import UserInputError

#: Forces (``1``) or forbids (``0``) the terminal prompt whatever stdin is;
#: lets tests and scripted sessions answer the questions on stdin.
INTERACTIVE_ENV = "FLASK_EVOLVE_INTERACTIVE"

POLICIES = ("auto", "prompt", "off")


class RenameError(UserInputError):
    """A rename hint names nothing to rename, or the candidates are ambiguous."""


def table_key(name: str, schema: str | None) -> str:
    """How a table is named here: ``name`` in the default schema, ``schema.name`` elsewhere
    (SQLAlchemy's ``Table.fullname``, and the prefix of a foreign key's ``target_fullname``)."""
    return name if schema is None else f"{schema}.{name}"


@dataclass(frozen=True)
class ColumnRename:
    """``table.old`` became ``table.new`` (``table`` as :func:`table_key` names it).
    ``reason`` says who decided it."""

    table: str
    old: str
    new: str
    type_text: str = ""
    reason: str = "assumed"

    @property
    def flag(self) -> str:
        return f"--rename {self.table}.{self.old}={self.new}"

    @property
    def label(self) -> str:
        return f"{self.table}.{self.old} -> {self.new}"

    @property
    def question(self) -> str:
        kind = f" ({self.type_text})" if self.type_text else ""
        return f"Did you rename {self.table}.{self.old} to {self.table}.{self.new}{kind}? [y/N] "

    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.table, self.old), (self.table, self.new)


@dataclass(frozen=True)
class TableRename:
    """Table ``old`` became ``new`` (both as :func:`table_key` names them, in one ``schema``);
    ``detail`` says how else it changed ("" when only renamed)."""

    old: str
    new: str
    reason: str = "assumed"
    detail: str = field(default="", compare=False)
    schema: str | None = None

    @property
    def new_name(self) -> str:
        """The new name without its schema."""
        return self.new if self.schema is None else self.new[len(self.schema) + 1 :]

    @property
    def flag(self) -> str:
        return f"--rename {self.old}={self.new_name}"

    @property
    def label(self) -> str:
        return f"{self.old} -> {self.new_name}"

    @property
    def question(self) -> str:
        changed = f" and change it ({self.detail})" if self.detail else ""
        return f"Did you rename table {self.old} to {self.new}{changed}? [y/N] "

    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("", self.old), ("", self.new)


Rename = ColumnRename | TableRename
Questioner = Callable[[str], bool]


@dataclass(frozen=True)
class Hint:
    """One ``--rename`` flag: the dotted names before ``=`` (one to three) and the new name.

    Which table or column the names mean depends on the schemas and the comparison
    (``a.b`` is column ``b`` of table ``a``, or table ``b`` of schema ``a``), so
    :mod:`flask_evolve.autogen.renames` resolves them.
    """

    parts: tuple[str, ...]
    new: str

    @property
    def text(self) -> str:
        return f"--rename {'.'.join(self.parts)}={self.new}"


@dataclass(frozen=True)
class Hints:
    """Renames the user stated: ``--rename`` flags, parsed."""

    items: tuple[Hint, ...] = ()


def parse_hints(values: Iterable[str]) -> Hints:
    """Parse ``employee.name=full_name`` (a column), ``company=organization`` (a table), and the same
    with a schema in front (``other.item.name=title``, ``other.company=organization``)."""
    items = []
    for value in values:
        old, sep, new = value.partition("=")
        parts = tuple(part.strip() for part in old.split("."))
        new = new.strip()
        if not sep or not new or "." in new or not all(parts) or len(parts) > 3:
            raise RenameError(
                f"--rename {value!r} is not understood: write --rename [SCHEMA.]TABLE.OLD=NEW "
                f"for a column or --rename [SCHEMA.]OLD_TABLE=NEW_TABLE for a table."
            )
        items.append(Hint(parts, new))
    return Hints(tuple(items))


def terminal_questioner(stdin: TextIO | None = None, stderr: TextIO | None = None) -> Questioner:
    """Ask on stderr and read the answer from stdin; anything but y/yes (or end of input) is no."""

    def ask(question: str) -> bool:
        out = stderr or sys.stderr
        out.write(question)
        out.flush()
        answer = (stdin or sys.stdin).readline()
        if not answer:
            out.write("\n")
        return answer.strip().lower() in ("y", "yes")

    return ask


def is_interactive(stdin: TextIO | None = None) -> bool:
    """Whether to prompt under the ``auto`` policy: stdin is a terminal, unless the env says otherwise."""
    forced = os.environ.get(INTERACTIVE_ENV)
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() not in ("0", "false", "no")
    stream = stdin or sys.stdin
    try:
        return bool(stream and stream.isatty())
    except (AttributeError, ValueError):
        return False


def policy_from_options(options: dict[str, object]) -> str:
    """The rename policy in force: ``--no-renames`` beats ``Migrate(rename_policy=...)``."""
    if options.get("no_renames"):
        return "off"
    policy = str(options.get("rename_policy") or "auto")
    if policy not in POLICIES:
        raise RenameError(
            f"rename_policy={policy!r} is not a policy: use one of {', '.join(POLICIES)}."
        )
    return policy


@dataclass
class Decision:
    """What the policy made of the candidates."""

    accepted: list[Rename] = field(default_factory=list)
    ambiguous: list[Rename] = field(default_factory=list)
    declined: list[Rename] = field(default_factory=list)


def decide(
    candidates: Sequence[Rename],
    *,
    policy: str,
    interactive: bool,
    ask: Questioner | None = None,
) -> Decision:
    """Choose among guessed candidates (hinted renames never get here).

    - ``off``: none.
    - prompting (``prompt``, or ``auto`` on a terminal): ask about each pair whose
      ends are still free, in order.
    - ``auto`` elsewhere: a pair is taken only when neither of its ends (the dropped
      and the added column or table) is in another candidate pair, i.e. nothing
      else in that table could be the same rename. Everything else is ambiguous
      and never guessed.
    """
    decision = Decision()
    if policy == "off" or not candidates:
        return decision
    if policy == "prompt" or interactive:
        ask = ask or terminal_questioner()
        used: set[tuple[str, str]] = set()
        for candidate in candidates:
            old, new = candidate.ends()
            if old in used or new in used:
                continue
            if ask(candidate.question):
                decision.accepted.append(replace(candidate, reason="confirmed"))
                used.update((old, new))
            else:
                decision.declined.append(candidate)
        return decision
    for candidate in candidates:
        ends = set(candidate.ends())
        rivals = [c for c in candidates if c is not candidate and ends & set(c.ends())]
        (decision.ambiguous if rivals else decision.accepted).append(candidate)
    return decision


def ambiguity_message(ambiguous: Sequence[Rename]) -> str:
    """One line: which pairs could be renames, and the flags that settle it."""
    pairs = ", ".join(c.label for c in ambiguous)
    return (
        f"Ambiguous renames, not guessed: {pairs}. Run again saying which you meant, "
        f"e.g. `flask db migrate {ambiguous[0].flag}` (one --rename per rename), "
        f"or with --no-renames to drop and add instead (the dropped data is lost)."
    )
