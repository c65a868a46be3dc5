"""Cross-references of a config file, checked on its plain data (pure).

They run even when fields have problems of their own (load.py's walker
reports those), so one run of `coderouterd check` lists everything: names
repeated or unknown, credentials outside api_key_env, a restart_command
written as a shell line, a tool-loop threshold past its window.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from coderouterd.errors import ConfigProblem

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREDENTIAL_HEADERS = frozenset({"x-api-key", "authorization"})


class Problems(Protocol):
    """Where problems go (load.py's walker): with the line of each path it visited."""

    problems: list[ConfigProblem]
    lines: dict[str, int]

    def at(self, path: str, message: str) -> None: ...


def cross_check(data: dict[Any, Any], walker: Problems) -> None:
    """Rules across fields and entries: names unique and known, credentials
    where they belong, a restart_command that runs without a shell, a tool
    loop threshold within its window."""
    providers = _names(data.get("providers"), "providers", "provider", walker)
    profiles = _names(data.get("profiles"), "profiles", "profile", walker)
    for i, provider in _mappings(data.get("providers")):
        _check_credentials(provider, f"providers[{i}]", walker)
        _check_restart_command(provider, f"providers[{i}]", walker)
    for i, profile in _mappings(data.get("profiles")):
        window, threshold = profile.get("tool_loop_window"), profile.get("tool_loop_threshold", 3)
        if isinstance(threshold, int) and threshold > (window if isinstance(window, int) else 5):
            walker.at(
                f"profiles[{i}].tool_loop_threshold",
                "must be at most tool_loop_window: a loop longer than the window is never seen",
            )
        chain = profile.get("providers")
        for j, name in enumerate(chain if isinstance(chain, list) else []):
            if isinstance(name, str) and providers is not None and name not in providers:
                walker.at(f"profiles[{i}].providers[{j}]", unknown("provider", name, providers))
    default = data.get("default_profile")
    if isinstance(default, str) and profiles is not None and default not in profiles:
        walker.at("default_profile", unknown("profile", default, profiles))


def _names(items: object, path: str, noun: str, walker: Problems) -> dict[str, int | None] | None:
    """Name -> line of each item, reporting repeats; None when `items` is not a list at all."""
    if not isinstance(items, list):
        return None
    seen: dict[str, int | None] = {}
    for i, item in _mappings(items):
        name, where = item.get("name"), f"{path}[{i}].name"
        if isinstance(name, str) and name in seen:
            walker.at(where, f"duplicate {noun} name '{name}' (first on line {seen[name]})")
        elif isinstance(name, str):
            seen[name] = walker.lines.get(where)
    return seen


def _check_credentials(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    headers = provider.get("extra_headers")
    for key in headers if isinstance(headers, dict) else {}:
        if isinstance(key, str) and key.lower() in _CREDENTIAL_HEADERS:
            where = join_path(join_path(path, "extra_headers"), key)
            walker.at(where, "credentials belong in api_key_env, not in extra_headers")
    env = provider.get("api_key_env")
    if isinstance(env, str) and not _ENV_NAME.match(env):
        # The value is not echoed: a key pasted here must not end up in logs.
        message = "must be the name of an environment variable (letters, digits, _), not a key"
        walker.at(join_path(path, "api_key_env"), message)


def _check_restart_command(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    # The seeds took a shell line; coderouterd runs an argv list without a
    # shell (no quoting or injection surprises), and says how to write one.
    if not isinstance(provider.get("restart_command"), str):
        return
    where = join_path(path, "restart_command")
    walker.problems = [p for p in walker.problems if p.path != where]
    walker.at(
        where,
        "must be a list of arguments, run without a shell, e.g. "
        "[systemctl, --user, restart, ollama]; for a shell line write [sh, -c, '...']",
    )


def _mappings(items: object) -> Iterator[tuple[int, dict[Any, Any]]]:
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            yield index, item


def unknown(noun: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {noun} '{name}'{hint}"


def join_path(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"{path}[{key!r}]"
