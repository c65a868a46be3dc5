"""README "Logs": its events table against the event names the code defines and logs.

telemetry/events.py promises "a grep finds every use": every name a log
line can carry is a constant there, every constant is in the README (the
events table, or the audit events), and every event logged is in the table.
"""

from __future__ import annotations

import ast
import re

from coderouterd.telemetry import events
from tests.readme import ROOT, paragraph, section, table_rows, ticked

_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
_NAME = re.compile(r"[a-z_]+\.[a-z_]+")
_EVENTS_PY = ROOT / "coderouterd" / "telemetry" / "events.py"


def documented_events() -> set[str]:
    """The names in the first column of the Logs section's events table."""
    names: set[str] = set()
    for row in table_rows(section("Logs")):
        names |= {n for n in ticked(row[0]) if _NAME.fullmatch(n)}
    return names


def audit_events() -> set[str]:
    """The names the "Audit events" paragraph gives (audited, and logged too)."""
    para = paragraph(section("What is stored where"), "**Audit events.**")
    return {n for n in ticked(para) if _NAME.fullmatch(n)}


def constants() -> dict[str, str]:
    return {k: v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}


def _log_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of .debug/.info/.warning/... with at least one argument."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _LEVELS
        and node.args
    ]


def _string_constants(tree: ast.AST) -> dict[str, str]:
    """Names bound to a string literal anywhere in the module."""
    return {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def logged_events() -> dict[str, list[str]]:
    """Event name -> where it is logged: the first argument of a log call, a
    literal `a.b`, an `events.X` constant, or a name bound to either."""
    consts = constants()
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "coderouterd").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = _string_constants(tree)
        for node in _log_calls(tree):
            arg = node.args[0]
            name: str | None = None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name):
                name = consts.get(arg.attr) if arg.value.id == "events" else None
            elif isinstance(arg, ast.Name):
                name = local.get(arg.id) or consts.get(arg.id)
            if name is not None and _NAME.fullmatch(name):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def event_names_written_outside_events_py() -> list[str]:
    """Log calls whose event name is spelled out in the calling module (a
    literal, or a constant of its own) instead of taken from events.py."""
    outside: list[str] = []
    for path in sorted((ROOT / "coderouterd").rglob("*.py")):
        if path == _EVENTS_PY:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = _string_constants(tree)
        for node in _log_calls(tree):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                spelled: str | None = arg.value
            elif isinstance(arg, ast.Name):
                spelled = local.get(arg.id)
            else:
                spelled = None
            if spelled is not None and _NAME.fullmatch(spelled):
                outside.append(f"{path.relative_to(ROOT)}:{node.lineno} {spelled}")
    return outside


def test_every_event_name_is_a_constant_of_events_py() -> None:
    assert event_names_written_outside_events_py() == []


def test_every_constant_of_events_py_is_in_the_readme() -> None:
    known = documented_events() | audit_events()
    assert sorted(v for v in constants().values() if v not in known) == []


def test_every_event_the_daemon_logs_is_in_the_events_table() -> None:
    known = documented_events() | audit_events()
    missing = {name: where for name, where in logged_events().items() if name not in known}
    assert missing == {}


def test_every_event_the_readme_names_is_a_constant_of_events_py() -> None:
    """The other way round: a name the table gives that the code never defines
    is a line an operator waits for in vain."""
    defined = set(constants().values())
    assert sorted(documented_events() - defined) == []
