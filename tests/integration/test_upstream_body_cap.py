"""An answer, or one frame of a stream, far larger than any a model gives
(a backend writing without end, a gzip body of blanks) fails its provider
at 64 MiB, as a malformed answer does: the next provider answers, and the
daemon's memory stays bounded."""

from __future__ import annotations

import asyncio
import zlib

import aiohttp
import anthropic
import pytest

from coderouterd.providers.base import MAX_ANSWER_BYTES
from coderouterd.wire.sse import MAX_FRAME_BYTES, FrameTooLargeError, SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_budget_usage import only_row

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
MIB = 1024 * 1024


def gzipped(head: bytes, block: bytes, mib: int) -> list[bytes]:
    """`head` then `mib` MiB of `block`, gzip encoded, one write per MiB:
    about 1 KiB each on the wire."""
    z = zlib.compressobj(wbits=31)
    first = z.compress(head) + z.flush(zlib.Z_SYNC_FLUSH)
    return [first] + [z.compress(block * MIB) + z.flush(zlib.Z_SYNC_FLUSH) for _ in range(mib)]


def endless(head: bytes, block: bytes, content_type: str, resume: asyncio.Event) -> Reply:
    """Past both caps, then nothing more until the test ends."""
    chunks = gzipped(head, block, 72)
    return Reply(
        headers={"content-type": content_type, "content-encoding": "gzip"},
        writes=chunks,
        pause_after_frames=len(chunks) - 1,
        resume=resume,
    )


async def test_an_endless_answer_is_cut_off_and_the_next_provider_answers(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    assert MAX_ANSWER_BYTES == 64 * MIB
    never = asyncio.Event()
    async with FakeUpstream() as b:
        b.default = Reply(json=anthropic_message("from b"))
        fake_upstream.script(endless(b"", b" ", "application/json", never))
        d = await start_daemon(
            chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", b.url))
        )
        client = anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0, timeout=15)
        async with client:
            raw = await client.messages.with_raw_response.create(**BODY)
        never.set()
    assert (await raw.parse()).content[0].text == "from b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=protocol_error"


async def test_an_endless_stream_frame_is_cut_off_and_the_next_provider_answers(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    never = asyncio.Event()
    async with FakeUpstream() as b:
        b.default = Reply(events=anthropic_text_stream(["from b"]))
        head = b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":"'
        fake_upstream.script(endless(head, b"x", "text/event-stream", never))
        d = await start_daemon(
            chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", b.url))
        )
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
            http.post(f"{d.url}/v1/messages", json={**BODY, "stream": True}) as resp,
        ):
            text = await resp.text()
        never.set()
    assert resp.headers["x-coderouter-provider"] == "b"
    assert resp.headers["x-coderouter-fallback-reason"] == "a=protocol_error"
    assert '"text": "from b"' in text or '"text":"from b"' in text
    # The cap is named, as the daemon's own limit, not as a stream it could not read.
    [first, _] = (await only_row(d)).attempts
    assert first.detail == f"an SSE frame over the {MAX_FRAME_BYTES >> 20} MiB cap"


def test_an_incomplete_frame_up_to_the_cap_is_held_and_one_past_it_raises() -> None:
    assert MAX_FRAME_BYTES == 64 * MIB
    whole = b"data: " + b"x" * (MAX_FRAME_BYTES - 8) + b"\n\n"
    decoder = SSEDecoder()
    events = [e for at in range(0, len(whole), MIB) for e in decoder.feed(whole[at : at + MIB])]
    assert [len(e.data) for e in events] == [MAX_FRAME_BYTES - 8]
    with pytest.raises(FrameTooLargeError, match="64 MiB cap"):
        for _ in range(MAX_FRAME_BYTES // MIB + 1):
            decoder.feed(b"y" * MIB)
    with pytest.raises(FrameTooLargeError):
        SSEDecoder().feed(b"data: " + b"z" * MAX_FRAME_BYTES)
