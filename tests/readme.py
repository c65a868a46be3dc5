"""The README's reference sections read as data: sections, tables, ticked names.

The README is the user's reference: these helpers let tests hold its
tables to the code (events, commands, metrics, config defaults).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_RULE = re.compile(r"\|[-| :]+\|")


def section(title: str, text: str | None = None) -> str:
    """The text under the heading `title` (any level) of `text` (the README),
    up to the next heading of the same or a higher level."""
    text = README if text is None else text
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    assert match is not None, f"no README heading {title!r}"
    level = len(match[1])
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def paragraph(text: str, start: str) -> str:
    """The paragraph of `text` that begins at `start`."""
    return text[text.index(start) :].split("\n\n", maxsplit=1)[0]


def cells(line: str) -> list[str]:
    """A markdown table row's cells (a `\\|` inside a cell is no border)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table in `text`: its header cells and its body rows."""
    found: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or _RULE.fullmatch(line):
            continue
        if i + 1 < len(lines) and _RULE.fullmatch(lines[i + 1]):
            found.append((cells(line), []))
        elif found:
            found[-1][1].append(cells(line))
    return found


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every table in `text` (headers and rules left out)."""
    return [row for _, rows in tables(text) for row in rows]


def ticked(text: str) -> list[str]:
    """The `code spans` of `text`, in order."""
    return re.findall(r"`([^`]+)`", text)
