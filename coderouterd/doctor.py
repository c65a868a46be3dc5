"""`coderouterd doctor PROVIDER`: will this backend work for a coding agent?

A backend can answer a one-token probe and still be useless to Claude Code:
it may never call tools, print them as text no filter can lift, cut a
stream short, or silently drop the start of a long prompt (Ollama's default
context window is a few thousand tokens; Claude Code's system prompt and
tools alone are tens of thousands). The doctor asks the provider four
things, as an Anthropic client through the daemon's own engine (the
provider's codecs, output filters and tool-call repair, exactly what a
client would get) but without a daemon and without writing anything:

- answer: a short reply at all;
- stream: a streamed reply that ends cleanly;
- tools: a tool call when told to make one (lifted from text counts, and
  says so);
- context: a code word from the start of a long prompt, read back;
- cache: the same long system prompt, marked with cache_control, sent
  twice; the second request should read it from the prompt cache (an
  OpenAI-dialect backend's own prefix cache, when it reports one), or
  every turn of a session pays for its whole prompt.

Each check is OK, WARN (it works, but slower or dearer than it could),
PROBLEM (with what to change) or SKIP; the exit status is 0 unless one is
a PROBLEM, then 2 (an unreachable backend included), and 1 when the
provider cannot be asked at all (no such provider, its API key not set).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from coderouterd.clock import SystemClock
from coderouterd.config import LoadedConfig
from coderouterd.errors import CoderouterError
from coderouterd.ingress.body import parse_body
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.runtime import Runtime, build_runtime
from coderouterd.wire.sse import SSEDecoder
from coderouterd.wire.usage import Usage

Verdict = Literal["OK", "WARN", "PROBLEM", "SKIP"]

_TOOL = {
    "name": "record_answer",
    "description": "Records the answer.",
    "input_schema": {
        "type": "object",
        "properties": {"value": {"type": "string"}},
        "required": ["value"],
    },
}
_WORD = "MARMALADE"
# Above every Claude model's least cacheable prefix (4096 tokens for some).
_CACHED_TOKENS = 5000
# About four bytes a token, like the daemon's own estimates.
_FILLER = "The quick brown fox jumps over the lazy dog near the river bank. "


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    seconds: float


class _Summaries(BaseObserver):
    def __init__(self) -> None:
        self.last: RequestSummary | None = None

    def request_finished(self, summary: RequestSummary) -> None:
        self.last = summary


class _Sink:
    """A client that keeps what a stream sent."""

    def __init__(self) -> None:
        self.started = False
        self.data = bytearray()

    async def ping(self) -> None:
        self.started = True

    async def commit(self, headers: Mapping[str, str]) -> None:
        self.started = True

    async def write(self, data: bytes) -> None:
        self.data += data

    async def fail(self, error_type: str, message: str) -> None:
        data = msgspec.json.encode({"type": "error", "error": {"message": message}})
        self.data += b"event: error\ndata: " + data + b"\n\n"

    async def finish(self) -> None:
        pass


class Doctor:
    def __init__(
        self, runtime: Runtime, provider: str, summaries: _Summaries, *, timeout_s: float
    ) -> None:
        config = runtime.config.provider(provider)
        if config is None:
            known = ", ".join(p.name for p in runtime.config.providers)
            raise CoderouterError(f"no provider {provider!r} (configured: {known})")
        self._runtime = runtime
        self.provider = config
        self._plan = Plan("doctor", (config,), ())
        self._timeout_s = timeout_s
        self.caps = runtime.capabilities[provider]
        self._ids = itertools.count(1)
        self.summaries = summaries

    def _call(self, body: dict[str, Any]) -> Call:
        parsed = parse_body(msgspec.json.encode(body))
        return Call(
            request_id=f"doctor-{next(self._ids)}",
            dialect="anthropic",
            fields=parsed.fields,
            headers={},
            stream=parsed.stream,
            requested_model=parsed.model,
            profile="doctor",
            history=parsed.history,
            media=parsed.media,
        )

    async def ask(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], RequestSummary | None]:
        async with asyncio.timeout(self._timeout_s):
            reply = await self._runtime.engine.unary(self._call(body), self._plan)
        try:
            message = msgspec.json.decode(reply.body) if reply.body else {}
        except msgspec.DecodeError:
            message = {}
        return reply.status, message if isinstance(message, dict) else {}, self.summaries.last

    async def stream(self, body: dict[str, Any]) -> tuple[list[str], bytes]:
        sink = _Sink()
        async with asyncio.timeout(self._timeout_s):
            unsent = await self._runtime.engine.stream(self._call(body), self._plan, sink)
        if unsent is not None:
            return ["http"], unsent.body
        return [e.event for e in SSEDecoder().feed(bytes(sink.data))], bytes(sink.data)


async def examine(
    loaded: LoadedConfig, provider: str, *, context_tokens: int, timeout_s: float
) -> list[Check]:
    observer = _Summaries()
    runtime = build_runtime(loaded, env=os.environ, observer=observer, clock=SystemClock())
    try:
        why = runtime.unavailable_for("anthropic").get(provider)
        if why is not None and runtime.config.provider(provider) is not None:
            raise CoderouterError(f"provider {provider!r} cannot be asked: {why}")
        doctor = Doctor(runtime, provider, observer, timeout_s=timeout_s)
        checks = [await _timed("answer", lambda: _answer(doctor))]
        rest: list[tuple[str, Callable[[], Awaitable[tuple[Verdict, str]]]]] = [
            ("stream", lambda: _stream(doctor)),
            ("tools", lambda: _tools(doctor)),
            ("context", lambda: _context(doctor, context_tokens)),
            ("cache", lambda: _cache(doctor)),
        ]
        if checks[0].verdict != "OK":
            return checks + [Check(n, "SKIP", "the provider gave no answer", 0.0) for n, _ in rest]
        for name, check in rest:
            checks.append(await _timed(name, check))
        return checks
    finally:
        for adapter in runtime.adapters.values():
            await adapter.close()


async def _timed(name: str, check: Callable[[], Awaitable[tuple[Verdict, str]]]) -> Check:
    clock = SystemClock()
    started = clock.monotonic()
    try:
        verdict, detail = await check()
    except TimeoutError:
        verdict, detail = "PROBLEM", "no answer in time (raise --timeout for a model still loading)"
    except CoderouterError as exc:
        verdict, detail = "PROBLEM", str(exc)
    return Check(name, verdict, detail, round(clock.monotonic() - started, 2))


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "doctor",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def _text(message: Mapping[str, Any]) -> str:
    blocks = message.get("content")
    return (
        "".join(b.get("text", "") for b in blocks if isinstance(b, dict))
        if isinstance(blocks, list)
        else ""
    )


async def _answer(doctor: Doctor) -> tuple[Verdict, str]:
    status, message, _ = await doctor.ask(_ask("Reply with the single word: ready."))
    if status != 200:
        error = message.get("error", {})
        return (
            "PROBLEM",
            f"status {status}: {error.get('message', '') if isinstance(error, dict) else ''}",
        )
    text = _text(message).strip()
    if not text:
        return "PROBLEM", "an empty answer"
    return "OK", f"answered {text[:40]!r}"


async def _stream(doctor: Doctor) -> tuple[Verdict, str]:
    events, raw = await doctor.stream(_ask("Count from 1 to 5.", stream=True))
    if events and events[-1] == "message_stop":
        return "OK", f"{events.count('content_block_delta')} deltas, ended with message_stop"
    if "error" in events:
        return "PROBLEM", "the stream ended with an error event: " + raw[-300:].decode(
            errors="replace"
        )
    return (
        "PROBLEM",
        f"the stream did not end cleanly (last event {events[-1] if events else 'none'!r})",
    )


async def _tools(doctor: Doctor) -> tuple[Verdict, str]:
    body = _ask(
        "Call the record_answer tool with value 'blue'. Do not answer in text.",
        tools=[_TOOL],
    )
    status, message, summary = await doctor.ask(body)
    if status != 200:
        return "PROBLEM", f"status {status} for a request with tools (does the model take tools?)"
    calls = [
        b for b in message.get("content", []) if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    if not calls:
        return (
            "PROBLEM",
            "the model answered in text instead of calling the tool: a coding agent cannot "
            "work with it (try another model, or a chat template with tool support)",
        )
    call = calls[0]
    if call.get("name") != "record_answer" or call.get("input", {}).get("value") != "blue":
        return (
            "PROBLEM",
            f"a tool call, but not the one asked for: {call.get('name')} {call.get('input')}",
        )
    if summary is not None and summary.repairs:
        return (
            "OK",
            "the model wrote the call as text; the output filters lifted it (repair_tool_calls)",
        )
    return "OK", "a structured tool call"


async def _context(doctor: Doctor, tokens: int) -> tuple[Verdict, str]:
    filler = _FILLER * max(1, tokens * 4 // len(_FILLER))
    prompt = (
        f"The code word is {_WORD}. Remember it.\n\n{filler}\n\n"
        "What was the code word at the very start of this message? Answer with the word only."
    )
    status, message, summary = await doctor.ask(_ask(prompt))
    refused = (
        next((a for a in summary.attempts if a.outcome == "too_long"), None) if summary else None
    )
    if refused is not None:
        window = f" of {refused.context_window} tokens" if refused.context_window else ""
        return (
            "PROBLEM",
            f"a ~{tokens}-token prompt does not fit the backend's context window{window} "
            f"(it said: {refused.detail}); raise it (llama.cpp: -c, vLLM: --max-model-len, "
            "Ollama: num_ctx, LM Studio: the model's context length), or check a smaller "
            "size with --context-tokens",
        )
    if status != 200:
        return "PROBLEM", f"status {status} for a ~{tokens}-token prompt (a context limit?)"
    seen = summary.usage.input_tokens if summary and summary.usage else None
    counted = f" (the backend counted {seen} input tokens)" if seen is not None else ""
    if _WORD.lower() in _text(message).lower():
        return "OK", f"read back a word from the start of a ~{tokens}-token prompt{counted}"
    return (
        "PROBLEM",
        f"the start of a ~{tokens}-token prompt was lost{counted}: the backend's context window "
        "is smaller than that (Ollama: OLLAMA_CONTEXT_LENGTH or the model's num_ctx; "
        "llama.cpp: -c)",
    )


async def _cache(doctor: Doctor) -> tuple[Verdict, str]:
    """The same long system prompt twice: the second should be read from the
    prompt cache (marked with cache_control, which an OpenAI-dialect backend
    never sees: its own prefix cache, when it reports one)."""
    provider = doctor.provider
    if provider.kind == "anthropic" and doctor.caps.cache_control is False:
        return "SKIP", "capabilities say cache_control: false (the markers are stripped)"
    filler = _FILLER * (_CACHED_TOKENS * 4 // len(_FILLER))
    system = [{"type": "text", "text": filler, "cache_control": {"type": "ephemeral"}}]
    body = _ask("Reply with the single word: cached.", system=system)
    usages: list[Usage | None] = []
    for _ in range(2):
        status, _, summary = await doctor.ask(body)
        if status != 200 and provider.kind == "anthropic":
            return (
                "PROBLEM",
                f"status {status} for a request with cache_control: Claude Code marks every "
                "request so (set capabilities: {cache_control: false} to strip the markers)",
            )
        if status != 200:
            return "PROBLEM", f"status {status} for a ~{_CACHED_TOKENS}-token system prompt"
        usages.append(summary.usage if summary is not None else None)
    first, second = usages
    read = second.cache_read_input_tokens if second is not None else None
    if read is None:
        return "SKIP", "the backend reports no cached tokens"
    wrote = first.cache_creation_input_tokens if first is not None else None
    if read > 0:
        return "OK", f"the second request read {read} cached tokens (the first wrote {wrote})"
    return (
        "WARN",
        f"the second of two identical requests read nothing from the cache (the first wrote "
        f"{wrote}): each turn of a session is prefilled whole; check the server's "
        "prompt-cache settings",
    )


def render(provider: str, checks: Sequence[Check]) -> str:
    lines = [f"doctor: {provider}"]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lines.append(f"  {c.verdict:<7} {c.name.ljust(width)}  {c.seconds:6.2f}s  {c.detail}")
    return "\n".join(lines)


def exit_status(checks: Sequence[Check]) -> int:
    return 2 if any(c.verdict == "PROBLEM" for c in checks) else 0
