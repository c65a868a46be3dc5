"""The SDK clients and the local provider the translation tests share."""

from __future__ import annotations

import anthropic
import openai

from tests.conftest import provider_yaml


def a_sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10)


def o_sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=10)


def local(url: str, extra: str = "") -> str:
    """An openai_compat provider named `local` (output filters on by default)."""
    return provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)
