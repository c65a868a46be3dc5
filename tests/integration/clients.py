"""The SDK clients, providers and log readers the translation tests share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import anthropic
import openai

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


def a_sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10)


async def unary_and_streamed(url: str, kw: Mapping[str, Any]) -> tuple[Any, Any]:
    """An Anthropic SDK's answer to `kw` asked for whole, then streamed."""
    async with a_sdk(url) as client:
        unary = await client.messages.create(**kw)
        async with client.messages.stream(**kw) as stream:
            return unary, await stream.get_final_message()


def o_sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=10)


def local(url: str, extra: str = "") -> str:
    """An openai_compat provider named `local` (output filters on by default)."""
    return provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)


async def claude(start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> str:
    """A daemon whose one provider, `claude`, answers "ok"; its URL."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    return d.url


async def post_chat(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A Chat Completions request as sent, past what an SDK would check."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=body) as resp,
    ):
        return resp.status, await resp.json()


def dropped(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every `capability.degraded` entry logged ("field: reason")."""
    return [d for e in logs if e["event"] == "capability.degraded" for d in e["dropped"]]
