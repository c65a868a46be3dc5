"""Conversations sent as raw bytes, and their replay records read back."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp

from coderouterd.state.db import open_db
from coderouterd.state.replay import request_body
from tests.conftest import RunningDaemon

WORDS = (
    "read",
    "file",
    "edit",
    "test",
    "déf",
    "return",
    "import",
    "错误",
    "path",
    "line",
    '"q"',
    "a\\b",
    "\u2028",
    "😀",
)


def text(rng: random.Random, size: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(max(size // 6, 1)))


def msg(rng: random.Random, role: str, size: int = 600) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text(rng, size)}]}


def compact(body: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=ascii_only).encode()


async def post_raw(
    http: aiohttp.ClientSession, url: str, raw: bytes, path: str = "/v1/messages", **headers: str
) -> tuple[int, str]:
    async with http.post(
        url + path, data=raw, headers={"content-type": "application/json", **headers}
    ) as resp:
        await resp.read()
        return resp.status, resp.headers.get("x-request-id", "")


async def settle(d: RunningDaemon) -> None:
    """Every record built and committed (one drain at a time: this one waits
    for the background drain's record, however long it compresses)."""
    await d.state.replays.drain()
    await d.state.writer.flush()


async def stored_bodies(d: RunningDaemon) -> dict[str, bytes | Exception]:
    await settle(d)
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await conn.execute_fetchall("SELECT request_id FROM replays")
        out: dict[str, bytes | Exception] = {}
        for (rid,) in rows:
            try:
                out[rid] = await request_body(conn, rid)
            except Exception as exc:
                out[rid] = exc
        return out
    finally:
        await conn.close()


async def formats(d: RunningDaemon) -> dict[str, tuple[int, str | None]]:
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await conn.execute_fetchall("SELECT request_id, body_format, base_id FROM replays")
        return {rid: (fmt, base) for rid, fmt, base in rows}
    finally:
        await conn.close()
