"""What a backend model can do, from ordered glob rules.

Rules come from the bundled `model-capabilities.yaml` and then from an
optional user file, so user rules win. Every rule whose `kind` and `model`
glob match contributes the fields it sets; later matches override earlier
ones field by field. Globs use fnmatch syntax and match case-insensitively
(`*` also matches `/`), because one model appears as `qwen3:32b` on Ollama,
`Qwen/Qwen3-32B` on vLLM and `qwen/qwen3-32b` on OpenRouter.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
from ruamel.yaml.comments import CommentedSeq

from coderouterd.config.load import _own_line, _plain, _Walker, read_config_file
from coderouterd.config.model import (
    CapabilityFields,
    ReasoningParam,
    ThinkingModes,
    ToolIdFormat,
)
from coderouterd.config.yaml_read import parse_yaml
from coderouterd.errors import ConfigError

RuleKind = Literal["anthropic", "openai_compat", "*"]
BUNDLED_FILE = "model-capabilities.yaml"
THINKING_UNSUPPORTED = "the model cannot reason (capabilities: thinking: false)"


class ModelCapabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What one (kind, model) pair supports; the defaults are what an unknown model gets.

    What translation does with each field:

    * tools: false drops the request's tools (recorded).
    * vision: false replaces images with a placeholder text (recorded).
    * thinking: false drops the request's `thinking` for this backend
      (recorded); true or None (unknown) sends it as the client asked, through
      reasoning_param on openai_compat.
    * reasoning_param says how to ask an openai_compat backend for reasoning:
      "reasoning_effort" (a low/medium/high string, OpenAI and vLLM style),
      "reasoning" (OpenRouter's object), "think" (Ollama's boolean) or None
      (the backend has no such switch: `thinking` is dropped).
    * template_opens_think: the model's chat template opens `<think>` itself,
      so its text starts with reasoning and only `</think>` appears; the think
      filter then treats the start of the text as undecided (see filters).
    * cache_control: false on an anthropic-kind backend strips cache_control
      markers before sending (recorded); true or None forwards them. The
      OpenAI dialect never carries them.
    * system_messages: false on an anthropic-kind backend moves `role:
      system` messages out of `messages` into the top-level system (recorded);
      true or None forwards them.
    * effort: false on an anthropic-kind backend removes `output_config.effort`
      (and `output_config` when nothing else is left in it; recorded): some
      Anthropic-compatible backends refuse an effort level, Claude Code's
      subagents send one even with thinking disabled. True or None forwards it.
    * thinking_modes: the `thinking` types the anthropic-kind backend's
      Claude model takes, since clients shape it for the model they name:
      "budget" (`enabled` with budget_tokens: Claude 3.7 to 4.5) gets
      `adaptive` as a budget, "adaptive" (Opus 4.7 and later) gets `enabled`
      as adaptive; "both" or None forwards it (thinking_shape, recorded).
    * sampling: false on an anthropic-kind backend removes temperature,
      top_p and top_k, which its model refuses (Opus 4.7 and later;
      recorded). True or None forwards them.
    * strict_schema: the openai_compat backend rejects JSON Schema keywords
      outside a small subset (Gemini); tool schemas are cut down to it
      (schema.strict_schema, recorded).
    * echo_reasoning: the openai_compat backend needs the reasoning of an
      assistant tool turn sent back as `reasoning_content` (DeepSeek's
      thinking mode); other backends never get earlier thinking.
    * signed_thinking: the anthropic-kind backend checks thinking signatures
      (Claude): thinking blocks without one are left out of the history, and
      with thinking on a request whose tool calls being answered then do not
      start with signed thinking goes without thinking (both recorded). A
      backend that does not check them (a local server's Anthropic API) gets
      the history as sent.
    * tool_id_format: "mistral" says the openai_compat backend takes tool
      call ids of exactly 9 letters or digits (mistral_common, Mistral's
      chat templates and API): an id of the history that is not one is sent
      as 9 alphanumerics made from a hash of it, the same for a call and its
      result (tools_a2o.tool_id). None sends the ids as the client named them.
      The same models check the order of a chat's roles (mistral_common
      again): such a backend also gets its messages in that order
      (mistral_order; `mistral_roles`).
    * max_context_tokens: profiles with `context_action: skip` skip the
      provider for a prompt estimated larger (routing/plan.py).
    * max_output_tokens clamps max_tokens, like the provider's own ceiling.
    """

    tools: bool = True
    vision: bool = False
    thinking: bool | None = None
    reasoning_param: ReasoningParam | None = None
    template_opens_think: bool = False
    cache_control: bool | None = None
    system_messages: bool | None = None
    effort: bool | None = None
    thinking_modes: ThinkingModes | None = None
    sampling: bool | None = None
    strict_schema: bool = False
    echo_reasoning: bool = False
    signed_thinking: bool = False
    tool_id_format: ToolIdFormat | None = None
    max_context_tokens: int | None = None
    max_output_tokens: int | None = None

    @property
    def mistral_roles(self) -> bool:
        """Whether the backend takes only Mistral's role order (mistral_order)."""
        return self.tool_id_format == "mistral"

    def output_ceiling(self, provider_limit: int | None) -> int | None:
        """The most `max_tokens` a request may ask of the backend: the lower
        of the provider's own `max_output_tokens` and the registry's."""
        return min((n for n in (provider_limit, self.max_output_tokens) if n), default=None)


class _RuleSchema(CapabilityFields, frozen=True, kw_only=True):
    """The shape of one rule in a file; only the keys a rule writes are applied."""

    kind: RuleKind
    model: Annotated[str, msgspec.Meta(min_length=1)]


class CapabilityRule(msgspec.Struct, frozen=True, kw_only=True):
    """One rule: where it applies, and the capability fields it sets (and only those)."""

    kind: RuleKind
    model: str
    sets: Mapping[str, Any]
    source: str = ""

    def matches(self, kind: str, model: str) -> bool:
        return self.kind in ("*", kind) and fnmatchcase(model.lower(), self.model.lower())


class CapabilityRegistry(msgspec.Struct, frozen=True):
    rules: tuple[CapabilityRule, ...] = ()

    def lookup(
        self, kind: str, model: str, own: CapabilityFields | None = None
    ) -> ModelCapabilities:
        """What the rules say of `model` on a `kind` backend, with `own` (a
        provider's `capabilities`) set over them."""
        fields: dict[str, Any] = {}
        for rule in self.rules:
            if rule.matches(kind, model):
                fields.update(rule.sets)
        if own is not None:
            fields.update(own.written())
        return ModelCapabilities(**fields)


def parse_rules(text: str, *, file: str) -> tuple[CapabilityRule, ...]:
    """The rules of one file, or ConfigError listing every problem with its line.

    An empty file has no rules. The top level is a list of rule mappings.
    """
    root = parse_yaml(text, file)
    if root is None:
        return ()
    walker = _Walker(file)
    if not isinstance(root, CommentedSeq):
        walker.add(1, "", "the top level must be a list of rules")
    else:
        walker.check(root, list[_RuleSchema], "rules", _own_line(root, 1))
    if walker.problems:
        raise ConfigError(sorted(walker.problems, key=lambda p: (p.line or 0, p.path)))
    rules = []
    for index, item in enumerate(_plain(root)):
        schema = msgspec.convert(item, type=_RuleSchema)
        sets = {key: getattr(schema, key) for key in item if key not in ("kind", "model")}
        where = f"{file}:{walker.lines.get(f'rules[{index}]', 0)}"
        rules.append(CapabilityRule(kind=schema.kind, model=schema.model, sets=sets, source=where))
    return tuple(rules)


def bundled_rules() -> tuple[CapabilityRule, ...]:
    text = resources.files("coderouterd.config").joinpath(BUNDLED_FILE).read_text("utf-8")
    return parse_rules(text, file=BUNDLED_FILE)


def load_registry(user_file: str | None) -> CapabilityRegistry:
    """The bundled rules followed by those of `user_file` (when given), which win."""
    rules = bundled_rules()
    if user_file is not None:
        rules += parse_rules(read_config_file(user_file)[1], file=user_file)
    return CapabilityRegistry(rules)
