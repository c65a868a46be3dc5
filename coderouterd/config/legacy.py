"""A coderouter-cli providers.yaml, rewritten as a coderouterd config (pure).

Most of the vocabulary is shared and passes through unchanged. What differs
is rewritten and said in a note: `timeout_s` becomes `timeouts`, the list
form of `output_filters` a mapping, a `restart_command` string an explicit
`[sh, -c, ...]`, `drift_detection_*` the profile's `drift_action` and the
top-level `drift` block, profile-level recovery-probe delays the top-level
`self_healing` ones; `adaptive` is kept, with a note on what it means
here. What coderouterd does not do (partial-stream stitching, a context
budget, a cap on tool calls) is left out, also with a note, so that nothing
changes meaning without the operator reading about it. Keys the converter
does not know are left out with a note rather than guessed at. A value not
of the shape its rewrite reads (a list where a name belongs, text where a
number does) is carried over as it is: the check of the result that follows
names it, with its line, among the other problems.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from coderouterd.config.model import TOOL_LOOP_THRESHOLD, TOOL_LOOP_WINDOW

LEGACY_CONFIG_ENV = "CODEROUTER_CONFIG"
_INDEXED = re.compile(r"^(?P<list>providers|profiles)\[(?P<index>\d+)\](?P<rest>.*)$")


@dataclass(frozen=True, slots=True)
class Note:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def grouped(notes: list[Note]) -> list[Note]:
    """Notes that say the same of several providers (or profiles) as one,
    `providers[0, 3].timeout_s`, in the order they first appear."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for note in notes:
        match = _INDEXED.match(note.path)
        if match is None:
            groups.setdefault((note.path, "", note.message), [])
            continue
        key = (match["list"], match["rest"], note.message)
        groups.setdefault(key, []).append(match["index"])
    return [
        Note(f"{head}[{', '.join(indices)}]{rest}" if indices else head, message)
        for (head, rest, message), indices in groups.items()
    ]


def legacy_config_paths(env: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Where coderouter-cli looks for its config, in its order."""
    paths = [Path(env[LEGACY_CONFIG_ENV]).expanduser()] if env.get(LEGACY_CONFIG_ENV) else []
    return [*paths, cwd / "providers.yaml", home / ".coderouter" / "providers.yaml"]


def find_legacy_config(
    env: Mapping[str, str] = os.environ, cwd: Path | None = None, home: Path | None = None
) -> Path | None:
    """The coderouter-cli config this machine has, if any."""
    candidates = legacy_config_paths(env, cwd or Path.cwd(), home or Path.home())
    return next((p for p in candidates if p.is_file()), None)


_TOP = ("providers", "profiles", "default_profile", "allow_paid", "mode_aliases", "auto_router")
_PROVIDER = (
    "name",
    "kind",
    "base_url",
    "model",
    "api_key_env",
    "paid",
    "extra_body",
    "append_system_prompt",
)
_PROFILE = (
    "name",
    "providers",
    "allow_paid",
    "append_system_prompt",
    "backend_health_threshold",
    "memory_pressure_action",
    "memory_pressure_cooldown_s",
    "tool_loop_action",
    "tool_loop_window",
    "tool_loop_threshold",
)
# What the filters named in coderouter-cli's list form are here.
_FILTERS = {
    "strip_thinking": ("think", "strip"),
    "strip_stop_markers": ("strip_stop_markers", True),
}
_CAPABILITIES = {"tools": "tools", "vision": "vision", "thinking": "thinking"}
# Capabilities every coderouterd provider has.
_ALWAYS = frozenset({"chat", "streaming"})
_DEMOTE = "is drift_action: demote here (the provider tried last)"
# Profile settings kept under another name or with another value: the key's
# name here, and each value that changes with what the note says.
_RENAMED: dict[str, tuple[str, dict[object, tuple[object, str]]]] = {
    "backend_health_action": (
        "backend_health_action",
        {"skip": ("exclude", "`skip` is `exclude` here")},
    ),
    "drift_detection_action": (
        "drift_action",
        {
            "promote": ("demote", f"'promote' {_DEMOTE}"),
            "reload": ("demote", f"'reload' {_DEMOTE}"),
        },
    ),
    "adaptive": (
        "adaptive",
        {
            True: (
                True,
                "kept, with coderouterd's meaning: a provider decoding far slower than it "
                "usually does is tried one place later (latency against the other providers "
                "and error rates are not read; self-healing and drift see failures)",
            )
        },
    ),
}
# Per-profile settings that coderouterd has once, at the top level.
_TO_TOP = {
    "drift_detection_sensitivity": ("drift", "sensitivity"),
    "drift_detection_window_size": ("drift", "window"),
    "recovery_probe_initial_s": ("self_healing", "recovery_initial_interval_s"),
    "recovery_probe_max_s": ("self_healing", "recovery_max_interval_s"),
}
_DRIFT_WINDOW = (10, 200)
# What coderouterd does not do: each key, the values that ask for nothing
# (left out silently), and why anything else is left out.
_NOT_BUILT: dict[str, tuple[tuple[object, ...], str]] = {
    "partial_stitch_action": (("off",), "a stream that breaks mid-way ends with an error event"),
    "max_tool_calls": ((0,), "no cap on tool calls; tool_loop_action stops repeated calls"),
    "context_budget_action": (
        ("off",),
        "no context budget or trimming (its context_budget_* thresholds go with it); a backend "
        "that says the prompt is too long falls through to the next provider, and later prompts "
        "as long skip it for 10 minutes (context_action: learned); context_action: skip with a "
        "provider's capabilities.max_context_tokens routes a prompt around a window too small",
    ),
    "drift_detection_cooldown_s": ((), "drift is judged over the window, without a cooldown"),
}


def convert(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Note]]:
    """The coderouterd config for coderouter-cli's `data`, and what changed."""
    notes: list[Note] = []
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "providers":
            out[key] = _each(value, lambda p, i: _provider(p, f"providers[{i}]", notes))
        elif key == "profiles":
            out[key] = _each(value, lambda p, i: _profile(p, f"profiles[{i}]", out, notes))
        elif key == "auto_router" and isinstance(value, Mapping):
            out[key] = _auto_router(value, notes)
        elif key in _TOP or not isinstance(key, str):
            out[key] = value
        elif key == "display_timezone":
            notes.append(Note(key, "left out: coderouterd's logs are JSON with UTC timestamps"))
        else:
            notes.append(Note(key, "left out: not a coderouter-cli setting this converter knows"))
    names = [p.get("name") for p in _dicts(out.get("profiles"))]
    if "default_profile" not in data and "default" in names:
        # coderouter-cli's default is the profile named `default`; coderouterd's the first one.
        out["default_profile"] = "default"
        notes.append(Note("default_profile", "set to `default`, coderouter-cli's default"))
    _move_profile_settings(out, notes)
    return out, notes


def _each(value: object, rewrite: Callable[[dict[str, Any], int], object]) -> object:
    """Each mapping of the list `value` rewritten; anything else as it is."""
    if not isinstance(value, list):
        return value
    return [rewrite(item, i) if isinstance(item, dict) else item for i, item in enumerate(value)]


def _dicts(value: object) -> list[dict[str, Any]]:
    """The mappings of the list `value` (none if it is not a list)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _provider(p: dict[str, Any], path: str, notes: list[Note]) -> dict[str, Any]:
    # A key that is not text is no setting of any version: kept for the check to name.
    out = {k: v for k, v in p.items() if k in _PROVIDER or not isinstance(k, str)}
    handlers: dict[str, Callable[[Any], None]] = {
        "timeout_s": lambda v: _timeout(v, out, path, notes),
        "output_filters": lambda v: _output_filters(v, out, path, notes),
        "capabilities": lambda v: _capabilities(v, out, path, notes),
        "max_context_tokens": lambda v: _capability(out, "max_context_tokens", v),
        "restart_command": lambda v: _restart_command(v, out, path, notes),
        "cost": lambda v: _cost(v, out, path, notes),
    }
    for key, value in p.items():
        if key in handlers:
            handlers[key](value)
        elif key not in _PROVIDER and isinstance(key, str):
            notes.append(Note(f"{path}.{key}", "left out: not a setting this converter knows"))
    return out


def _timeout(value: Any, out: dict[str, Any], path: str, notes: list[Note]) -> None:
    out["timeouts"] = {"first_byte_s": value, "idle_s": value}
    notes.append(
        Note(
            f"{path}.timeout_s",
            "now timeouts.first_byte_s and timeouts.idle_s; connect_s and total_s keep "
            "their defaults (5, 1800)",
        )
    )


def _output_filters(value: Any, out: dict[str, Any], path: str, notes: list[Note]) -> None:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if names is None or not all(isinstance(name, str) for name in names):
        out["output_filters"] = value
        return
    filters: dict[str, Any] = {}
    for name in names:
        if name in _FILTERS:
            key, setting = _FILTERS[name]
            filters[key] = setting
        else:
            notes.append(Note(f"{path}.output_filters", f"left out {name!r}: no such filter"))
    out["output_filters"] = filters
    notes.append(
        Note(
            f"{path}.output_filters",
            "now a mapping; filters not named keep coderouterd's defaults (for "
            "openai_compat: <think> becomes thinking, tool calls written as text are "
            "lifted, stop markers removed)",
        )
    )


def _capabilities(value: Any, out: dict[str, Any], path: str, notes: list[Note]) -> None:
    if not isinstance(value, dict):
        out["capabilities"] = value
        return
    for key, setting in value.items():
        if key in _CAPABILITIES:
            _capability(out, _CAPABILITIES[key], setting)
        elif key == "prompt_cache":
            _capability(out, "cache_control", setting)
            notes.append(Note(f"{path}.capabilities.prompt_cache", "now cache_control"))
        elif key not in _ALWAYS:
            notes.append(Note(f"{path}.capabilities.{key}", "left out: no such capability here"))


def _capability(out: dict[str, Any], key: str, setting: Any) -> None:
    caps = out.setdefault("capabilities", {})
    if isinstance(caps, dict):  # else a malformed `capabilities`, left for the check
        caps[key] = setting


def _restart_command(value: Any, out: dict[str, Any], path: str, notes: list[Note]) -> None:
    if isinstance(value, str):
        out["restart_command"] = ["sh", "-c", value]
        notes.append(
            Note(
                f"{path}.restart_command",
                "a shell line, as coderouter-cli ran it; coderouterd runs an argument "
                "list without a shell, so it is now [sh, -c, ...]: prefer the command's "
                "own arguments, e.g. [systemctl, --user, restart, ollama]",
            )
        )
    else:
        out["restart_command"] = value


def _cost(value: Any, out: dict[str, Any], path: str, notes: list[Note]) -> None:
    if not isinstance(value, dict):
        out["cost"] = value
        return
    cost = {k: v for k, v in value.items() if v is not None}
    for key in sorted(set(value) - set(cost), key=str):
        notes.append(Note(f"{path}.cost.{key}", "null left out (its default applies)"))
    out["cost"] = cost


def _profile(
    p: dict[str, Any], path: str, top: dict[str, Any], notes: list[Note]
) -> dict[str, Any]:
    out = {k: v for k, v in p.items() if k in _PROFILE or not isinstance(k, str)}
    for key, value in p.items():
        where = f"{path}.{key}"
        if key in _PROFILE or not isinstance(key, str):
            continue
        if key in _RENAMED:
            to, values = _RENAMED[key]
            known = isinstance(value, Hashable)  # a list or mapping is no value of the table
            out[to], note = values.get(value, (value, None)) if known else (value, None)
            if note is not None:
                notes.append(Note(where, note))
        elif key in _TO_TOP:
            _top_setting(top, _TO_TOP[key], value, where, notes)
        elif key == "restart_timeout_s":
            out["_restart_timeout_s"] = value
        elif key in _NOT_BUILT:
            silent, why = _NOT_BUILT[key]
            if value is not None and value not in silent:
                notes.append(Note(where, f"left out: {why}"))
        elif key.startswith("context_budget_"):
            continue  # its thresholds: the note on context_budget_action names them
        else:
            notes.append(Note(where, "left out: not a setting this converter knows"))
    _loop_threshold(out, path, notes)
    return out


def _loop_threshold(profile: dict[str, Any], path: str, notes: list[Note]) -> None:
    """A threshold above the window (written, or the default 5 of both tools)
    saw no loop in coderouter-cli and is refused here: it becomes the window."""
    window = profile.get("tool_loop_window", TOOL_LOOP_WINDOW)
    threshold = profile.get("tool_loop_threshold", TOOL_LOOP_THRESHOLD)
    if _number(window) and _number(threshold) and threshold > window:
        profile["tool_loop_threshold"] = window
        notes.append(
            Note(
                f"{path}.tool_loop_threshold",
                f"{threshold} is above tool_loop_window ({window}), so no loop was ever seen: "
                "set to the window",
            )
        )


def _top_setting(
    top: dict[str, Any], to: tuple[str, str], value: Any, where: str, notes: list[Note]
) -> None:
    """A per-profile setting that coderouterd has once: the first profile's wins."""
    block, field = to
    low, high = _DRIFT_WINDOW
    if to == ("drift", "window") and isinstance(value, int) and not low <= value <= high:
        notes.append(Note(where, f"{value} is outside {low}-{high}: set to the nearest"))
        value = min(max(value, low), high)
    settings = top.setdefault(block, {})
    if field not in settings:
        settings[field] = value
        notes.append(Note(where, f"now {block}.{field}, for every profile"))
    elif settings[field] != value:
        notes.append(Note(where, f"left out: {block}.{field} is {settings[field]!r} already"))


def _move_profile_settings(out: dict[str, Any], notes: list[Note]) -> None:
    """A profile's restart_timeout_s goes to the providers it lists (the longest wins)."""
    providers = {n: p for p in _dicts(out.get("providers")) if isinstance(n := p.get("name"), str)}
    profiles = out.get("profiles")
    for i, profile in enumerate(profiles if isinstance(profiles, list) else []):
        timeout = profile.pop("_restart_timeout_s", None) if isinstance(profile, dict) else None
        if timeout is None:
            continue
        chain = profile.get("providers")
        for name in chain if isinstance(chain, list) else []:
            provider = providers.get(name) if isinstance(name, str) else None
            if provider is not None:
                provider["restart_timeout_s"] = _longest(timeout, provider.get("restart_timeout_s"))
        notes.append(
            Note(f"profiles[{i}].restart_timeout_s", "now restart_timeout_s of its providers")
        )


def _longest(timeout: object, current: object) -> object:
    """The longer restart timeout; one that is not a number is kept, for the check to name."""
    if _number(timeout) and _number(current):
        return max(timeout, current)
    return timeout if current is None or _number(current) else current


def _auto_router(value: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    out = dict(value)
    if "rules" in value:
        out["rules"] = _each(value["rules"], lambda rule, i: _rule(rule, i, notes))
    return out


def _rule(rule: dict[str, Any], i: int, notes: list[Note]) -> dict[str, Any]:
    # The spelling of coderouter-cli's changelog, which its own loader refused.
    if "if" not in rule and "route_to" not in rule:
        return rule
    notes.append(Note(f"auto_router.rules[{i}]", "`if`/`route_to` are `match`/`profile`"))
    return {
        "id": rule.get("id", f"rule-{i + 1}"),
        "profile": rule.get("route_to", rule.get("profile")),
        "match": rule.get("if", rule.get("match")),
    }
