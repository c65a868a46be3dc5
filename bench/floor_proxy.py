"""The floor: the least a Python aiohttp proxy can do for one request.

A bare aiohttp server and one ClientSession. It reads the body bytes,
forwards them to the same path on the upstream, and streams the response back
chunk by chunk as it arrives. No parsing, no routing, no logging: whatever
coderouterd adds beyond this is the price of its features.

    python bench/floor_proxy.py --upstream http://127.0.0.1:PORT
Prints `PORT <n>` on stdout once it listens (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aiohttp
from aiohttp import web

_FORWARD = ("content-type", "anthropic-version", "anthropic-beta", "x-api-key", "accept")
UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def proxy(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {h: v for h in _FORWARD if (v := request.headers.get(h)) is not None}
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + request.path, data=body, headers=headers) as up:
        resp = web.StreamResponse(status=up.status)
        resp.content_type = up.content_type
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def _session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    yield
    await app[SESSION].close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1800, help="exit after this long")
    args = ap.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/{tail:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        print("floor_proxy: --max-seconds reached, exiting", file=sys.stderr)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
