"""README "HTTP API": the metrics table against what GET /metrics serves."""

from __future__ import annotations

import re

import aiohttp
import anthropic
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.readme import section, table_rows, ticked

PREFIX = "coderouterd_"
# Every feature a family depends on turned on: the auto router, an adaptive
# profile (pace), a cost block with a budget, a max_concurrent.
AUTO = """\
default_profile: auto
auto_router:
  default_rule_profile: main
  rules:
    - {id: side, profile: main, match: {model_pattern: "claude-haiku.*"}}
"""


def _parenthesised(text: str) -> str:
    return "".join(re.findall(r"\([^)]*\)", text))


def documented_metrics() -> dict[str, tuple[set[str], set[str]]]:
    """name -> (labels every sample has, labels some samples have: those the
    README writes in parentheses)."""
    http = section("HTTP API")
    table = http[http.index("**Metrics.**") :].split("\n\n")[1]
    out: dict[str, tuple[set[str], set[str]]] = {}
    for metric_cell, label_cell, *_ in table_rows(table):
        required = set(ticked(re.sub(r"\([^)]*\)", "", label_cell)))
        optional = set(ticked(_parenthesised(label_cell)))
        # A metric cell may name its own labels: `state_rows_lost_total` (`why`).
        for part in re.split(r",|/", metric_cell):
            inner = set(ticked(_parenthesised(part)))
            for name in ticked(re.sub(r"\([^)]*\)", "", part)):
                out[name] = (required | inner, optional)
    return out


async def scrape(start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> str:
    fake_upstream.default = Reply(json=anthropic_message("ok", output_tokens=40))
    provider = provider_yaml(
        "a",
        fake_upstream.url,
        extra="max_concurrent: 2\ncost: {input_tokens_per_million: 1, output_tokens_per_million: 2,"
        " monthly_budget_usd: 5}",
    )
    profiles = "  - {name: main, providers: [a], adaptive: true}\n"
    d = await start_daemon(chain_yaml(provider, profiles=profiles, top=AUTO))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
            await client.messages.create(
                model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
    await d.state.writer.flush()
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_every_documented_metric_is_served_with_its_labels_and_no_other(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    served: dict[str, list[set[str]]] = {}
    for family in text_string_to_metric_families(await scrape(start_daemon, fake_upstream)):
        name = family.name + ("_total" if family.type == "counter" else "")
        served[name.removeprefix(PREFIX)] = [set(s.labels) - {"le"} for s in family.samples]
    documented = documented_metrics()
    assert sorted(set(documented) - set(served)) == [], "documented, not served"
    assert sorted(set(served) - set(documented)) == [], "served, not documented"
    wrong = {}
    for name, (required, optional) in documented.items():
        for labels in served[name]:
            if not required <= labels <= required | optional:
                wrong[name] = (sorted(labels), sorted(required), sorted(optional))
    assert wrong == {}
