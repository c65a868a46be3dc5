"""A recovery probe: one tiny completion request to an excluded provider.

It asks the provider's model for one token, in the provider's own dialect,
through the provider's adapter (its URL, credentials, extra headers and
connection pool), outside the engine: a probe is no client request, so it
writes no request row, spends no budget and tells no observer. A backend
counts as recovered when it answers 2xx with a JSON object within the
timeout; a 401/403 is no recovery (the backend is up, but would refuse real
requests too), unless the provider forwards the client's key and has none
of its own: a probe has no key to send, and the answer shows the backend up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec

from coderouterd.clock import Clock
from coderouterd.errors import UpstreamError, UpstreamStatusError
from coderouterd.providers.base import HttpAdapter
from coderouterd.routing.call import Call

_PROMPT = [{"role": "user", "content": "ping"}]


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    latency_ms: float
    status: int | None = None
    # Why it failed: "timeout", "status_503", "auth_rejected", "not_json", an error's reason.
    reason: str | None = None


def _borrows_keys(adapter: HttpAdapter) -> bool:
    return adapter.config.forward_client_key and not adapter.api_key


def probe_body(adapter: HttpAdapter) -> bytes:
    body = {"model": adapter.config.model, "max_tokens": 1, "messages": _PROMPT, "stream": False}
    return msgspec.json.encode(body)


async def probe(adapter: HttpAdapter, *, timeout_s: float, clock: Clock) -> ProbeOutcome:
    call = Call(
        request_id=f"probe-{adapter.name}",
        dialect="anthropic" if adapter.config.kind == "anthropic" else "openai",
        fields={},
        headers={},
        stream=False,
        requested_model=None,
        profile="",
    )
    started = clock.monotonic()

    def took() -> float:
        return round((clock.monotonic() - started) * 1000, 3)

    try:
        async with asyncio.timeout(timeout_s):
            resp = await adapter.open(call, probe_body(adapter))
            try:
                body = await resp.body()
            except BaseException:
                resp.abort()
                raise
            resp.release()
    except TimeoutError:
        return ProbeOutcome(False, took(), reason="timeout")
    except UpstreamStatusError as exc:
        auth = exc.status in (401, 403)
        if auth and _borrows_keys(adapter):
            # Real requests carry the client's key, which a probe lacks: the
            # backend answered, so it is up.
            return ProbeOutcome(True, took(), exc.status, "auth_rejected")
        reason = "auth_rejected" if auth else f"status_{exc.status}"
        return ProbeOutcome(False, took(), exc.status, reason)
    except UpstreamError as exc:
        return ProbeOutcome(False, took(), reason=exc.reason)
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    if not isinstance(answer, dict):
        return ProbeOutcome(False, took(), resp.status, "not_json")
    return ProbeOutcome(True, took(), resp.status)
