"""A user config file that is a symlink leading nowhere (a dotfiles checkout
moved or not mounted) is the file meant, and one that cannot be read: never
replaced by the built-in default, which routes to whatever listens locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.config_source import config_file
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)


def dangling_user_config(env: dict[str, str], root: Path) -> tuple[Path, Path]:
    """The user config path, made a symlink to a file that is not there; both paths."""
    link = Path(env["XDG_CONFIG_HOME"]) / "coderouterd" / "config.yaml"
    link.parent.mkdir(parents=True, exist_ok=True)
    target = root / "dotfiles" / "coderouterd.yaml"
    link.symlink_to(target)
    return link, target


def test_a_dangling_symlink_is_the_config_file(tmp_path: Path) -> None:
    env = child_env(tmp_path)
    link, _ = dangling_user_config(env, tmp_path)
    assert config_file(None, env) == link


async def test_check_says_a_dangling_symlink_cannot_be_read(tmp_path: Path) -> None:
    env = child_env(tmp_path)
    link, target = dangling_user_config(env, tmp_path)
    run = await run_cli("check", env=env)
    assert run.returncode == 2, run.stdout
    assert "built-in default" not in run.stdout + run.stderr
    assert f"{link}: cannot read file: " in run.stderr, run.stderr
    assert f"a symbolic link to {target}" in run.stderr, run.stderr


async def test_a_reload_on_the_built_in_default_reads_the_dangling_symlink(
    serve_process: StartServe,
) -> None:
    """A daemon started before the link was made looks for it at a reload:
    it cannot be read, rather than not being there."""
    d = await serve_process(None)
    env = child_env(d.root)
    link, _ = dangling_user_config(env, d.root)
    run = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=env)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert f"{link}: cannot read file: " in run.stdout, run.stdout
    assert "no such file: the daemon runs on the built-in default" not in run.stdout
