"""README "Configuration reference": each `field | default | meaning` table
against the config model: the same fields, and the same defaults."""

from __future__ import annotations

import re
import typing
from typing import Any

import msgspec
import pytest
from ruamel.yaml import YAML

from coderouterd.config import model as m
from tests.readme import section, tables

SECTIONS: dict[str, type[msgspec.Struct]] = {
    "Top level": m.Config,
    "`server`": m.ServerConfig,
    "`providers[]`": m.ProviderConfig,
    "`profiles[]`": m.ProfileConfig,
    "`state`": m.StateConfig,
    "`auto_router`": m.AutoRouterConfig,
    "`self_healing`": m.SelfHealingConfig,
}
# Blocks a table names whole (their own table follows, or a section of their
# own describes them), not field by field: the others (`cost`, `drift`,
# `timeouts`, `replay`, ...) have a row per field, `cost.monthly_budget_usd`.
_WHOLE = {"server", "state", "self_healing", "auto_router", "capabilities", "rules"}
_YAML = YAML(typ="safe")


def fields(cls: type[msgspec.Struct], prefix: str = "") -> dict[str, Any]:
    """Field path -> default (NODEFAULT: required), nested blocks flattened."""
    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(cls):
        name = prefix + f.encode_name
        nested = [
            a
            for a in (typing.get_args(f.type) or (f.type,))
            if isinstance(a, type) and issubclass(a, msgspec.Struct)
        ]
        if nested and f.name not in _WHOLE and f.name not in ("providers", "profiles"):
            out.update(fields(nested[0], name + "."))
        elif f.default_factory is not msgspec.NODEFAULT:
            out[name] = f.default_factory()
        else:
            out[name] = f.default
    return out


def documented(head: str) -> dict[str, str]:
    """Field path -> its default cell, from the section's `field` tables."""
    return {
        row[0].strip("`"): row[1]
        for header, rows in tables(section(head))
        if header[:2] == ["field", "default"]
        for row in rows
    }


def matches(cell: str, value: Any) -> bool | None:
    """Whether a default cell says `value`; None for a default said in words
    (by kind, a path, `inherit`, `first profile`)."""
    if cell == "required":
        return value is msgspec.NODEFAULT
    if cell.startswith("none"):
        return value is None
    literal = re.fullmatch(r"`([^`<$]+)`(?: \([^)]*\))?", cell)
    if literal is None:
        return None
    expected: object = _YAML.load(literal[1])
    if isinstance(value, msgspec.Struct):
        return expected == {}  # a block whose fields all default
    if isinstance(value, tuple):
        value = list(value)
    return bool(expected == value)


@pytest.mark.parametrize("head", SECTIONS)
def test_each_table_lists_every_field_and_no_other(head: str) -> None:
    code = fields(SECTIONS[head])
    rows = documented(head)
    assert sorted(set(rows) - set(code)) == [], "documented, not in the model"
    assert sorted(set(code) - set(rows)) == [], "in the model, not documented"


@pytest.mark.parametrize("head", SECTIONS)
def test_each_default_the_readme_gives_is_the_code_default(head: str) -> None:
    """Rows whose default is one literal (`30`, `warn`, `false`, `{}`) hold the
    code's default, `none …` rows have None, and `required` rows no default."""
    code = fields(SECTIONS[head])
    wrong = {
        name: (cell, code[name])
        for name, cell in documented(head).items()
        if name in code and matches(cell, code[name]) is False
    }
    assert wrong == {}


def test_every_literal_default_is_checked() -> None:
    """The checks above read most rows: a default cell written in a form
    `matches` cannot read is in this short list of defaults said in words."""
    in_words = {
        f"{head} {name}"
        for head, cls in SECTIONS.items()
        for name, cell in documented(head).items()
        if matches(cell, fields(cls).get(name, msgspec.NODEFAULT)) is None
    }
    assert in_words == {
        "Top level default_profile",
        "Top level server",
        "Top level state",
        "Top level self_healing",
        "`server` state_dir",
        "`server` control_socket",
        "`providers[]` output_filters.think",
        "`providers[]` output_filters.assume_think_open",
        "`providers[]` output_filters.repair_tool_calls",
        "`providers[]` output_filters.strip_tool_markup",
        "`providers[]` output_filters.strip_stop_markers",
        "`profiles[]` allow_paid",
    }
