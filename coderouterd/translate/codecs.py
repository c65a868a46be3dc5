"""Which codec serves which (client dialect, provider kind) pair."""

from __future__ import annotations

from coderouterd.config.model import ProviderConfig
from coderouterd.routing.upstream import Codec
from coderouterd.translate.anthropic_passthrough import AnthropicPassthroughCodec
from coderouterd.translate.openai_passthrough import OpenAIPassthroughCodec


def codecs_for(provider: ProviderConfig) -> dict[str, Codec]:
    """Codecs by client dialect; a dialect missing here cannot use the provider."""
    if provider.kind == "anthropic":
        return {"anthropic": AnthropicPassthroughCodec(provider.name, provider.model)}
    return {
        "openai": OpenAIPassthroughCodec(
            provider.name, provider.model, max_output_tokens=provider.max_output_tokens
        )
    }
