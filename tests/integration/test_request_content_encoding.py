"""Request bodies in a content coding. gzip (x-gzip too) and deflate are
decoded as they arrive, what they decode to held to server.max_body_bytes;
any other coding is the client's error, answered like any body that cannot
be read: a 400 in its own envelope naming `body`, with its request id, one
`request.completed` line, one request row and one requests_total sample."""

from __future__ import annotations

import gzip
import json
import sqlite3
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


def gzip_fixed(data: bytes) -> bytes:
    """gzip without a timestamp: the same bytes, so the same test ids, in
    every test process (pytest-xdist's workers must collect alike)."""
    return gzip.compress(data, mtime=0)


BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
MESSAGES = json.loads(BODY)["messages"]
LIMIT = 2048
PATHS = [
    ("/v1/messages", "anthropic"),
    ("/v1/chat/completions", "openai"),
    ("/v1/messages/count_tokens", "anthropic"),
]


async def daemon(start_daemon: StartDaemon, fake: FakeUpstream) -> RunningDaemon:
    fake.default = Reply(json=anthropic_message("ok"))
    top = f"server: {{max_body_bytes: {LIMIT}}}\n"
    return await start_daemon(chain_yaml(provider_yaml("a", fake.url), top=top))


async def post(
    d: RunningDaemon, path: str, body: bytes, coding: str
) -> tuple[int, str, str | None, bytes]:
    headers = {"content-type": "application/json", "content-encoding": coding}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}{path}", data=body, headers=headers) as resp,
    ):
        content_type = resp.headers.get("content-type", "")
        return resp.status, content_type, resp.headers.get("x-request-id"), await resp.read()


def deflate_raw(data: bytes) -> bytes:
    """A bare deflate stream, without zlib's header, as some clients send `deflate`."""
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def completed(logs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [
        (e["request_id"], e["status"], e.get("error"))
        for e in logs
        if e["event"] == "request.completed"
    ]


async def rows(d: RunningDaemon) -> list[tuple[str, int, str | None]]:
    await d.state.writer.flush()
    con = sqlite3.connect(d.state.path)
    try:
        return list(con.execute("SELECT id, status, error FROM requests"))
    finally:
        con.close()


@pytest.mark.parametrize(("path", "dialect"), PATHS)
@pytest.mark.parametrize("coding", ["zstd", "br", "compress", "gzip, gzip"])
async def test_a_coding_the_daemon_cannot_decode_is_a_400_in_the_clients_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, path: str, dialect: str, coding: str
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    status, content_type, rid, raw = await post(d, path, BODY, coding)
    assert status == 400, raw
    assert content_type.startswith("application/json"), raw
    assert rid is not None
    body = json.loads(raw)
    error = body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param" if dialect == "openai" else "field"] == "body"
    assert "not supported" in error["message"]
    if dialect == "anthropic":
        assert body["request_id"] == rid
    assert fake_upstream.requests == []


async def test_a_body_in_a_coding_the_daemon_cannot_decode_is_logged_counted_and_stored(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    with capture_logs() as logs:
        status, _, rid, raw = await post(d, "/v1/messages", BODY, "zstd")
    said = json.loads(raw)["error"]["message"]
    assert status == 400
    assert completed(logs) == [(rid, 400, said)]
    assert await rows(d) == [(rid, 400, said)]
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        metrics = await resp.text()
    assert 'coderouterd_requests_total{dialect="anthropic",profile="",status="400"} 1' in metrics


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("x-gzip", gzip_fixed(BODY)),
        ("gzip, identity", gzip_fixed(BODY)),
    ],
)
async def test_a_gzip_body_under_another_spelling_is_decoded_and_answered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, coding: str, encoded: bytes
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    status, _, _, raw = await post(d, "/v1/messages", encoded, coding)
    assert status == 200, raw
    assert [json.loads(r.body)["messages"] for r in fake_upstream.requests] == [MESSAGES]


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip_fixed(BODY)),
        ("GZip", gzip_fixed(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", deflate_raw(BODY)),
        # Members one after another, as RFC 1952 allows.
        ("gzip", gzip_fixed(BODY[:20]) + gzip_fixed(BODY[20:])),
    ],
)
async def test_a_gzip_or_deflate_body_is_decoded_and_answered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, coding: str, encoded: bytes
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    status, _, _, raw = await post(d, "/v1/messages", encoded, coding)
    assert status == 200, raw
    assert [json.loads(r.body)["messages"] for r in fake_upstream.requests] == [MESSAGES]


async def test_a_small_body_that_decodes_past_the_limit_is_refused_at_the_limit(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    # 2 MB of spaces inside the JSON, about 2 KB sent: within the limit as sent.
    bomb = gzip_fixed(BODY[:-1] + b" " * 2_000_000 + b"}")
    assert len(bomb) < LIMIT
    with capture_logs() as logs:
        status, _, rid, raw = await post(d, "/v1/messages", bomb, "gzip")
    error = json.loads(raw)["error"]
    assert (status, error["type"], error["field"]) == (413, "request_too_large", "body")
    said = f"body: request body is larger than the limit of {LIMIT} bytes (once decoded from gzip)"
    assert error["message"] == said
    assert completed(logs) == [(rid, 413, said)]
    assert fake_upstream.requests == []


async def test_a_body_sent_past_the_limit_is_refused_though_it_decodes_to_little(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await daemon(start_daemon, fake_upstream)
    # gzip's header, 5000 bytes of empty deflate blocks, then the body.
    empty_blocks = b"\x00\x00\x00\xff\xff" * 1000
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    trailer = struct.pack("<II", zlib.crc32(BODY), len(BODY))
    padded = header + empty_blocks + deflate_raw(BODY) + trailer
    assert gzip.decompress(padded) == BODY
    status, _, _, raw = await post(d, "/v1/messages", padded, "gzip")
    error = json.loads(raw)["error"]
    assert (status, error["type"], error["field"]) == (413, "request_too_large", "body")
    assert fake_upstream.requests == []
