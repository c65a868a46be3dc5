"""A screenshot in a conversation is not a long prompt: its base64 is left out of
the prompt estimate, so it neither looks cut when a backend reads it whole,
nor makes a `context_action: skip` profile pass over a small window, nor
inflates what count_tokens tells Claude Code about its context."""

from __future__ import annotations

import base64
import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import anthropic
import openai
from PIL import Image
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.state import reads
from coderouterd.status import status_of
from coderouterd.translate.images import IMAGE_TOKENS
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import child_env, run_cli

# ~120 KB of base64: ~30k tokens at four bytes each, ~1.6k as a backend counts an image.
SCREENSHOT = base64.b64encode(os.urandom(90_000)).decode()
QUESTION = "why does this page render blank? " * 200  # ~1.7k tokens of text
WINDOW = 8192
SEES = "capabilities: {vision: true}"


def with_screenshot() -> list[dict[str, Any]]:
    image = {"type": "base64", "media_type": "image/png", "data": SCREENSHOT}
    return [
        {
            "role": "user",
            "content": [{"type": "image", "source": image}, {"type": "text", "text": QUESTION}],
        }
    ]


def reads_it_whole(req: Recorded) -> Reply:
    """A vision backend's count: the text, and an image as ~1.6k tokens."""
    images = req.body.count(SCREENSHOT.encode())
    tokens = (len(req.body) - images * len(SCREENSHOT)) // 4 + images * IMAGE_TOKENS
    if "/chat/completions" in req.path:
        return Reply(dialect="openai", json=openai_completion("blank", prompt_tokens=tokens))
    return Reply(json=anthropic_message("blank", input_tokens=tokens))


async def vision_backend(start_daemon: StartDaemon, fake: FakeUpstream) -> RunningDaemon:
    """One openai_compat provider that sees images and counts what it is sent
    as it reads it."""
    fake.responder = reads_it_whole
    return await start_daemon(
        chain_yaml(provider_yaml("local", fake.url + "/v1", kind="openai_compat", extra=SEES))
    )


async def test_a_backend_that_reads_a_screenshot_whole_is_not_said_to_cut_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await vision_backend(start_daemon, fake_upstream)
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            for _ in range(2):
                await c.messages.create(model="m", max_tokens=10, messages=with_screenshot())
        status = status_of(d.daemon)
    assert [e for e in logs if e["event"] == "provider.prompt_truncated"] == []
    [local] = status.providers
    assert local.prompts_truncated == 0 and local.context_window is None
    assert "cut" not in render_status(status)
    await d.state.writer.flush()
    [estimate] = set(estimates(d))
    assert estimate < 4000  # the text and one image, not the base64


def estimates(d: RunningDaemon) -> list[int]:
    with sqlite3.connect(d.state.path) as db:
        return [r[0] for r in db.execute("SELECT prompt_estimate FROM requests")]


async def test_a_skip_profile_sends_a_screenshot_to_a_window_it_fits(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = reads_it_whole
    small = f"capabilities: {{max_context_tokens: {WINDOW}, vision: true}}"
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat", extra=small),
            provider_yaml("big", fake_upstream.url),
            profiles="  - {name: default, providers: [local, big], context_action: skip}\n",
        )
    )
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
        raw = await c.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=with_screenshot()
        )
        # Text as long as the screenshot's base64 does not fit, and is sent on.
        long = await c.messages.with_raw_response.create(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": "x " * (len(SCREENSHOT) // 2)}],
        )
    assert raw.headers["x-coderouter-provider"] == "local"
    assert long.headers["x-coderouter-provider"] == "big"
    assert long.headers["x-coderouter-fallback-reason"] == "local=context_too_small"


async def test_count_tokens_counts_a_screenshot_as_an_image(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("big", fake_upstream.url)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
        text = await c.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": QUESTION}]
        )
        both = await c.messages.count_tokens(model="m", messages=with_screenshot())
    assert 0 < both.input_tokens - text.input_tokens - IMAGE_TOKENS < 50  # the block's own JSON
    assert fake_upstream.requests == []


async def test_an_openai_clients_data_url_image_counts_as_an_image(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await vision_backend(start_daemon, fake_upstream)
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{SCREENSHOT}"}}
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as c:
            await c.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": [image, {"type": "text", "text": QUESTION}]}],
            )
        status_of(d.daemon)
    await d.state.writer.flush()
    assert [e for e in logs if e["event"] == "provider.prompt_truncated"] == []
    [estimate] = estimates(d)
    assert IMAGE_TOKENS < estimate < IMAGE_TOKENS + len(QUESTION) // 4 + 100


async def test_many_small_images_counted_small_by_the_backend_are_no_cut(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    icon = base64.b64encode(os.urandom(1500)).decode()
    text = "explain what each of these icons means in the toolbar. " * 450  # ~6k tokens

    def counts_images_small(req: Recorded) -> Reply:
        images = req.body.count(icon.encode())
        tokens = (len(req.body) - images * len(icon)) // 4 + images * 30
        return Reply(dialect="openai", json=openai_completion("ok", prompt_tokens=tokens))

    fake_upstream.responder = counts_images_small
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat", extra=SEES)
        )
    )
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": icon}}
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            raw = await c.messages.with_raw_response.create(
                model="m",
                max_tokens=10,
                messages=[
                    {"role": "user", "content": [*[image] * 10, {"type": "text", "text": text}]}
                ],
            )
        status = status_of(d.daemon)
    assert fake_upstream.requests[0].body.count(icon.encode()) == 10
    assert [e for e in logs if e["event"] == "provider.prompt_truncated"] == []
    assert status.providers[0].context_window is None
    await d.state.writer.flush()
    row = await d.state.writer.maintain(lambda c: reads.request(c, raw.headers["x-request-id"]))
    assert row is not None and row.prompt_images == 10
    assert row.prompt_estimate is not None and row.prompt_estimate > 10 * IMAGE_TOKENS


async def test_a_small_image_counts_what_its_pixels_cost(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """An image is counted by the size in its header, as the backends count it:
    a 200 x 200 picture is 54 tokens, in count_tokens, the request log and
    `coderouterd requests ID`."""
    out = io.BytesIO()
    Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3)).save(out, format="PNG")
    picture = {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(out.getvalue()).decode(),
        },
    }
    question = {"type": "text", "text": QUESTION}
    fake_upstream.script(Reply(json=anthropic_message("a cat", input_tokens=500)))
    state_dir = tmp_path / "state"
    d = await start_daemon(
        chain_yaml(
            provider_yaml("big", fake_upstream.url), top=f"server: {{state_dir: {state_dir}}}\n"
        ),
        state_dir=state_dir,
    )
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
        text = await c.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": [question]}]
        )
        both = await c.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": [picture, question]}]
        )
        raw = await c.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": [picture, question]}]
        )
    assert 0 < both.input_tokens - text.input_tokens - 54 < 50  # the block's own JSON
    await d.state.writer.flush()
    rid = raw.headers["x-request-id"]
    row = await d.state.writer.maintain(lambda c: reads.request(c, rid))
    assert row is not None
    assert (row.prompt_estimate, row.prompt_images, row.prompt_image_tokens) == (
        both.input_tokens,
        1,
        54,
    )
    shown = await run_cli("requests", rid, "--config", str(d.config_path), env=child_env(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "1 image counted 54 tokens by their size" in shown.stdout
