"""A whole answer's client gets the answering attempt's total_s to read it:
the providers tried before take nothing of it."""

from __future__ import annotations

import time

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_unary_client_stalled import TEXT, read_slowly

pytestmark = pytest.mark.timeout(40)

# The read takes about 2 s: room to spare in b's own 6 s, too little in the 1 s
# the request's total_s would leave after a's 5 s.
TOTAL_S = 6.0
# The first provider fails (a 503 falls through) after most of its total_s.
FIRST_FAILS_AFTER_S = 5.0


async def test_a_steady_reader_is_not_cut_because_an_earlier_provider_was_slow(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`a` fails after most of its total_s; `b` answers 20 MB at once, and
    its client, reading steadily for about two seconds, gets all of it."""
    timeouts = f"timeouts: {{total_s: {TOTAL_S}}}"
    fake_upstream.script(
        Reply(status=503, json={"type": "error", "error": {"type": "overloaded_error",
              "message": "busy"}}, delay_before_headers=FIRST_FAILS_AFTER_S),
        Reply(json=anthropic_message(TEXT)),
    )  # fmt: skip
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url, extra=timeouts),
            provider_yaml("b", fake_upstream.url, extra=timeouts),
        )
    )
    with capture_logs() as logs:
        sent = time.monotonic()
        error: BaseException | None = None
        text = ""
        try:
            text = await read_slowly(d.url + "/v1/messages")
        except Exception as exc:  # the cut connection, or a body cut short
            error = exc
        took = time.monotonic() - sent
    completed = [e for e in logs if e["event"] == "request.completed"]
    assert error is None and text == TEXT, (error, took, completed)
