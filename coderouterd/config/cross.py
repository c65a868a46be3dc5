"""Cross-references of a config file, checked on its plain data (pure).

They run even when fields have problems of their own (load.py's walker
reports those), so one run of `coderouterd check` lists everything: names
repeated or unknown, credentials outside api_key_env, headers that cannot
be sent, a base_url without a usable host or port or with a query, a
base_url password where a bearer key goes too, an extra_body value that is
not JSON (or with a key that is not a string), a number that is not
finite, a restart_command written as a shell line, numbers out of order (a
tool-loop threshold past its window, a first probe delay past its cap), a
listen host with a port or brackets, auto-router rules with no single
matcher, a regular expression that does not compile, or a profile the auto
router would pick that is not defined.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import msgspec

from coderouterd.config.model import (
    AUTO_PROFILE,
    BUILTIN_AUTO_RULES,
    TOOL_LOOP_THRESHOLD,
    TOOL_LOOP_WINDOW,
    AutoRouterConfig,
    RuleMatch,
    SelfHealingConfig,
)
from coderouterd.config.order import check_order
from coderouterd.errors import ConfigProblem
from coderouterd.scrub import is_credential_header

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 9110: a header name is a token; a value may hold no control character
# but tab (aiohttp refuses to send one, as a header injection), nor a lone
# surrogate ("\ud800" in the file), which has no UTF-8 bytes to send.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")  # RFC 1123
MATCHERS = RuleMatch.__struct_fields__
# Body fields extra_body may not set: the router's own.
_OURS = frozenset({"model", "stream", "messages"})
DEFAULT_RULE_PROFILE = AutoRouterConfig().default_rule_profile


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
        _check_headers(provider, f"providers[{i}]", walker)
        _check_base_url(provider, f"providers[{i}]", walker)
        _check_url_credentials(provider, f"providers[{i}]", walker)
        _check_extra_body(provider, f"providers[{i}]", walker)
        _check_restart_command(provider, f"providers[{i}]", walker)
    for i, profile in _mappings(data.get("profiles")):
        _check_tool_loop(profile, f"profiles[{i}]", walker)
        chain = profile.get("providers")
        for j, name in enumerate(chain if isinstance(chain, list) else []):
            if isinstance(name, str) and providers is not None and name not in providers:
                walker.at(f"profiles[{i}].providers[{j}]", unknown("provider", name, providers))
    _check_routing(data, profiles, walker)
    _check_server_host(data, walker)
    _check_recovery(data, walker)


def _check_tool_loop(profile: dict[Any, Any], path: str, walker: Problems) -> None:
    low, high = ("tool_loop_threshold", TOOL_LOOP_THRESHOLD), ("tool_loop_window", TOOL_LOOP_WINDOW)
    why = "a loop longer than the window is never seen"
    check_order(profile, path, low, high, why=why, walker=walker)


def _check_recovery(data: dict[Any, Any], walker: Problems) -> None:
    block, defaults = data.get("self_healing"), SelfHealingConfig()
    low = ("recovery_initial_interval_s", defaults.recovery_initial_interval_s)
    high = ("recovery_max_interval_s", defaults.recovery_max_interval_s)
    why = "probe delays grow from the first to the cap"
    check_order(
        block if isinstance(block, dict) else {}, "self_healing", low, high, why=why, walker=walker
    )


def _check_server_host(data: dict[Any, Any], walker: Problems) -> None:
    """server.host goes to the socket as written: with a port or brackets (as in
    a URL) it would pass `check` and fail only when `serve` binds."""
    server = data.get("server")
    host = server.get("host") if isinstance(server, dict) else None
    if isinstance(host, str) and not listen_host(host):
        message = "must be an IP address or a host name, without port or brackets"
        walker.at("server.host", f"{message} (got {host!r}): the port goes in server.port")


def listen_host(host: str) -> bool:
    """An IP address, or an RFC 1123 host name not ending in digits (`127.0.0.256`)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        name = all(_HOST_LABEL.fullmatch(label) for label in labels)
        return name and len(host) <= 253 and not labels[-1].isdigit()
    return True


def _check_routing(
    data: dict[Any, Any], profiles: dict[str, int | None] | None, walker: Problems
) -> None:
    """The default profile, mode aliases and auto-router rules name profiles that exist."""
    default = data.get("default_profile")
    if default == AUTO_PROFILE:
        _check_auto_router(data, profiles, walker)
    elif isinstance(default, str) and profiles is not None and default not in profiles:
        walker.at("default_profile", unknown("profile", default, profiles))
    for i, profile in _mappings(data.get("profiles")):
        if profile.get("name") == AUTO_PROFILE:
            walker.at(
                f"profiles[{i}].name",
                f"'{AUTO_PROFILE}' is reserved: default_profile: {AUTO_PROFILE} turns on "
                "the auto router",
            )
    aliases = data.get("mode_aliases")
    for mode, target in aliases.items() if isinstance(aliases, dict) else ():
        if isinstance(target, str) and profiles is not None and target not in profiles:
            walker.at(join_path("mode_aliases", str(mode)), unknown("profile", target, profiles))
    auto = data.get("auto_router")
    ids: dict[str, int] = {}
    for i, rule in _mappings(auto.get("rules") if isinstance(auto, dict) else None):
        _check_rule(rule, f"auto_router.rules[{i}]", profiles, walker)
        rule_id = rule.get("id")
        if isinstance(rule_id, str) and rule_id in ids:
            walker.at(f"auto_router.rules[{i}].id", f"duplicate rule id (rules[{ids[rule_id]}])")
        elif isinstance(rule_id, str):
            ids[rule_id] = i


def _check_auto_router(
    data: dict[Any, Any], profiles: dict[str, int | None] | None, walker: Problems
) -> None:
    """With the auto router on, every profile it may pick exists."""
    auto = data.get("auto_router")
    block = auto if isinstance(auto, dict) else {}
    if profiles is None:
        return
    fallback = block.get("default_rule_profile", DEFAULT_RULE_PROFILE)
    if isinstance(fallback, str) and fallback not in profiles:
        where = "auto_router.default_rule_profile" if "default_rule_profile" in block else None
        message = unknown("profile", fallback, profiles)
        if where is None:
            where = "default_profile"
            message = (
                f"the auto router sends requests no rule matches to profile "
                f"'{DEFAULT_RULE_PROFILE}', which is not defined: define it, or set "
                "auto_router.default_rule_profile"
            )
        walker.at(where, message)
    # A disabled router sends everything to default_rule_profile: no rule's profile is needed.
    if block.get("rules") or block.get("disabled") is True:
        return
    missing = sorted({r.profile for r in BUILTIN_AUTO_RULES} - set(profiles))
    if missing:
        walker.at(
            "default_profile",
            "the auto router's built-in rules route to profiles "
            f"{', '.join(sorted({r.profile for r in BUILTIN_AUTO_RULES}))}; missing: "
            f"{', '.join(missing)} (define them, or give auto_router.rules)",
        )


def _check_rule(
    rule: dict[Any, Any], path: str, profiles: dict[str, int | None] | None, walker: Problems
) -> None:
    name = rule.get("profile")
    if isinstance(name, str) and profiles is not None and name not in profiles:
        walker.at(f"{path}.profile", unknown("profile", name, profiles))
    match = rule.get("match")
    if not isinstance(match, dict):
        return
    given = [k for k in MATCHERS if match.get(k) is not None]
    if len(given) != 1:
        walker.at(
            f"{path}.match",
            f"needs exactly one of {', '.join(MATCHERS)}; got {len(given)}"
            + (f": {', '.join(given)}" if given else ""),
        )
    for key in ("content_regex", "model_pattern"):
        pattern = match.get(key)
        if not isinstance(pattern, str):
            continue
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            # Python's own limits (a repeat count past 2**32, groups nested
            # past the recursion limit) are refusals as well as bad syntax.
            walker.at(f"{path}.match.{key}", f"is not a valid regular expression ({exc})")


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
        if isinstance(key, str) and is_credential_header(key):
            where = join_path(join_path(path, "extra_headers"), key)
            walker.at(where, "credentials belong in api_key_env, not in extra_headers")
    env = provider.get("api_key_env")
    if isinstance(env, str) and not _ENV_NAME.fullmatch(env):
        # The value is not echoed: a key pasted here must not end up in logs.
        message = "must be the name of an environment variable (letters, digits, _), not a key"
        walker.at(join_path(path, "api_key_env"), message)


def _check_headers(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    headers = provider.get("extra_headers")
    for name, value in headers.items() if isinstance(headers, dict) else ():
        where = join_path(join_path(path, "extra_headers"), str(name))
        if isinstance(name, str) and not _TOKEN.fullmatch(name):
            walker.at(where, f"{name!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
        if isinstance(value, str) and _UNSENDABLE.search(value):
            # The value is not echoed: it may be a token of some kind.
            walker.at(
                where, "the value holds a line break or another character headers cannot carry"
            )


def _check_base_url(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    url = provider.get("base_url")
    # Another type, or none, is the walker's to report.
    if not isinstance(url, str) or not url:
        return
    if (problem := _url_problem(url) or _userinfo_problem(url)) is not None:
        walker.at(join_path(path, "base_url"), problem)


def _check_url_credentials(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    """A user and password in base_url go as basic auth in the Authorization
    header, where an openai_compat provider's bearer key goes too: one
    request cannot carry both, and aiohttp would refuse to send any."""
    url = provider.get("base_url")
    if provider.get("kind", "openai_compat") != "openai_compat" or not isinstance(url, str):
        return
    if isinstance(provider.get("api_key_env"), str):
        bearer = "api_key_env"
    elif provider.get("forward_client_key") is True:
        bearer = "forward_client_key"
    else:
        return
    try:
        parts = urlsplit(url)
    except ValueError:  # _check_base_url reports it
        return
    if parts.username is not None or parts.password is not None:
        walker.at(
            join_path(path, "base_url"),
            "holds a user and password, sent as basic auth in the Authorization header, "
            f"where {bearer} puts a bearer key: one request cannot carry both; "
            "drop one of them",
        )


def _url_problem(url: str) -> str | None:
    """What makes `url` one no request can be sent to; the URL itself is not echoed,
    as it may carry a user and password."""
    if (problem := _text_problem(url)) is not None:
        return problem
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an IPv6 address without its closing "]"
        return f"is not a valid URL ({exc})"
    try:
        port_ok = parts.port != 0  # ValueError when out of range or not a number
    except ValueError:
        port_ok = False
    if not port_ok:
        return "port must be a number from 1 to 65535"
    host = parts.hostname or ""
    if not _valid_host(host):
        return f"has no valid host name (got {host!r})" if host else "has no host"
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("[") and hostport.partition("]")[2][:1] not in ("", ":"):
        # urllib passes text after an IPv6 address's "]" ("[::1]x"); aiohttp does not.
        return "is not a valid URL (text after the IPv6 address)"
    return None


def _userinfo_problem(url: str) -> str | None:
    """aiohttp sends a URL's user and password as basic auth encoded
    latin-1: with a character past it (say €), every request would fail
    before it is sent. `url` is one _url_problem passed."""
    parts = urlsplit(url)
    try:
        unquote(parts.username or "").encode("latin-1")
        unquote(parts.password or "").encode("latin-1")
    except UnicodeEncodeError:
        return "holds a user or password with a character basic auth cannot carry (past latin-1)"
    return None


def _text_problem(url: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    if _BLANK.search(url):
        return "must not contain spaces or control characters"
    if "?" in url or "#" in url:
        # Each request's path is appended to base_url: after a query or a
        # fragment it would never reach the server as a path.
        return "must not hold a query (?) or a fragment (#)"
    return None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # A name: letters (of any script, which IDNA encodes), digits, dots, hyphens, underscores.
        return bool(host) and all(c.isalnum() or c in "-._" for c in host)
    return True


def _check_extra_body(provider: dict[Any, Any], path: str, walker: Problems) -> None:
    extra = provider.get("extra_body")
    for key, value in extra.items() if isinstance(extra, dict) else ():
        where = join_path(join_path(path, "extra_body"), str(key))
        if key in _OURS:
            walker.at(where, f"'{key}' is set by coderouterd for each request")
            continue
        if any(
            p.path == where or p.path.startswith((f"{where}.", f"{where}["))
            for p in walker.problems
        ):
            continue  # the walker named it: a key that is not a string, a tag
        try:
            msgspec.json.encode(value)  # as translate/codecs.py sends it
        except (TypeError, ValueError, OverflowError) as exc:
            walker.at(where, f"cannot be sent as JSON ({exc})")


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
    # repr: a name holding a line break or a control character is shown escaped.
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {noun} {name!r}{hint}"


def join_path(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"{path}[{key!r}]"
