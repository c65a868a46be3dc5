"""`coderouterd import-config` as a process: a coderouter-cli providers.yaml
found where that tool keeps it becomes a config coderouterd runs on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.process import StartServe, child_env, run_cli

LEGACY = """\
display_timezone: Asia/Tokyo
providers:
  - name: ollama
    base_url: http://127.0.0.1:11434/v1
    model: qwen3:8b
    timeout_s: 120
    output_filters: [strip_thinking]
    capabilities: {chat: true, tools: true}
profiles:
  - name: default
    providers: [ollama]
    adaptive: true
"""


def legacy_home(root: Path, text: str = LEGACY) -> dict[str, str]:
    home = root / "home"
    (home / ".coderouter").mkdir(parents=True)
    (home / ".coderouter" / "providers.yaml").write_text(text)
    return child_env(root, {"HOME": str(home)})


async def test_check_without_a_config_points_at_the_coderouter_cli_one(short_dir: Path) -> None:
    env = legacy_home(short_dir)
    run = await run_cli("check", env=env)
    assert run.returncode == 0
    assert run.stdout.startswith("ok: built-in default")
    legacy = short_dir / "home" / ".coderouter" / "providers.yaml"
    assert f"{legacy} is coderouter-cli's config and is not read" in run.stderr
    assert f"coderouterd import-config {legacy} --out " in run.stderr


async def test_import_writes_a_config_that_checks_and_never_overwrites(short_dir: Path) -> None:
    env = legacy_home(short_dir)
    out = short_dir / "new" / "config.yaml"
    run = await run_cli("import-config", "--out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert "providers[0].timeout_s: now timeouts.first_byte_s and timeouts.idle_s" in run.stderr
    assert "profiles[0].adaptive: kept, with coderouterd's meaning" in run.stderr
    written = out.read_text()
    assert written.startswith("# Converted from ")
    assert "#   display_timezone: left out" in written
    checked, again = await asyncio.gather(
        run_cli("check", "--config", str(out), env=env),
        run_cli("import-config", "--out", str(out), env=env),
    )
    assert checked.returncode == 0, checked.stderr
    assert "default profile 'default'" in checked.stdout
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert out.read_text() == written


async def test_a_result_coderouterd_refuses_is_shown_and_not_written(short_dir: Path) -> None:
    env = legacy_home(short_dir, LEGACY.replace("providers: [ollama]", "providers: [olama]"))
    out = short_dir / "config.yaml"
    run = await run_cli("import-config", "--out", str(out), env=env)
    assert run.returncode == 2
    assert "profiles[0].providers[0]: unknown provider 'olama'" in run.stderr
    assert f"{out} was not written" in run.stderr
    # The problems' line numbers are those of the text shown.
    assert "providers:\n- name: ollama" in run.stdout
    assert not out.exists()


async def test_with_nothing_to_import_it_says_where_it_looked(short_dir: Path) -> None:
    home = short_dir / "empty-home"
    home.mkdir()
    run = await run_cli("import-config", env=child_env(short_dir, {"HOME": str(home)}))
    assert run.returncode == 1
    assert f"{home / '.coderouter' / 'providers.yaml'}" in run.stderr


async def test_serve_on_its_default_logs_where_the_coderouter_cli_config_is(
    serve_process: StartServe, short_dir: Path
) -> None:
    legacy = short_dir / "providers.yaml"
    legacy.write_text(LEGACY)
    d = await serve_process(None, env={"CODEROUTER_CONFIG": str(legacy)})
    [ignored] = d.events("config.legacy_ignored")
    assert ignored["level"] == "warning"
    assert ignored["hint"].startswith(f"{legacy} is coderouter-cli's config and is not read")


async def test_a_providers_yaml_that_is_not_utf8_is_a_problem_not_a_traceback(
    short_dir: Path,
) -> None:
    env = legacy_home(short_dir)
    legacy = short_dir / "home" / ".coderouter" / "providers.yaml"
    legacy.write_bytes(("# café, saved as Latin-1\n" + LEGACY).encode("latin-1"))
    out = short_dir / "config.yaml"
    run = await run_cli("import-config", "--out", str(out), env=env)
    assert run.returncode == 2, run.stderr
    assert f"{legacy}:1: the file is not valid UTF-8" in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists()
