from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderouterd.telemetry.sdnotify import (
    READY,
    notify,
    reloading_state,
    status_state,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the ~107-byte limit of a unix socket path.
    path = Path(tempfile.mkdtemp(prefix="crd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def receiver(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    address = str(short_dir / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(1.0)
        yield sock, address


def test_ready_reaches_the_notify_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    assert notify(READY, env={"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"READY=1"


def test_multi_line_state_arrives_as_one_datagram(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    state = reloading_state(123_456_789)
    assert notify(state, env={"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=123456789"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_socket_address_starting_with_at() -> None:
    name = f"coderouterd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1.0)
        assert notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}])
def test_without_a_usable_notify_socket_nothing_is_sent(env: dict[str, str]) -> None:
    assert notify(READY, env=env) is False


def test_unreachable_notify_socket_is_reported_not_raised(short_dir: Path) -> None:
    assert notify(READY, env={"NOTIFY_SOCKET": str(short_dir / "gone")}) is False


def test_status_state_is_kept_on_one_line() -> None:
    assert status_state("serving\n3 providers") == "STATUS=serving 3 providers"
