"""`coderouterd doctor PROVIDER`: will this backend work for a coding agent?

A backend can answer a one-token probe and still be useless to Claude Code:
it may never call tools, print them as text no filter can lift, cut a
stream short, or silently drop the start of a long prompt (Ollama's default
context window is a few thousand tokens; Claude Code's system prompt and
tools alone are tens of thousands). The doctor asks the provider five
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
PROBLEM (with what to change) or SKIP; an answer cut at the doctor's
max_tokens while the model still reasons is a WARN, as the check could
not see its answer. The exit status is 0 unless one is a PROBLEM, then 2
(an unreachable backend included), and 1 when the provider cannot be
asked at all (no such provider, its API key not set, or, for one that
forwards its clients' keys, no client key in the environment to ask it
with).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from coderouterd.client_key import client_key
from coderouterd.clock import SystemClock
from coderouterd.config import LoadedConfig
from coderouterd.doctor_answer import Answer, cut_unanswered, read_answer, refusal, too_long
from coderouterd.errors import CoderouterError, NoProviderAvailableError
from coderouterd.ingress.body import parse_body
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.runtime import Runtime, build_runtime
from coderouterd.wire.overflow import Overflow
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
# Room for a model that reasons before it answers (Qwen3, DeepSeek-R1 and
# their distills count the reasoning against max_tokens); the answers asked
# for are a word or a call, so any other model stops far short of it.
_MAX_TOKENS = 2048
# Above every Claude model's least cacheable prefix (4096 tokens for some).
_CACHED_TOKENS = 5000
# About four bytes a token, like the daemon's own estimates.
_FILLER = "The quick brown fox jumps over the lazy dog near the river bank. "
_RAISE_WINDOW = (
    "raise it (llama.cpp: -c, vLLM: --max-model-len, Ollama: num_ctx, LM Studio: the model's "
    "context length)"
)


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
        self._headers = client_key(
            config, os.environ, own_key=bool(runtime.adapters[config.name].api_key)
        )
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
            headers=self._headers,
            stream=parsed.stream,
            requested_model=parsed.model,
            profile="doctor",
            history=parsed.history,
            media=parsed.media,
        )

    async def ask(self, body: dict[str, Any]) -> Answer:
        reply = await self._runtime.engine.unary(self._call(body), self._plan)
        return read_answer(reply.status, reply.body, self.summaries.last)

    async def stream(self, body: dict[str, Any]) -> tuple[int, list[str], bytes]:
        """The status, the SSE events' names and the bytes: an error status's
        body when the stream never began."""
        sink = _Sink()
        unsent = await self._runtime.engine.stream(self._call(body), self._plan, sink)
        if unsent is not None:
            return unsent.status, [], unsent.body
        return 200, [e.event for e in SSEDecoder().feed(bytes(sink.data))], bytes(sink.data)

    async def timed(self, name: str, check: Callable[[], Awaitable[tuple[Verdict, str]]]) -> Check:
        """One check, its requests all within one --timeout."""
        clock = SystemClock()
        started = clock.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                verdict, detail = await check()
        except TimeoutError:
            verdict = "PROBLEM"
            detail = "no answer in time (raise --timeout for a model still loading)"
        except NoProviderAvailableError as exc:
            verdict, detail = "PROBLEM", _unserved(exc, self.summaries.last)
        except CoderouterError as exc:
            verdict, detail = "PROBLEM", str(exc)
        return Check(name, verdict, detail, round(clock.monotonic() - started, 2))


async def examine(
    loaded: LoadedConfig, provider: str, *, context_tokens: int, timeout_s: float
) -> list[Check]:
    if context_tokens < 1:
        # Checked here for want of a check in the argument parser.
        raise CoderouterError(f"--context-tokens must be 1 or more, not {context_tokens}")
    observer = _Summaries()
    runtime = build_runtime(loaded, env=os.environ, observer=observer, clock=SystemClock())
    try:
        why = runtime.unavailable_for("anthropic").get(provider)
        if why is not None and runtime.config.provider(provider) is not None:
            raise CoderouterError(f"provider {provider!r} cannot be asked: {why}")
        doctor = Doctor(runtime, provider, observer, timeout_s=timeout_s)
        checks = [await doctor.timed("answer", lambda: _answer(doctor))]
        rest: list[tuple[str, Callable[[], Awaitable[tuple[Verdict, str]]]]] = [
            ("stream", lambda: _stream(doctor)),
            ("tools", lambda: _tools(doctor)),
            ("context", lambda: _context(doctor, context_tokens)),
            ("cache", lambda: _cache(doctor)),
        ]
        if checks[0].verdict == "PROBLEM":
            return checks + [Check(n, "SKIP", "the provider gave no answer", 0.0) for n, _ in rest]
        for name, check in rest:
            checks.append(await doctor.timed(name, check))
        return checks
    finally:
        for adapter in runtime.adapters.values():
            await adapter.close()


def _unserved(exc: NoProviderAvailableError, summary: RequestSummary | None) -> str:
    """Why the provider gave no answer, by its name: the doctor's own
    one-provider profile, which the error names, is no name the user knows."""
    failed = [a for a in summary.attempts if a.outcome == "failed"] if summary else []
    return "; ".join(
        f"{a.provider} gave no answer ({a.reason}{f': {a.detail}' if a.detail else ''})"
        for a in failed
    ) or str(exc)


def _does_not_fit(prompt: str, overflow: Overflow) -> str:
    window = f" of {overflow.window} tokens" if overflow.window else ""
    said = f" (it said: {overflow.message})" if overflow.message else ""
    return f"{prompt} does not fit the backend's context window{window}{said}; {_RAISE_WINDOW}"


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "doctor",
        "max_tokens": _MAX_TOKENS,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def _answer(doctor: Doctor) -> tuple[Verdict, str]:
    answer = await doctor.ask(_ask("Reply with the single word: ready."))
    if answer.status != 200:
        return "PROBLEM", refusal(answer.status, answer.body)
    text = answer.text.strip()
    if text:
        return "OK", f"answered {text[:40]!r}"
    cut = cut_unanswered(answer, _MAX_TOKENS)
    if cut is not None:
        return "WARN", f"{cut}: it reasons at length before even a one-word reply (slower turns)"
    return "PROBLEM", "an empty answer"


async def _stream(doctor: Doctor) -> tuple[Verdict, str]:
    status, events, raw = await doctor.stream(_ask("Count from 1 to 5.", stream=True))
    if status != 200:
        return "PROBLEM", refusal(status, raw)
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
    answer = await doctor.ask(body)
    if answer.status != 200:
        said = refusal(answer.status, answer.body, "a request with tools")
        return "PROBLEM", f"{said}: does the model take tools?"
    if not answer.calls:
        return _no_call(answer)
    call = answer.calls[0]
    if not isinstance(call.input, dict):
        return "PROBLEM", f"a tool call whose input is not an object: {call.name} {call.input!r}"
    if call.name != "record_answer" or call.input.get("value") != "blue":
        return "PROBLEM", f"a tool call, but not the one asked for: {call.name} {call.input}"
    if answer.summary is not None and answer.summary.repairs:
        return (
            "OK",
            "the model wrote the call as text; the output filters lifted it (repair_tool_calls)",
        )
    return "OK", "a structured tool call"


def _no_call(answer: Answer) -> tuple[Verdict, str]:
    cut = cut_unanswered(answer, _MAX_TOKENS)
    if cut is not None:
        return "WARN", f"{cut}: this check could not tell whether it calls tools"
    return (
        "PROBLEM",
        f"the model answered {'in text' if answer.text.strip() else 'nothing'} instead of "
        "calling the tool: a coding agent cannot work with it (try another model, or a chat "
        "template with tool support)",
    )


async def _context(doctor: Doctor, tokens: int) -> tuple[Verdict, str]:
    filler = _FILLER * max(1, tokens * 4 // len(_FILLER))
    prompt = (
        f"The code word is {_WORD}. Remember it.\n\n{filler}\n\n"
        "What was the code word at the very start of this message? Answer with the word only."
    )
    answer = await doctor.ask(_ask(prompt))
    overflow = too_long(answer)
    if overflow is not None:
        return (
            "PROBLEM",
            _does_not_fit(f"a ~{tokens}-token prompt", overflow)
            + ", or check a smaller size with --context-tokens",
        )
    if answer.status != 200:
        said = refusal(answer.status, answer.body, f"a ~{tokens}-token prompt")
        return "PROBLEM", f"{said}: a context limit?"
    summary = answer.summary
    # An estimate is the daemon's count of what it sent, which says nothing of what was kept.
    reported = summary.usage if summary and not summary.usage_estimated else None
    seen = reported.input_tokens if reported else None
    counted = f" (the backend counted {seen} input tokens)" if seen is not None else ""
    if _WORD.lower() in answer.text.lower():
        return "OK", f"read back a word from the start of a ~{tokens}-token prompt{counted}"
    cut = cut_unanswered(answer, _MAX_TOKENS)
    if cut is not None:
        return "WARN", f"{cut}: this check could not tell whether the prompt's start was kept"
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
        answer = await doctor.ask(body)
        if answer.status != 200:
            return "PROBLEM", _cache_refused(answer, provider.kind)
        usages.append(answer.summary.usage if answer.summary is not None else None)
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


def _cache_refused(answer: Answer, kind: str) -> str:
    overflow = too_long(answer)
    if overflow is not None:
        return _does_not_fit(f"a ~{_CACHED_TOKENS}-token system prompt", overflow)
    # The answer check's request passed, so a malformed-request status most
    # likely refuses the markers; any other status is not theirs to answer for.
    if kind == "anthropic" and answer.status in (400, 422):
        said = refusal(answer.status, answer.body, "a request with cache_control")
        return (
            f"{said}: Claude Code marks every request so (set capabilities: "
            "{cache_control: false} to strip the markers)"
        )
    return refusal(answer.status, answer.body, f"a ~{_CACHED_TOKENS}-token system prompt")


def render(provider: str, checks: Sequence[Check]) -> str:
    lines = [f"doctor: {provider}"]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lines.append(f"  {c.verdict:<7} {c.name.ljust(width)}  {c.seconds:6.2f}s  {c.detail}")
    return "\n".join(lines)


def exit_status(checks: Sequence[Check]) -> int:
    return 2 if any(c.verdict == "PROBLEM" for c in checks) else 0
