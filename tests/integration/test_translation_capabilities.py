"""The capability registry decides what reaches a backend: thinking and cache_control."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, dropped

MESSAGES: list[Any] = [
    {
        "role": "user",
        "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
    }
]
SYSTEM: list[Any] = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}
RESTRICTED = '- {kind: anthropic, model: "claude-*", thinking: false, cache_control: false}\n'


async def claude_daemon(
    start_daemon: StartDaemon, fake: FakeUpstream, tmp_path: Path, rules: str | None
) -> str:
    top = ""
    if rules is not None:
        (tmp_path / "caps.yaml").write_text(rules)
        top = "capabilities_file: caps.yaml\n"  # next to the config file
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake.url), top=top))
    return d.url


async def test_a_backend_without_thinking_or_caching_gets_neither_and_the_drops_are_logged(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    url = await claude_daemon(start_daemon, fake_upstream, tmp_path, RESTRICTED)
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(
                model="m",
                max_tokens=4096,
                system=SYSTEM,
                messages=MESSAGES,
                thinking=THINKING,
                extra_body={"cache_control": {"type": "ephemeral"}},
            )
    sent = fake_upstream.requests[0]
    assert "thinking" not in sent.json
    assert b"cache_control" not in sent.body
    assert sent.json["system"] == [{"type": "text", "text": "be brief"}]
    assert sent.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert [d.split(":")[0] for d in dropped(logs)] == ["thinking", "cache_control"]


@pytest.mark.parametrize("name", ["claude", "ollama"])
async def test_a_backend_the_registry_allows_or_does_not_know_gets_the_body_as_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, name: str
) -> None:
    # "claude-model" has thinking and caching in the bundled rules; nothing is
    # known of "ollama-model", so nothing is taken away from it either.
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml(name, fake_upstream.url)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(
                model="m", max_tokens=4096, system=SYSTEM, messages=MESSAGES, thinking=THINKING
            )
    fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode(fake_upstream.requests[0].body)
    assert bytes(fields["messages"]) == json.dumps(MESSAGES, separators=(",", ":")).encode()
    assert msgspec.json.decode(fields["system"]) == SYSTEM
    assert msgspec.json.decode(fields["thinking"]) == THINKING
    assert dropped(logs) == []


async def test_an_openai_clients_reasoning_effort_is_dropped_for_a_backend_without_thinking(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    url = await claude_daemon(start_daemon, fake_upstream, tmp_path, RESTRICTED)
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
            await client.chat.completions.create(
                model="x",
                messages=[{"role": "user", "content": "hi"}],
                reasoning_effort="high",
                max_tokens=30000,
            )
    assert "thinking" not in fake_upstream.requests[0].json
    assert [d.split(":")[0] for d in dropped(logs)] == ["reasoning_effort"]


async def reasoning_backend(
    start_daemon: StartDaemon, fake: FakeUpstream, tmp_path: Path, *, thinking: bool
) -> str:
    """A daemon whose one provider is an openai_compat backend asked to
    reason through reasoning_effort (when its model can)."""
    rules = tmp_path / "caps.yaml"
    rules.write_text(
        f'- {{kind: openai_compat, model: "local-*", thinking: {str(thinking).lower()},'
        " reasoning_param: reasoning_effort}\n"
    )
    fake.default = Reply(dialect="openai", json=openai_completion("ok"))
    provider = provider_yaml("local", fake.url + "/v1", kind="openai_compat")
    d = await start_daemon(chain_yaml(provider, top=f"capabilities_file: {rules}\n"))
    return d.url


async def test_an_openai_compat_model_that_cannot_reason_gets_no_reasoning_parameter(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The backend has a reasoning switch, but this model cannot use it.
    url = await reasoning_backend(start_daemon, fake_upstream, tmp_path, thinking=False)
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(
                model="m",
                max_tokens=4096,
                messages=[{"role": "user", "content": "hi"}],
                thinking=THINKING,
            )
    sent = fake_upstream.requests[0].json
    assert not {"reasoning_effort", "reasoning", "think"} & set(sent)
    assert dropped(logs) == ["thinking: the model cannot reason (capabilities: thinking: false)"]


async def test_system_messages_are_folded_for_a_backend_that_rejects_them(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    rules = '- {kind: anthropic, model: "local-*", system_messages: false}\n'
    (tmp_path / "caps.yaml").write_text(rules)
    provider = provider_yaml("local", fake_upstream.url)
    d = await start_daemon(chain_yaml(provider, top="capabilities_file: caps.yaml\n"))
    history = [
        {"role": "user", "content": "q"},
        {"role": "system", "content": "Plan mode is on."},
        {"role": "user", "content": "go"},
    ]
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(
                model="m",
                max_tokens=10,
                system="base",
                messages=history,
            )
    sent = fake_upstream.requests[0].json
    assert sent["system"] == [
        {"type": "text", "text": "base"},
        {"type": "text", "text": "Plan mode is on."},
    ]
    assert [m["role"] for m in sent["messages"]] == ["user", "user"]
    assert [d.split(":")[0] for d in dropped(logs)] == ["messages.system"]


# What Claude Code sends for a subagent: no thinking, but an effort level.
SUBAGENT: dict[str, Any] = {
    "thinking": {"type": "disabled"},
    "extra_body": {"output_config": {"effort": "medium"}},
}


@pytest.mark.parametrize("rule", [None, "effort: false"])
async def test_a_subagents_effort_is_removed_only_for_an_anthropic_backend_that_refuses_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path, rule: str | None
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    rules = None if rule is None else f'- {{kind: anthropic, model: "claude-*", {rule}}}\n'
    url = await claude_daemon(start_daemon, fake_upstream, tmp_path, rules)
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES, **SUBAGENT)
    sent = fake_upstream.requests[0].json
    assert sent["thinking"] == {"type": "disabled"}
    if rule is None:
        assert sent["output_config"] == {"effort": "medium"}
        assert dropped(logs) == []
    else:
        assert "output_config" not in sent
        assert dropped(logs) == [
            "output_config.effort: the backend does not accept an effort level"
        ]


async def test_a_subagent_on_an_openai_compat_backend_gets_neither_reasoning_nor_effort(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = await reasoning_backend(start_daemon, fake_upstream, tmp_path, thinking=True)
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES, **SUBAGENT)
    sent = fake_upstream.requests[0].json
    assert not {"reasoning_effort", "reasoning", "think", "output_config"} & set(sent)
    assert [d.split(":")[0] for d in dropped(logs)] == ["cache_control", "output_config"]


@pytest.mark.parametrize("client", ["anthropic", "openai"])
@pytest.mark.parametrize("kind", ["anthropic", "openai_compat"])
async def test_extra_body_fields_reach_the_provider_unless_the_body_has_them(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, client: str, kind: str
) -> None:
    openai_kind = kind == "openai_compat"
    fake_upstream.default = (
        Reply(dialect="openai", json=openai_completion("ok"))
        if openai_kind
        else Reply(json=anthropic_message("ok"))
    )
    extra = "extra_body: {cache_prompt: true, temperature: 0.1, chat_template_kwargs: {a: [1]}}"
    base = fake_upstream.url + ("/v1" if openai_kind else "")
    d = await start_daemon(chain_yaml(provider_yaml("local", base, kind=kind, extra=extra)))
    hi = [{"role": "user", "content": "hi"}]
    if client == "anthropic":
        async with a_sdk(d.url) as a:
            await a.messages.create(
                model="m", max_tokens=10, messages=hi, extra_body={"temperature": 0.7}
            )
    else:
        async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as o:
            await o.chat.completions.create(model="m", messages=hi, temperature=0.7)
    sent = fake_upstream.requests[0].json
    assert sent["cache_prompt"] is True
    assert sent["chat_template_kwargs"] == {"a": [1]}
    assert sent["temperature"] == 0.7  # the client's own value wins
    assert sent["model"] == "local-model"


async def test_a_providers_own_capabilities_win_over_the_rules_for_it_alone(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    # The rules say both backends' models reason; one server's says otherwise.
    rules = tmp_path / "caps.yaml"
    rules.write_text('- {kind: anthropic, model: "*-model", thinking: true}\n')
    async with FakeUpstream(default=Reply(json=anthropic_message("ok"))) as fake:
        plain = provider_yaml("plain", fake.url)
        own = provider_yaml("own", fake.url, extra="capabilities: {thinking: false}")
        top = f"capabilities_file: {rules}\n"
        d = await start_daemon(
            chain_yaml(plain, own, top=top) + "  - {name: second, providers: [own]}\n"
        )
        with capture_logs() as logs:
            async with a_sdk(d.url) as client:
                for mode in ("default", "second"):
                    await client.messages.create(
                        model="m",
                        max_tokens=4096,
                        messages=[{"role": "user", "content": "hi"}],
                        thinking=THINKING,
                        extra_headers={"x-coderouter-profile": mode},
                    )
        assert ["thinking" in r.json for r in fake.requests] == [True, False]
    assert dropped(logs) == ["thinking: the model cannot reason (capabilities: thinking: false)"]


def breakpoints(body: Any) -> list[Any]:
    """Every cache_control in a body."""
    if isinstance(body, dict):
        here = [body["cache_control"]] if "cache_control" in body else []
        return here + [c for k, v in body.items() if k != "cache_control" for c in breakpoints(v)]
    if isinstance(body, list):
        return [c for v in body for c in breakpoints(v)]
    return []


@pytest.mark.parametrize("fold", [False, True], ids=["as-sent", "system-folded"])
async def test_an_anthropic_backend_gets_the_clients_breakpoints_and_no_more(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path, fold: bool
) -> None:
    """Anthropic allows four cache_control breakpoints; the router neither adds
    one nor loses one (or its ttl) when it folds system messages."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    top = ""
    if fold:
        (tmp_path / "caps.yaml").write_text(
            '- {kind: anthropic, model: "local-*", system_messages: false}\n'
        )
        top = "capabilities_file: caps.yaml\n"
    d = await start_daemon(
        chain_yaml(provider_yaml("local", fake_upstream.url), top=top)
        + "    append_system_prompt: Answer in English.\n"
    )
    hour = {"type": "ephemeral", "ttl": "1h"}
    system = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": hour},
        {"type": "text", "text": "Tools: Read, Edit.", "cache_control": {"type": "ephemeral"}},
    ]
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Plan mode.", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "go", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
            ],
        },
    ]
    async with a_sdk(d.url) as client:
        await client.messages.create(
            model="m",
            max_tokens=10,
            system=system,
            messages=history,  # type: ignore[arg-type]
        )
    sent = fake_upstream.requests[0].json
    sent_marks = sorted(map(json.dumps, breakpoints(sent)))
    assert sent_marks == sorted(map(json.dumps, breakpoints([system, history])))
    assert len(sent_marks) == 4
    assert ("system" in [m["role"] for m in sent["messages"]]) is not fold
