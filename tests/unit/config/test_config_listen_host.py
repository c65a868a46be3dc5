"""server.host goes to the listening socket as written: an IP address or a
host name, never a URL's `host:port` or `[address]`, or `check` would pass a
file `serve` cannot bind."""

from __future__ import annotations

import pytest

from coderouterd.config import load_config_text
from tests.unit.config.test_load import MINIMAL, problems_of


def with_host(host: str) -> str:
    """MINIMAL with `server.host: host`, on line 9."""
    return MINIMAL + f"server:\n  host: {host}\n"


@pytest.mark.parametrize(
    "host",
    [
        "localhost:8088",
        "127.0.0.1:8088",
        "'[::1]'",
        "'[::1]:8088'",
        "http://127.0.0.1",
        "'localhost '",
        "''",
        "my_box",
        "-box.lan",
        "box-.lan",
        "a..b",
        "127.0.0.256",
        "'café.lan'",
        "a" * 64,
    ],
)
def test_a_host_that_cannot_be_listened_on_is_a_problem_at_its_line(host: str) -> None:
    [problem] = problems_of(with_host(host))
    assert (problem.line, problem.path) == (9, "server.host")
    assert "an IP address or a host name, without port or brackets" in problem.message
    assert "server.port" in problem.message


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104 - a value read, nothing bound
        "'::'",
        "'::1'",
        "fe80::1%eth0",
        "localhost",
        "box.lan.",
        "a1.b-2",
    ],
)
def test_an_address_or_a_host_name_is_taken_as_written(host: str) -> None:
    config = load_config_text(with_host(host), file="c.yaml")
    assert config.server.host == host.strip("'")


def test_a_host_that_is_not_a_string_is_named_once() -> None:
    [problem] = problems_of(with_host("8088"))
    assert (problem.line, problem.path) == (9, "server.host")
    assert problem.message == "expected a string, got an integer"
