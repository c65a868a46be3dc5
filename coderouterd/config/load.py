"""Read the config file: parse, check every field, cross-check names, convert, freeze.

Every problem is collected before anything is raised, so one run lists them
all, each with file:line and a field path such as
`providers[1].timeouts.connect_s`. The checks are driven by the Struct types
in `model.py`: a new field there is validated here without new code.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, TypeVar, Union, get_args, get_origin

import msgspec
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.scalarbool import ScalarBoolean

from coderouterd.config.cross import cross_check, join_path, unknown
from coderouterd.config.default import default_config
from coderouterd.config.model import Config
from coderouterd.config.paths import beside_config
from coderouterd.config.yaml_read import parse_yaml, problem_text
from coderouterd.errors import ConfigError, ConfigProblem

_Node = TypeVar("_Node", CommentedMap, CommentedSeq)


class LoadedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A checked config and where it came from; `path` is None for the built-in default."""

    config: Config
    path: str | None
    digest: str


def config_digest(data: bytes) -> str:
    """Short content hash, shown by `ctl status` so an operator can tell which file is live."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def load_default_config() -> LoadedConfig:
    config = default_config()
    canonical = msgspec.json.encode(config, order="deterministic")
    return LoadedConfig(config=config, path=None, digest=config_digest(canonical))


def load_config(
    path: str | os.PathLike[str], *, server_overrides: Mapping[str, object] | None = None
) -> LoadedConfig:
    """The config at `path`. `server_overrides`: the server settings the
    command line gives (`serve --host/--port`; None: not given), which the
    file's own values do not then have to pass."""
    file = os.fspath(path)
    raw, text = read_config_file(file)
    config = load_config_text(text, file=file, server_overrides=server_overrides)
    if (named := config.capabilities_file) is not None:
        config = msgspec.structs.replace(config, capabilities_file=str(beside_config(named, file)))
    return LoadedConfig(config=config, path=file, digest=config_digest(raw))


def read_config_file(file: str) -> tuple[bytes, str]:
    """A YAML file's bytes and text; not UTF-8 is a problem at its first bad byte's line."""
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT and os.path.islink(file):
            with contextlib.suppress(OSError):
                reason += f" (a symbolic link to {os.readlink(file)}, which leads to no file)"
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read file: {reason}")]) from exc
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(file, line, "", "the file is not valid UTF-8")]) from exc


def load_config_text(
    text: str, *, file: str, server_overrides: Mapping[str, object] | None = None
) -> Config:
    root = parse_yaml(text, file)
    walker = _Walker(file)
    data = _plain(root)
    if root is None:
        walker.add(1, "", "the file is empty: expected a mapping with 'providers' and 'profiles'")
    elif not isinstance(root, CommentedMap):
        walker.add(1, "", f"the top level must be a mapping, got {_describe_value(root)}")
    else:
        walker.check(root, Config, "", _own_line(root, 1))
        cross_check(data, walker)
        _override_server(data, walker, server_overrides or {})
    if walker.problems:
        raise ConfigError(sorted(walker.problems, key=lambda p: (p.line or 0, p.path)))
    try:
        return msgspec.convert(data, type=Config)
    except msgspec.ValidationError as exc:  # only if the walker misses a rule msgspec enforces
        raise ConfigError([ConfigProblem(file, None, "", problem_text(str(exc)))]) from exc


def _override_server(
    data: dict[Any, Any], walker: _Walker, overrides: Mapping[str, object]
) -> None:
    """The command line's server settings in place of the file's, whose
    problems then stop nothing: the daemon never uses those values."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given or not isinstance(server := data.setdefault("server", {}), dict):
        return
    server.update(given)
    paths = {f"server.{key}" for key in given}
    walker.problems = [p for p in walker.problems if p.path not in paths]


@dataclass
class _Walker:
    """The walker: one YAML node against one type, recursing through Structs and containers."""

    file: str
    problems: list[ConfigProblem] = field(default_factory=list)
    # Field path -> 1-based line of every node visited, for the cross-checks.
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, line: int | None, path: str, message: str) -> None:
        self.problems.append(
            ConfigProblem(self.file, line, problem_text(path), problem_text(message))
        )

    def at(self, path: str, message: str) -> None:
        """A problem at a node the walker has visited."""
        self.add(self.lines.get(path), path, message)

    def check(self, node: object, tp: Any, path: str, line: int) -> None:
        self.lines[path] = line
        if (tag := _unknown_tag(node)) is not None:
            self.add(line, path, _tag_message(tag))
            return
        base, metas = _unwrap(tp)
        origin, args = get_origin(base), get_args(base)
        if origin in (Union, types.UnionType) and type(None) in args:
            if node is not None:
                self.check(node, _without_none(base), path, line)
        elif isinstance(base, type) and issubclass(base, msgspec.Struct):
            if self._expect(node, CommentedMap, path, line):
                self._struct(node, base, path, line)
        elif origin is list or (origin is tuple and args[1:] == (...,)):
            if self._expect(node, CommentedSeq, path, line):
                self._sequence(node, args[0], path, line)
                self._length(len(node), metas, "item", path, line)
        elif origin is dict:
            if self._expect(node, CommentedMap, path, line):
                self._mapping(node, args[0], args[1], path, line)
                self._length(len(node), metas, "entry", path, line)
        elif base is Any and isinstance(node, CommentedMap):
            # Free-form values (extra_body) are walked too: the lines and tags deep inside.
            self._mapping(node, Any, Any, path, line)
        elif base is Any and isinstance(node, CommentedSeq):
            self._sequence(node, Any, path, line)
        else:
            self._leaf(node, tp, path, line)

    def _struct(self, node: CommentedMap, cls: type[msgspec.Struct], path: str, line: int) -> None:
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
        here = _own_line(node, line)
        for key, value in node.items():
            key_line = _entry_line(node, key, here)
            if (tag := _unknown_tag(key)) is not None:
                self.add(key_line, path, _tag_message(tag))
            elif not isinstance(key, str):
                self.add(key_line, path, f"keys must be strings, got {_describe_value(key)}")
            elif key in fields:
                value_line = _entry_line(node, key, key_line, value=True)
                self.check(value, fields[key].type, join_path(path, key), value_line)
            elif cls.__struct_config__.forbid_unknown_fields:
                self.add(key_line, join_path(path, key), unknown("key", key, fields))
        for name, info in fields.items():
            if info.required and name not in node:
                self.add(here, join_path(path, name), f"missing required key '{name}'")

    def _sequence(self, node: CommentedSeq, item_type: Any, path: str, line: int) -> None:
        for index, item in enumerate(node):
            self.check(item, item_type, f"{path}[{index}]", _entry_line(node, index, line))

    def _mapping(self, node: CommentedMap, key: Any, value: Any, path: str, line: int) -> None:
        here = _own_line(node, line)
        for k, v in node.items():
            key_line = _entry_line(node, k, here)
            entry = join_path(path, str(_plain_key(k)))
            self.check(v, value, entry, _entry_line(node, k, key_line, value=True))
            self.check(k, key, entry, key_line)  # last, so `lines` keeps the key's line
            if key is Any and not isinstance(plain := _plain_key(k), str):
                # A free-form mapping is sent as JSON, where msgspec would turn a
                # key 1, 1.5 or a date into a string the user never wrote ("1").
                kind = _describe_value(plain)
                self.add(key_line, path, f"cannot be sent as JSON: a key is {kind}, not a string")

    def _length(self, n: int, metas: list[msgspec.Meta], noun: str, path: str, line: int) -> None:
        for meta in metas:
            if meta.min_length is not None and n < meta.min_length:
                self.add(line, path, f"must have at least {_plural(meta.min_length, noun)}")
            if meta.max_length is not None and n > meta.max_length:
                self.add(line, path, f"must have at most {_plural(meta.max_length, noun)}")

    def _leaf(self, node: object, tp: Any, path: str, line: int) -> None:
        value = _plain(node)
        try:
            msgspec.convert(value, type=tp)
        except msgspec.ValidationError as exc:
            self.add(line, path, _translate(str(exc), tp, value))
        except UnicodeEncodeError:
            # Only reachable through "\ud800"-style escapes in a quoted YAML string.
            self.add(line, path, "contains an escaped lone surrogate, which is not valid text")
        else:
            # YAML's .inf passes every lower bound; no timer, budget or period takes
            # it, and JSON (extra_body) has none: msgspec would send null.
            if isinstance(value, float) and not math.isfinite(value):
                self.add(line, path, "must be a finite number")

    def _expect(self, node: object, kind: type[_Node], path: str, line: int) -> TypeGuard[_Node]:
        if not isinstance(node, kind):
            wanted = "a list" if kind is CommentedSeq else "a mapping"
            self.add(line, path, f"expected {wanted}, got {_describe_value(node)}")
        return isinstance(node, kind)


# Types, values and messages.


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    metas: list[msgspec.Meta] = []
    while get_origin(tp) is Annotated:
        tp, *extras = get_args(tp)
        metas += [m for m in extras if isinstance(m, msgspec.Meta)]
    return tp, metas


def _without_none(union: Any) -> Any:
    rest = tuple(t for t in get_args(union) if t is not type(None))
    return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 - built from a runtime tuple


# ruamel builds the value of every standard tag but `!!str`, which it keeps on
# the scalar (`!!str 5`). Any other tag it leaves on the node unresolved; with
# no tags of coderouterd's own, dropping it would read a value not meant.
_STR_TAG = "tag:yaml.org,2002:str"
_YAML_TAGS = "tag:yaml.org,2002:"


def _unknown_tag(node: object) -> str | None:
    """The tag of `node` as written (`!ENV`, `!!python/name:x`), when it is not a standard one."""
    if not isinstance(node, TaggedScalar | CommentedMap | CommentedSeq):
        return None
    tag = node.tag.value
    if not isinstance(tag, str) or tag == _STR_TAG:
        return None
    return "!!" + tag.removeprefix(_YAML_TAGS) if tag.startswith(_YAML_TAGS) else tag


def _tag_message(tag: str) -> str:
    return (
        f"unknown YAML tag {tag}: the file holds plain values only (an API key is read "
        "from the environment variable api_key_env names)"
    )


def _plain(node: object) -> Any:
    """ruamel's subclasses as plain Python values, as msgspec.convert expects them."""
    if isinstance(node, Mapping):
        return {_plain_key(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, TaggedScalar):
        return _plain(node.value)
    if isinstance(node, bool | ScalarBoolean):  # ScalarBoolean is an int subclass
        return bool(node)
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _plain_key(key: object) -> Any:
    # A mapping or list used as a key (`? {a: 1}`) stays ruamel's hashable node.
    return key if isinstance(key, Mapping | tuple) else _plain(key)


_MISMATCH = re.compile(r"^Expected `[^`]+`, got `[^`]+`")
_BOUND = re.compile(r"^Expected `\w+` (>=|<=|>|<) (\S+)$")
_LENGTH = re.compile(r"^Expected `\w+` of length (>=|<=) (\d+)$")
_PATTERN = re.compile(r"^Expected `\w+` matching regex (.+)$")


def _translate(message: str, tp: Any, value: object) -> str:
    message = message.split(" - at `", 1)[0]
    got = f" (got {_short(value)})"
    if _MISMATCH.match(message):
        return f"expected {_describe_type(tp)}, got {_describe_value(value)}"
    if message.startswith("Invalid enum value"):
        return f"must be one of {_describe_type(tp).removeprefix('one of ')}{got}"
    if match := _BOUND.match(message):
        bound = float(match[2])
        return f"must be {match[1]} {int(bound) if bound.is_integer() else bound}{got}"
    if match := _LENGTH.match(message):
        return _length_message(match[1], int(match[2]))
    if match := _PATTERN.match(message):
        pattern = match[1].replace("\\\\", "\\")  # msgspec quotes it as repr does
        return f"must match {pattern}{got}"
    return message[:1].lower() + message[1:]


def _length_message(operator: str, size: int) -> str:
    if operator == "<=":
        return f"must be at most {size} characters long"
    return "must not be empty" if size == 1 else f"must be at least {size} characters long"


def _describe_type(tp: Any) -> str:
    base, _ = _unwrap(tp)
    origin = get_origin(base)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(base))
    if origin in (Union, types.UnionType):
        # UNSET only marks a field not written; nobody writes it.
        return " or ".join(_describe_type(t) for t in get_args(base) if t is not msgspec.UnsetType)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or (isinstance(base, type) and issubclass(base, msgspec.Struct)):
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(base, "null" if base is type(None) else getattr(base, "__name__", str(base)))


def _describe_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):  # before int: both are int subclasses
        return "a boolean"
    kinds: tuple[tuple[type, str], ...] = (
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (Mapping, "a mapping"),
        (list, "a list"),
        (tuple, "a list"),  # a list used as a key
        (date, "a date"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# Lines: ruamel keeps 0-based [key line, key col, value line, value col] per mapping
# entry and [line, col] per sequence item; merged (`<<:`) keys have none.


def _own_line(node: CommentedMap | CommentedSeq, fallback: int) -> int:
    line = node.lc.line
    return int(line) + 1 if line is not None else fallback


def _entry_line(
    node: CommentedMap | CommentedSeq, key: object, fallback: int, *, value: bool = False
) -> int:
    # ruamel places an empty value on the following line; the key's line reads better.
    if value and node[key] is None:
        return fallback
    try:
        return int(node.lc.data[key][2 if value else 0]) + 1
    except (KeyError, IndexError, TypeError):
        return fallback
