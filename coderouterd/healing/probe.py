"""A recovery probe: one tiny completion request to an excluded provider.

It asks the provider's model for one token, in the provider's own dialect,
through the provider's adapter (its URL, credentials, extra headers and
connection pool), outside the engine: a probe is no client request, so it
writes no request row, spends no budget and tells no observer. Its answer is
judged as a real request's would be. A backend counts as recovered when it
answers 2xx within the timeout with a JSON object (for an OpenAI-compatible
one, a completion: OpenRouter says an error in a 200 body, which fails a
real request too); a 401/403 is no recovery (the backend is up, but would
refuse real requests too), unless the provider forwards the client's key
and has none of its own: a probe has no key to send, and the answer shows
the backend up. Nor is another 4xx a failure, when a real request would get
it back (not 408/409/429, nor out of memory): the backend is up and refused
the probe's body (a model that takes no `max_tokens`, or wants more than
one token), so the outcome is `returned`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec

from coderouterd.clock import Clock
from coderouterd.errors import UpstreamError, UpstreamStatusError
from coderouterd.providers.base import HttpAdapter
from coderouterd.routing.call import Call
from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.translate.answer_check import check_completion, check_message

_PROMPT = [{"role": "user", "content": "ping"}]


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    latency_ms: float
    status: int | None = None
    # Why it failed: "timeout", "status_503", "auth_rejected", "not_json", an error's reason.
    reason: str | None = None
    # Answered with a 4xx a real request would get back (`ok` too: the
    # backend is up); it counts neither as a failure nor as a success.
    returned: bool = False


def _borrows_keys(adapter: HttpAdapter) -> bool:
    return adapter.config.forward_client_key and not adapter.api_key


def _handed_back(exc: UpstreamStatusError) -> bool:
    """Whether a real request answered so would get the answer back (or
    try the next provider without blaming this one: a prompt too long)."""
    verdict = classify_status(exc.status, exc.error_type, memory_pressure=exc.memory_pressure)
    return verdict is Verdict.RETURN or exc.overflow is not None


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
        return _refused(adapter, exc, took())
    except UpstreamError as exc:
        return ProbeOutcome(False, took(), reason=exc.reason)
    return _answered(adapter, resp.status, body, took())


def _refused(adapter: HttpAdapter, exc: UpstreamStatusError, latency_ms: float) -> ProbeOutcome:
    auth = exc.status in (401, 403)
    if auth and _borrows_keys(adapter):
        # Real requests carry the client's key, which a probe lacks: the
        # backend answered, so it is up.
        return ProbeOutcome(True, latency_ms, exc.status, "auth_rejected")
    reason = "auth_rejected" if auth else f"status_{exc.status}"
    if not auth and _handed_back(exc):
        return ProbeOutcome(True, latency_ms, exc.status, reason, returned=True)
    return ProbeOutcome(False, latency_ms, exc.status, reason)


def _answered(adapter: HttpAdapter, status: int, body: bytes, latency_ms: float) -> ProbeOutcome:
    """A 2xx answer: a recovery if a real request would take it for one."""
    try:
        answer = msgspec.json.decode(body)
    # Nested past msgspec's depth limit: no answer a real request would take.
    except (msgspec.DecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        return ProbeOutcome(False, latency_ms, status, "not_json")
    check = check_message if adapter.config.kind == "anthropic" else check_completion
    try:
        check(adapter.name, answer, body)
    except UpstreamError as exc:
        return ProbeOutcome(False, latency_ms, status, exc.reason)
    return ProbeOutcome(True, latency_ms, status)
