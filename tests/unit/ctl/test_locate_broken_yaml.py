"""`ctl` finds the daemon's socket from a config file whose YAML is broken
mid-edit: the top-level `server:` block is read on its own
(coderouterd/ctl/locate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.ctl.locate import control_socket

HEAD = "server:\n  control_socket: /run/crd/ctl.sock\n"
SOCKET = "/run/crd/ctl.sock"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A top-level key indented by one space, as an editor leaves it.
        (HEAD + "providers: []\n profiles: []\n", SOCKET),
        # A key written twice at the top level (a block pasted in).
        (HEAD + "providers: []\nprofiles: []\nproviders: []\n", SOCKET),
        # A flow list not yet closed at the end of the file.
        (HEAD + "providers: [\n", SOCKET),
        # The server block after the error.
        ("providers: []\n profiles: []\n" + HEAD + "extra: 1\n", SOCKET),
        ("providers:\n  - name: a\n   kind: x\n" + HEAD, SOCKET),
        # Flow style, and the key quoted.
        ("server: {control_socket: /run/crd/ctl.sock}\nproviders: []\n profiles: []\n", SOCKET),
        ('"server": {control_socket: /run/crd/ctl.sock}\nproviders: []\n profiles: []\n', SOCKET),
        # Comments and blank lines inside the block, a comment at the first column.
        (
            "# where ctl looks\nserver:  # ours\n\n  # the socket\n"
            "# (moved)\n  control_socket: /run/crd/ctl.sock\n"
            "providers: []\n profiles: []\n",
            SOCKET,
        ),
        # Windows line endings.
        (
            "server:\r\n  control_socket: /run/crd/ctl.sock\r\nproviders: []\r\n profiles: []\r\n",
            SOCKET,
        ),
        # `server` twice: the daemon's loader refuses a duplicated key; the first is the
        # one before the error.
        (HEAD + "providers: []\nserver:\n  control_socket: /run/other.sock\n", SOCKET),
        # The error inside the server block, after the socket: the lines before it.
        ("server:\n  control_socket: /run/crd/ctl.sock\n  port: [\nproviders: []\n", SOCKET),
        ("server:\n  control_socket: /run/crd/ctl.sock\n state_dir: /srv\nx: 1\n", SOCKET),
        # The error inside the server block, before the socket: the defaults.
        ("server:\n  port: [\n  control_socket: /run/crd/ctl.sock\n", "default"),
        # No server block: the defaults.
        ("providers: []\n profiles: []\n", "default"),
        # A `server` key nested in another is not the daemon's.
        ("other:\n  server:\n    control_socket: /run/nested.sock\nproviders: [\n", "default"),
        ("servers:\n  control_socket: /run/nested.sock\nproviders: [\n", "default"),
        # A file that reads whole is read whole, aliases included.
        ("base: &b {control_socket: /run/crd/ctl.sock}\nserver: *b\n", SOCKET),
    ],
)
def test_a_broken_file_still_names_the_socket_of_its_server_block(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(text.encode())
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg-state")}
    default = tmp_path / "xdg-state" / "coderouterd" / "control.sock"

    assert control_socket(config, env) == (default if expected == "default" else Path(expected))


def test_the_state_dir_of_a_broken_file_places_the_socket(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  state_dir: /srv/crd\nproviders: []\n profiles: []\n")

    assert control_socket(config, {}) == Path("/srv/crd/control.sock")
