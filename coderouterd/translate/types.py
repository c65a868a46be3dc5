"""Values shared by every translator (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError


class Degradation(msgspec.Struct, frozen=True):
    """Something the client sent that the target dialect or model cannot carry.

    Recorded once per request as a `capability.degraded` event.
    """

    field: str
    reason: str


class Notes:
    """Degradations of one request, at most one per field, in the order first seen."""

    def __init__(self) -> None:
        self._seen: dict[str, Degradation] = {}

    def add(self, field: str, reason: str) -> None:
        self._seen.setdefault(field, Degradation(field, reason))

    def items(self) -> list[Degradation]:
        return list(self._seen.values())


ThinkMode = Literal["off", "strip", "thinking"]


class OutputFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Per-provider clean-up of model output, decided by config and capabilities.

    think: "strip" drops <think>…</think> text, "thinking" turns it into a
    thinking block, "off" leaves it as text. assume_think_open says the
    model's chat template already opened the think block, so the text starts
    inside it and only `</think>` appears. strip_tool_markup removes stray
    tool-call markup that repair could not lift. repair_tool_calls lifts
    tool calls written as text into tool_use blocks. strip_stop_markers
    removes chat-template control tokens leaked into the text (markers.py).
    """

    think: ThinkMode = "off"
    assume_think_open: bool = False
    strip_tool_markup: bool = False
    repair_tool_calls: bool = False
    strip_stop_markers: bool = False

    @property
    def active(self) -> bool:
        """Whether any filter can change the output (otherwise it stays bytes)."""
        return (
            self.think != "off"
            or self.strip_tool_markup
            or self.repair_tool_calls
            or self.strip_stop_markers
        )


def read_json(
    raw: msgspec.Raw | bytes | str, field: str, decoder: msgspec.json.Decoder[Any] | None = None
) -> Any:
    """`raw` decoded (by `decoder`, when given). The first read of a body
    skips what it does not need unchecked, so invalid UTF-8 in a string, a
    number out of range or nesting too deep to decode shows here: the
    client's error, named by its field."""
    try:
        return decoder.decode(raw) if decoder is not None else msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"cannot be read ({exc})", field=field) from exc
    except RecursionError as exc:
        raise InvalidRequestError(NESTED_TOO_DEEP, field=field) from exc


def number_or_none(body: Any, key: str) -> float | int | None:
    """A sampling parameter (temperature, top_p): absent, or a number."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError("must be a number", field=key)
    return value


_NULL = msgspec.Raw(b"null")


class _Function(msgspec.Struct):
    name: str | None = None


class _ToolName(msgspec.Struct):
    name: str | None = None
    function: _Function | None = None
    # Raw, read for is_server_tool only: a schema is skipped, not built, and
    # a type of any shape costs no tool its name.
    type: msgspec.Raw = _NULL
    input_schema: msgspec.Raw = _NULL


# Anthropic-defined tools whose calls the client runs (Anthropic's tool
# reference: bash, the text editor, memory, computer use); every other type
# it defines (web_search_, web_fetch_, code_execution_, tool_search_tool_,
# advisor_, mcp_toolset, and types yet to come) runs on Anthropic's servers.
_CLIENT_RUN = ("bash_", "text_editor_", "memory_", "computer_")


def is_anthropic_defined(kind: object, input_schema: object) -> bool:
    """Whether an Anthropic tool with these decoded `type` and `input_schema`
    is one Anthropic defines (a type other than `custom`, no schema): a
    backend other than Claude is sent none of them (tools_a2o)."""
    return kind not in (None, "custom") and input_schema is None


def is_server_tool(kind: object, input_schema: object) -> bool:
    """Whether such a tool runs on Anthropic's servers (web_search_20250305):
    no client runs its call, so a call printed as text is never lifted as
    one. An unknown type counts as a server tool: its call stays text."""
    client_run = isinstance(kind, str) and kind.startswith(_CLIENT_RUN)
    return is_anthropic_defined(kind, input_schema) and not client_run


def _callable_by_client(tool: _ToolName) -> bool:
    """An OpenAI function, or an Anthropic tool but a server tool."""
    # Raw compares by its bytes, without copying a schema out of the body.
    if tool.function is not None or tool.input_schema != _NULL:
        return True
    try:
        kind = _tool_type.decode(tool.type)
    except msgspec.ValidationError:
        return False  # a type of no shape a tool of the client's has
    return not is_server_tool(kind, None)


class _Allowed(msgspec.Struct):
    tools: list[_ToolName] = []


class _ToolChoice(msgspec.Struct):
    """Either dialect's tool_choice object: Anthropic's `{type: none | tool,
    name}`, OpenAI's `{type: function, function: {name}}` and `{type:
    allowed_tools, allowed_tools: {tools}}`."""

    type: str | None = None
    name: str | None = None
    function: _Function | None = None
    allowed_tools: _Allowed | None = None


# Only the names: the schemas are skipped without being built into objects.
_tool_names = msgspec.json.Decoder(list[_ToolName])
_tool_choice = msgspec.json.Decoder(str | _ToolChoice)
_tool_type = msgspec.json.Decoder(str | None)


def _names_of(tools: list[_ToolName]) -> frozenset[str]:
    names = (t.name or (t.function.name if t.function else None) for t in tools)
    return frozenset(n for n in names if n)


class ToolNames(NamedTuple):
    """The tools a request names, as the output filters read them."""

    # Those the model may call this turn (Anthropic `name` or OpenAI
    # `function.name`), the only ones a call printed as text is lifted as:
    # none under tool_choice none, only the forced or allowed ones when
    # tool_choice names them, and never a server tool (is_server_tool),
    # whose call as a tool_use no client could run.
    callable: frozenset[str]
    # Every one in `tools` or the legacy `functions`, callable now or not
    # (server tools too): a call printed as text to one of them keeps its
    # text when markup is stripped, where one to a tool never offered goes
    # whole. Readers join it with `callable`, so a ToolNames built by hand
    # may leave those out.
    offered: frozenset[str] = frozenset()


# What a request that names no tool gives: no call is lifted as a tool_use.
NO_TOOLS = ToolNames(frozenset())


def tool_names(fields: Mapping[str, msgspec.Raw]) -> ToolNames:
    """The request's tool names (ToolNames), from its raw fields."""
    tools = _tools_in(fields.get("tools"))
    offered = _names_of(tools)
    ours = _names_of([t for t in tools if _callable_by_client(t)])
    choice = fields.get("tool_choice")
    callable_ = ours if choice is None else _allowed_by(choice, ours)
    return ToolNames(callable_, offered | _names_of(_tools_in(fields.get("functions"))))


def callable_tool_names(fields: Mapping[str, msgspec.Raw]) -> frozenset[str]:
    """ToolNames.callable alone."""
    return tool_names(fields).callable


def _tools_in(raw: msgspec.Raw | None) -> list[_ToolName]:
    if raw is None:
        return []
    try:
        return _tool_names.decode(raw)
    except msgspec.DecodeError:
        return []


def _allowed_by(raw: msgspec.Raw, names: frozenset[str]) -> frozenset[str]:
    try:
        choice = _tool_choice.decode(raw)
    except msgspec.DecodeError:
        return names  # the upstream's to refuse; the tools stand
    if isinstance(choice, str):
        return frozenset() if choice == "none" else names
    if choice.type == "none":
        return frozenset()
    forced = choice.name or (choice.function.name if choice.function else None)
    if choice.type in ("tool", "function") and forced:
        return names & {forced}
    if choice.type == "allowed_tools" and choice.allowed_tools is not None:
        return names & _names_of(choice.allowed_tools.tools)
    return names
