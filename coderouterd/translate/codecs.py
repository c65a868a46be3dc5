"""Which codec serves which (client dialect, provider kind) pair."""

from __future__ import annotations

from coderouterd.config.model import OutputFiltersConfig, ProviderConfig
from coderouterd.routing.upstream import Codec
from coderouterd.translate.capabilities import CapabilityRegistry, ModelCapabilities
from coderouterd.translate.passthrough import AnthropicPassthroughCodec, OpenAIPassthroughCodec
from coderouterd.translate.translated import AnthropicToOpenAICodec, OpenAIToAnthropicCodec
from coderouterd.translate.types import OutputFilters

# Local OpenAI-compatible servers print reasoning and tool calls as text;
# Anthropic providers return them structured already.
_KIND_FILTERS = {
    "openai_compat": OutputFilters(
        think="thinking", strip_tool_markup=True, repair_tool_calls=True
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
    )


def codecs_for(provider: ProviderConfig, registry: CapabilityRegistry) -> dict[str, Codec]:
    """Codecs by client dialect."""
    caps = registry.lookup(provider.kind, provider.model)
    filters = output_filters(provider.kind, provider.output_filters, caps)
    if provider.kind == "anthropic":
        return {
            "anthropic": AnthropicPassthroughCodec(
                provider.name, provider.model, caps=caps, filters=filters
            ),
            "openai": OpenAIToAnthropicCodec(provider, caps),
        }
    return {
        "openai": OpenAIPassthroughCodec(
            provider.name,
            provider.model,
            max_output_tokens=provider.max_output_tokens,
            filters=filters,
        ),
        "anthropic": AnthropicToOpenAICodec(provider, caps, filters),
    }
