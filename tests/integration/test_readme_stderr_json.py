"""README "Logs": JSON lines on stderr, for journald and log shippers, and
nothing else while the daemon runs: a shipper that parses every line must
not lose the one that says the daemon is open to other machines."""

from __future__ import annotations

import json
import signal

from tests.conftest import chain_yaml, provider_yaml
from tests.integration.process import StartServe


def not_json_objects(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not {"timestamp", "level", "event"} <= set(parsed):
            out.append(line)
    return out


async def test_a_daemon_open_to_other_machines_writes_only_json_lines_on_stderr(
    serve_process: StartServe,
) -> None:
    d = await serve_process(
        chain_yaml(provider_yaml("a", "http://127.0.0.1:9")),
        args=["--host", "0.0.0.0"],  # noqa: S104 - the point of the test
    )
    d.send_signal(signal.SIGTERM)
    assert await d.wait() == 0
    [warning] = d.events("server.non_loopback_bind")
    assert warning["level"] == "warning"
    assert warning["host"] == "0.0.0.0"  # noqa: S104
    assert "no authentication" in warning["message"]
    assert d.events("server.stopped")
    assert not_json_objects([line for line in d.stderr_lines if line]) == []
