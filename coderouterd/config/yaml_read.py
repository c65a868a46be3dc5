"""YAML text to ruamel's nodes, or a ConfigError with the line ruamel refused.

ruamel is kept from what it does not bound by itself (nesting deeper than
Python's stack, aliases expanded for ever) and from what it says in its own
words: a duplicate key's message quotes both values, and a base_url's value
carries its user and password. No problem text leaves here with a URL's
password in it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as yaml_events
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
from ruamel.yaml.scanner import ScannerError

from coderouterd.errors import ConfigError, ConfigProblem
from coderouterd.scrub import masked_urls

# Past these, ruamel's composer, the walker and msgspec would recurse too deep (Python's
# stack: ~1000 frames) or expand aliases for ever (`&b [*a, *a]` doubles `a`, `&c` `b`...).
MAX_DEPTH, MAX_VALUES = 64, 100_000
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"
TOO_MANY = f"more than {MAX_VALUES} values once its aliases are expanded"
# What ruamel lets out, unmarked, of input it cannot read.
_SLIPS = (ArithmeticError, AttributeError, LookupError, RuntimeError, TypeError, ValueError)
# Longest key quoted in a duplicate key's problem.
_KEY_CHARS = 40


def problem_text(text: str) -> str:
    """`text` as a problem may say it: any URL's password masked, and a lone
    surrogate ("\\ud800" in the file), which no log line or JSON reply can
    carry, escaped."""
    return masked_urls(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def parse_yaml(text: str, file: str) -> object:
    """The YAML document, or ConfigError with the line of what ruamel refused."""
    try:
        _measure(text)
        yaml = YAML(typ="rt")
        yaml.Constructor = _Constructor
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" (line {exc.context_mark.line + 1})"
        detail = "; ".join(str(part) for part in (context, exc.problem) if part)
        problem = ConfigProblem(file, line, "", f"YAML syntax error: {problem_text(detail)}")
        raise ConfigError([problem]) from exc
    except YAMLError as exc:  # the reader's, which checks every character before scanning
        position = getattr(exc, "position", None)
        line = text[:position].count("\n") + 1 if isinstance(position, int) else None
        detail = problem_text(str(exc).split("\n", 1)[0])
        raise ConfigError([ConfigProblem(file, line, "", f"YAML error: {detail}")]) from exc


def _measure(text: str) -> None:
    """Refuse nesting past MAX_DEPTH and more than MAX_VALUES values once aliases
    are expanded, from the parser's events (which come without recursion or expansion)."""
    # The document, then each open collection: its anchor and [values, height] so far.
    stack: list[tuple[str | None, list[int]]] = [(None, [0, 0])]
    anchors: dict[str, list[int]] = {}
    mark = StreamMark("", 0, 0, 0)  # the scanner may read the first scalar before any event
    try:
        for event in YAML(typ="rt").parse(text):
            mark = event.end_mark
            anchor, size = None, [0, 1]  # a collection's start; its values count at its end
            if isinstance(event, yaml_events.CollectionEndEvent):
                anchor, size = stack.pop()
            elif isinstance(event, yaml_events.AliasEvent):  # the composer reports unknown ones
                size = anchors.get(event.anchor, [1, 0])
            elif isinstance(event, yaml_events.ScalarEvent):
                anchor, size = event.anchor, [1, 0]
            elif not isinstance(event, yaml_events.CollectionStartEvent):
                continue
            if anchor is not None:
                anchors[anchor] = size
            parent = stack[-1][1]
            parent[0], parent[1] = parent[0] + size[0], max(parent[1], size[1] + 1)
            if (deep := len(stack) - 1 + size[1] > MAX_DEPTH) or parent[0] > MAX_VALUES:
                raise ComposerError(None, None, TOO_DEEP if deep else TOO_MANY, event.start_mark)
            if isinstance(event, yaml_events.CollectionStartEvent):
                stack.append((event.anchor, [1, 1]))
    except _SLIPS as exc:  # "\U00110000" in a quoted scalar after `mark`: chr()'s ValueError
        raise ScannerError(None, None, str(exc), mark) from exc


class _Constructor(RoundTripConstructor):
    """ruamel's, with the node's line on the plain errors it lets out (`!!int abc`,
    `2024-02-30`, `!!bool maybe`: ValueError, KeyError, IndexError...), and a
    duplicate key named without its values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each collection is filled at once, inside parse_yaml's `try`, not queued for later.
        self.deep_construct = True

    def construct_non_recursive_object(self, node: Any, tag: Any = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except _SLIPS as exc:
            problem = f"not a valid {str(node.tag).rsplit(':', 1)[-1]} ({exc})"
            raise ConstructorError(problem=problem, problem_mark=node.start_mark) from exc

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key not in mapping or self.allow_duplicate_keys:
            return bool(super().check_mapping_key(node, key_node, mapping, key, value))
        # ruamel's own message quotes the value twice: a base_url's password.
        name = repr(key)
        if len(name) > _KEY_CHARS:
            name = name[: _KEY_CHARS - 3] + "..."
        problem = f"duplicate key {name}"
        with contextlib.suppress(AttributeError, LookupError, TypeError, ValueError):
            problem += f" (first on line {int(mapping.lc.data[key][0]) + 1})"
        raise DuplicateKeyError(None, None, problem, key_node.start_mark)
