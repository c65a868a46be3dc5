"""Which codec serves which (client dialect, provider kind) pair."""

from __future__ import annotations

from coderouterd.config.model import OutputFiltersConfig, ProviderConfig
from coderouterd.routing.upstream import Codec
from coderouterd.translate.anthropic_passthrough import AnthropicPassthroughCodec
from coderouterd.translate.capabilities import CapabilityRegistry
from coderouterd.translate.openai_passthrough import OpenAIPassthroughCodec
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


def output_filters(kind: str, configured: OutputFiltersConfig) -> OutputFilters:
    base = _KIND_FILTERS[kind]
    return OutputFilters(
        think=configured.think if configured.think is not None else base.think,
        strip_tool_markup=(
            configured.strip_tool_markup
            if configured.strip_tool_markup is not None
            else base.strip_tool_markup
        ),
        repair_tool_calls=(
            configured.repair_tool_calls
            if configured.repair_tool_calls is not None
            else base.repair_tool_calls
        ),
    )


def codecs_for(provider: ProviderConfig, registry: CapabilityRegistry) -> dict[str, Codec]:
    """Codecs by client dialect."""
    if provider.kind == "anthropic":
        return {
            "anthropic": AnthropicPassthroughCodec(provider.name, provider.model),
            "openai": OpenAIToAnthropicCodec(provider),
        }
    caps = registry.lookup(provider.kind, provider.model)
    filters = output_filters(provider.kind, provider.output_filters)
    return {
        "openai": OpenAIPassthroughCodec(
            provider.name, provider.model, max_output_tokens=provider.max_output_tokens
        ),
        "anthropic": AnthropicToOpenAICodec(provider, caps, filters),
    }
