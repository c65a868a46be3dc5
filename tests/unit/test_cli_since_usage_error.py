"""A malformed `--since` is a usage error (exit 2), as a malformed count is,
for each command that takes it: not an error of the state database (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.cli import main
from tests.conftest import chain_yaml, provider_yaml


@pytest.mark.parametrize("command", [["requests"], ["usage"], ["replay", "list"]])
@pytest.mark.parametrize("since", ["yesterday", "3w", "2025-13-01"])
def test_a_malformed_since_is_a_usage_error(
    command: list[str], since: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"server:\n  state_dir: {tmp_path / 'state'}\n"
        + chain_yaml(provider_yaml("a", "http://127.0.0.1:9"))
    )
    with pytest.raises(SystemExit) as exited:
        main([*command, "--since", since, "--config", str(config)])
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert f"argument --since: {since!r}: expected 30m, 12h, 7d or an ISO date" in said
