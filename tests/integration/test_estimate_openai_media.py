"""Inline media an OpenAI client sends are measured as media in the prompt
estimate the daemon routes by: the auto router's `content_token_count_min`
and the check that a backend cut a prompt (which, believed, teaches a
context window that sends later turns elsewhere). README, count_tokens: an
image counts what its pixels cost, a document's base64 nothing."""

from __future__ import annotations

import base64
import struct
from typing import Any

import openai
from structlog.testing import capture_logs

from coderouterd.status import status_of
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

PROFILES = """\
  - {name: main, providers: [small]}
  - {name: long, providers: [big]}
"""
# A rule for prompts too long for the small local model.
AUTO = """\
default_profile: auto
auto_router:
  default_rule_profile: main
  rules:
    - {id: huge-context, profile: long, match: {content_token_count_min: 20000}}
"""
PDF_B64 = base64.b64encode(b"%PDF-1.4\n" + b"\0" * 150_000).decode()  # ~50,000 tokens as text
PDF_URL = f"data:application/pdf;base64,{PDF_B64}"


def _png(width: int, height: int, size: int) -> bytes:
    """A PNG whose header says width x height, padded to `size` bytes (a
    screenshot's weight; the estimate reads only the header)."""
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"
    return head + b"\0" * (size - len(head))


ICON_URL = "data:image/png;base64," + base64.b64encode(_png(200, 200, 300_000)).decode()


async def _profile_chosen(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, content: list[dict[str, Any]]
) -> str:
    fake_upstream.default = Reply(json=openai_completion("ok"), dialect="openai")
    providers = (
        provider_yaml("small", f"{fake_upstream.url}/v1", kind="openai_compat"),
        provider_yaml("big", f"{fake_upstream.url}/v1", kind="openai_compat"),
    )
    d = await start_daemon(chain_yaml(*providers, profiles=PROFILES, top=AUTO))
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
            await client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
            )
    [done] = [e for e in logs if e["event"] == "request.completed"]
    return str(done["profile"])


async def test_a_pdf_sent_as_an_openai_file_part_does_not_make_a_prompt_long(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A short question with a 150 KB PDF as a `file` part (`file_data`, a
    data URL, the openai SDK's way) is a few dozen tokens: `main`, not the
    `huge-context` rule's `long`."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "What does this contract say about notice periods?"},
        {"type": "file", "file": {"filename": "c.pdf", "file_data": PDF_URL}},
    ]
    assert await _profile_chosen(start_daemon, fake_upstream, content) == "main"


async def test_an_image_url_given_as_the_data_url_itself_counts_its_pixels(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`image_url` as the data URL string (o2a_parts.image takes it) holding a
    300 KB, 200 x 200 PNG counts 54 tokens, not its 400 KB of base64."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "What icon is this?"},
        {"type": "image_url", "image_url": ICON_URL},
    ]
    assert await _profile_chosen(start_daemon, fake_upstream, content) == "main"


async def test_an_image_url_object_counts_its_pixels(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "What icon is this?"},
        {"type": "image_url", "image_url": {"url": ICON_URL}},
    ]
    assert await _profile_chosen(start_daemon, fake_upstream, content) == "main"


def reads_everything(req: Recorded) -> Reply:
    """A backend with a large window: it reads every prompt whole. A short
    PDF costs it about a thousand tokens, whatever its base64 weighs."""
    counted = 1_200 if b"file_data" in req.body else len(req.body) // 4
    return Reply(dialect="openai", json=openai_completion("ok", prompt_tokens=counted))


async def test_a_pdf_file_part_read_whole_does_not_teach_a_tiny_context_window(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`local` reads a question with a 150 KB PDF whole and counts 1,200
    tokens. Were the base64 estimated as ~50,000 tokens of text, `local`
    would look to have cut the prompt (`provider.prompt_truncated`), that
    window would be learned, and the next ordinary 3,300-token prompt would
    be routed around `local` (`context_too_small`) to `big`."""
    fake_upstream.responder = reads_everything
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("big", fake_upstream.url + "/v1", kind="openai_compat"),
        )
    )
    question = "Please review the following module for bugs. " * 300  # ~3,300 tokens
    document: list[dict[str, Any]] = [
        {"type": "text", "text": "Summarise this contract."},
        {"type": "file", "file": {"filename": "c.pdf", "file_data": PDF_URL}},
    ]
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
            first = await client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": document}],  # type: ignore[misc,list-item]
            )
            assert first.headers["x-coderouter-provider"] == "local"
            status_of(d.daemon)  # hands the finished requests' summaries over
            second = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": question}]
            )
    assert second.headers.get("x-coderouter-fallback-reason", "") == ""
    assert second.headers["x-coderouter-provider"] == "local"
    assert not [e for e in logs if e["event"] == "provider.prompt_truncated"]
