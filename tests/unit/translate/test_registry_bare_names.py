"""The bundled registry reads a model named without a tag as Ollama does:
`gemma3` is `gemma3:latest`, what `ollama pull gemma3` fetches and most
configs write."""

from __future__ import annotations

import pytest

from coderouterd.translate.capabilities import load_registry

REGISTRY = load_registry(None)


@pytest.mark.parametrize("model", ["gemma3", "gemma2", "gemma3n", "gemma", "GEMMA3", "llama3"])
def test_an_ollama_model_without_a_tool_template_is_not_offered_tools_without_a_tag(
    model: str,
) -> None:
    assert REGISTRY.lookup("openai_compat", model).tools is False


@pytest.mark.parametrize(
    "family",
    [
        "gemma", "gemma2", "gemma3", "gemma3n", "llama3", "llama3.1", "llama3.2-vision",
        "qwen3", "qwen3-coder", "qwq", "deepseek-r1", "gpt-oss", "mistral", "devstral",
        "magistral", "qwen2.5-coder", "llava", "phi4", "codellama",
    ],
)  # fmt: skip
def test_a_name_without_a_tag_reads_as_its_latest_tag(family: str) -> None:
    for name in (family, family.upper()):
        bare = REGISTRY.lookup("openai_compat", name)
        assert bare == REGISTRY.lookup("openai_compat", f"{family}:latest"), name


def test_a_bare_gemma3n_reads_no_images_as_its_tags_do_and_a_bare_gemma3_does() -> None:
    assert REGISTRY.lookup("openai_compat", "gemma3n").vision is False
    assert REGISTRY.lookup("openai_compat", "gemma3").vision is True


def test_other_backends_aliases_of_the_families_keep_their_tools() -> None:
    """llama.cpp and vLLM names (`gemma-3-27b-it`, `google/gemma-3-27b-it`)
    may call tools there (--jinja, a tool parser): only Ollama's names go."""
    for name in ("gemma-3-27b-it", "google/gemma-3-27b-it", "gemma3-27b-it-q4"):
        assert REGISTRY.lookup("openai_compat", name).tools is True, name
