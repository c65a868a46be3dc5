"""The answer when no provider answered, and the error types a stream
carries in place of a status once its headers went out.

When a provider found the prompt too long for its window, the client gets
that rather than "all failed": a 400 it can act on (Claude Code compacts
the conversation on `prompt is too long: N tokens > W maximum`), where a
503 would have it send the same prompt again. A provider the plan skipped
for a window smaller than the prompt would have said the same, had it been
tried: skipping it saves a round trip, and must not change the answer.

When the request could not be written for a provider (its dialect, its
model: errors.UntranslatableRequestError), the client gets that refusal's
400, unless a provider it was sent to failed: that one may answer a retry,
and the all-failed answer, whose attempts list the refusal, has the
client's SDK retry where a 400 would stop it. A provider the plan skipped
does not count: this request did not find it failing, and it is often
skipped for a standing reason (a paid provider blocked, one excluded, a
budget spent) that a retry would meet again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from coderouterd.errors import NoProviderAvailableError, UntranslatableRequestError
from coderouterd.routing.plan import SKIP_CONTEXT
from coderouterd.routing.progress import Progress, Reply
from coderouterd.routing.windows import Learned
from coderouterd.translate.estimate import estimate_prompt_tokens
from coderouterd.wire.errors import ANTHROPIC_TYPES, OPENAI_TYPES
from coderouterd.wire.overflow import Overflow, overflow_reply

# What was learned of a provider's window and how long ago, while it holds
# (LearnedWindows.learned).
LearnedOf = Callable[[str], tuple[Learned, float] | None]


def error_type_for(dialect: str, status: int) -> str:
    """The error type `dialect`'s API gives an error of `status`: what an
    error event in a stream says in place of that status."""
    if dialect == "openai":
        default = "server_error" if status >= 500 else "invalid_request_error"
        return OPENAI_TYPES.get(status, default)
    return ANTHROPIC_TYPES.get(status, "api_error")


def none_answered(
    progress: Progress,
    too_long: tuple[str, Overflow] | None,
    refused: UntranslatableRequestError | None = None,
    *,
    learned: LearnedOf,
    windows: Mapping[str, int],
) -> Reply:
    """The answer when no provider answered: the prompt too long, if one said
    so, or else if the plan skipped one for its window (`learned`, and the
    `windows` the providers' capabilities declare); else the request `refused`
    for a provider, unless one it was sent to failed; else all failed."""
    if too_long is None:
        too_long = skipped_for_window(progress, learned, windows)
    if too_long is None:
        if refused is not None and not any(r.outcome == "failed" for r in progress.records):
            raise refused
        raise NoProviderAvailableError(progress.plan.profile, progress.failures())
    name, overflow = too_long
    progress.error = overflow.message
    call = progress.call
    body = overflow_reply(call.dialect, overflow, name, request_id=call.request_id)
    return Reply(400, body, "application/json", progress.headers(None), outcome="returned")


def skipped_for_window(
    progress: Progress, learned: LearnedOf, windows: Mapping[str, int]
) -> tuple[str, Overflow] | None:
    """Of the providers skipped for a window smaller than the prompt (and
    not tried after all, as a last resort), the one with the largest window
    (a client compacts the least to fit it), and what it would have said."""
    skipped = [
        r.provider for r in progress.records if r.outcome == "skipped" and r.reason == SKIP_CONTEXT
    ]
    if not skipped:
        return None
    # Measured as the plan measured it: on the fields the providers are sent.
    estimate = estimate_prompt_tokens(progress.call.fields, progress.call.media)
    best: tuple[int, str, Overflow] | None = None
    for name in skipped:
        found = window_overflow(estimate, learned(name), windows.get(name))
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], name, found[1])
    return None if best is None else (best[1], best[2])


def window_overflow(
    estimate: int, learned: tuple[Learned, float] | None, configured: int | None
) -> tuple[int, Overflow] | None:
    """The limit a prompt of `estimate` is over, and the overflow the provider
    would have reported: by what was learned of its window (and how long
    ago), else by the window configured for it; None if neither holds the
    prompt out. The counts are the backend's where it named its window: the
    learned limit is on the daemon's estimate, calibrated to its tokenizer."""
    if learned is not None and estimate > learned[0].limit:
        held, age = learned
        how = f"from a prompt it cut {_ago(age)}" if held.cut else f"from its refusal {_ago(age)}"
        if held.window is not None:
            tokens, window = math.ceil(estimate * held.window / held.limit), held.window
        else:
            tokens, window = estimate, held.limit
        return held.limit, _overflow(tokens, window, f"learned {how}")
    if configured is not None and estimate > configured:
        return configured, _overflow(estimate, configured, "as its capabilities declare")
    return None


def _overflow(tokens: int, window: int, how: str) -> Overflow:
    said = f"not tried: about {tokens} tokens of prompt, over its context window of {window}"
    return Overflow(f"{said}, {how}", tokens, window)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, round(seconds))} s ago"
    return f"{round(seconds / 60)} min ago"
