"""Which codec serves which (client dialect, provider kind) pair."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from coderouterd.config.model import OutputFiltersConfig, ProviderConfig
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Codec, Transcoder, Unary
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.passthrough import AnthropicPassthroughCodec, OpenAIPassthroughCodec
from coderouterd.translate.system_text import after_system
from coderouterd.translate.translated import AnthropicToOpenAICodec, OpenAIToAnthropicCodec
from coderouterd.translate.types import Degradation, OutputFilters

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode

# Local OpenAI-compatible servers print reasoning and tool calls as text;
# Anthropic providers return them structured already.
_KIND_FILTERS = {
    "openai_compat": OutputFilters(
        think="thinking", strip_tool_markup=True, repair_tool_calls=True, strip_stop_markers=True
    ),
    "anthropic": OutputFilters(),
}


def output_filters(
    kind: str, configured: OutputFiltersConfig, caps: ModelCapabilities
) -> OutputFilters:
    """The kind's defaults, the registry's template_opens_think, then the config's choices."""
    base = _KIND_FILTERS[kind]

    def pick(value: bool | None, default: bool) -> bool:
        return value if value is not None else default

    return OutputFilters(
        think=configured.think if configured.think is not None else base.think,
        assume_think_open=pick(configured.assume_think_open, caps.template_opens_think),
        strip_tool_markup=pick(configured.strip_tool_markup, base.strip_tool_markup),
        repair_tool_calls=pick(configured.repair_tool_calls, base.repair_tool_calls),
        strip_stop_markers=pick(configured.strip_stop_markers, base.strip_stop_markers),
    )


def codecs_for(provider: ProviderConfig, caps: ModelCapabilities) -> dict[str, Codec]:
    """Codecs by client dialect, amended with the provider's extra_body and
    append_system_prompt when it has them."""
    codecs = _codecs(provider, caps)
    if not provider.extra_body and provider.append_system_prompt is None:
        return codecs
    return {d: Amended(c, provider) for d, c in codecs.items()}


class Amended:
    """A codec whose request bodies get the provider's extra_body fields
    they lack and its append_system_prompt after their system prompt. The
    body is read again at its top level only (its values are skipped, not
    decoded, but for the system prompt), and only for providers that set
    either."""

    def __init__(self, inner: Codec, provider: ProviderConfig) -> None:
        self._inner = inner
        self._extra = {k: msgspec.Raw(_encode(v)) for k, v in provider.extra_body.items()}
        self._system_text = provider.append_system_prompt
        self._dialect = "anthropic" if provider.kind == "anthropic" else "openai"

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        body, degraded = self._inner.request(call)
        fields: Mapping[str, msgspec.Raw] = _top.decode(body)
        missing = {k: v for k, v in self._extra.items() if k not in fields}
        if self._system_text is not None:
            fields = after_system(fields, self._dialect, self._system_text)
        elif not missing:
            return body, degraded
        return _encode({**fields, **missing}), degraded

    def transcoder(self, call: Call) -> Transcoder:
        return self._inner.transcoder(call)

    def unary(self, body: bytes, call: Call) -> Unary:
        return self._inner.unary(body, call)

    def error_body(self, status: int, body: bytes) -> bytes:
        return self._inner.error_body(status, body)


def _codecs(provider: ProviderConfig, caps: ModelCapabilities) -> dict[str, Codec]:
    filters = output_filters(provider.kind, provider.output_filters, caps)
    ceiling = caps.output_ceiling(provider.max_output_tokens)
    if provider.kind == "anthropic":
        return {
            "anthropic": AnthropicPassthroughCodec(
                provider.name, provider.model, caps=caps, filters=filters, max_output_tokens=ceiling
            ),
            "openai": OpenAIToAnthropicCodec(provider, caps, filters),
        }
    return {
        "openai": OpenAIPassthroughCodec(
            provider.name, provider.model, max_output_tokens=ceiling, filters=filters, caps=caps
        ),
        "anthropic": AnthropicToOpenAICodec(provider, caps, filters),
    }
