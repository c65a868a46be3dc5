"""Command line: serve | check | doctor | ctl ACTION | the state commands.

A command imports what only it needs when it runs: the daemon (`serve`),
the probes (`doctor`) and the HTTP client (`ctl`, `replay`) take a third
of a second to import, which `requests`, `usage` or `check` should not pay.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import structlog

from coderouterd import __version__
from coderouterd.cli_import import add_command as add_import_command
from coderouterd.cli_import import legacy_hint
from coderouterd.cli_replay import add_command as add_replay_command
from coderouterd.cli_requests import add_commands as add_request_commands
from coderouterd.cli_state import add_commands as add_state_commands
from coderouterd.cli_state import count
from coderouterd.config.cross import listen_host
from coderouterd.config.model import Config, SelfHealingConfig
from coderouterd.config_source import load
from coderouterd.ctl.locate import control_socket
from coderouterd.ctl.render import render_provider_action, render_reload, render_status
from coderouterd.errors import CoderouterError, ConfigError
from coderouterd.healing.decisions import describe
from coderouterd.routing.auto import describe as describe_auto
from coderouterd.scrub import looks_like_key
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import configure
from coderouterd.telemetry.memory import tune_gc, tune_malloc
from coderouterd.translate.capabilities import load_registry

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
# 128 + SIGPIPE: what a shell reports for `git log | head` and the like.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
_MAX_PORT = 65535


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = int(args.func(args))
        # Output still buffered fails here, not at exit, where it would print
        # Python's own complaint.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader has closed the pipe (`| head` has what it wanted): stop
        # quietly, with the status of a command SIGPIPE ends. The output not
        # yet written goes to /dev/null, so the flush at exit cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigError as exc:
        print("coderouterd: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except CoderouterError as exc:
        print(f"coderouterd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coderouterd", description="A routing daemon for coding agents."
    )
    p.add_argument("--version", action="version", version=f"coderouterd {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    _config_arg(serve)
    serve.add_argument("--host", type=_host, help="override server.host")
    serve.add_argument("--port", type=_port, help="override server.port (0 picks a free port)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check", help="validate a config file and exit")
    _config_arg(check)
    check.set_defaults(func=_check)

    doctor = sub.add_parser(
        "doctor", help="ask a provider what a coding agent needs: answers, streams, tools, context"
    )
    doctor.add_argument("provider", metavar="NAME", help="provider name")
    _config_arg(doctor)
    doctor.add_argument(
        "--context-tokens",
        type=count,
        default=16000,
        help="size of the long prompt the context check sends (default 16000)",
    )
    doctor.add_argument(
        "--timeout", type=_seconds, default=300.0, help="seconds each check may take (default 300)"
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")
    doctor.set_defaults(func=_doctor)

    ctl = sub.add_parser("ctl", help="talk to the running daemon over its control socket")
    ctl_sub = ctl.add_subparsers(required=True, metavar="ACTION")
    for name, func, text in (
        ("status", _ctl_status, "version, uptime, config, providers, requests in flight"),
        ("reload", _ctl_reload, "re-read and validate the config; keep the old one on error"),
        ("exclude", _ctl_provider, "take a provider out of every profile until `ctl restore`"),
        ("restore", _ctl_provider, "put back a provider excluded by hand or by self-healing"),
        (
            "probe",
            _ctl_provider,
            "probe a provider now; a success restores it if self-healing excluded it",
        ),
    ):
        action = ctl_sub.add_parser(name, help=text)
        if name in ("exclude", "restore", "probe"):
            action.add_argument("provider", metavar="NAME", help="provider name")
            action.set_defaults(action=name)
        _config_arg(action)
        action.add_argument(
            "--socket", type=Path, help="control socket path (default: from the config)"
        )
        action.add_argument("--json", action="store_true", help="print JSON instead of text")
        action.set_defaults(func=func)
    add_state_commands(sub, _config_arg)
    add_replay_command(sub, _config_arg)
    add_request_commands(sub, _config_arg)
    add_import_command(sub)
    p.set_defaults(load=load)
    return p


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="config file (default: $CODEROUTERD_CONFIG, else the user config path if it exists, "
        "else the built-in default)",
    )


def _host(text: str) -> str:
    """`serve --host`: held to what the config file's `server.host` is."""
    if not listen_host(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be an IP address or a host name, without port or brackets"
        )
    return text


def _port(text: str) -> int:
    """`serve --port`: held to the range the config file's `server.port` is."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if not 0 <= value <= _MAX_PORT:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 to {_MAX_PORT}")
    return value


def _seconds(text: str) -> float:
    """`doctor --timeout`: a check given no time at all would blame the backend."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number above 0")
    return value


def _serve(args: argparse.Namespace) -> int:
    from coderouterd.app import serve

    configure(args.log_level)
    overrides = {"host": args.host, "port": args.port}
    loaded = load(args.config, server_overrides=overrides)
    if loaded.path is None and (hint := legacy_hint()) is not None:
        structlog.get_logger().warning(events.CONFIG_LEGACY_IGNORED, hint=hint)
    _install_uvloop()
    tune_malloc()
    tune_gc()
    return asyncio.run(serve(loaded, server_overrides=overrides))


def _install_uvloop() -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _check(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    config = loaded.config
    # Read as `serve` reads it: a broken rules file must fail here, not at start.
    registry = load_registry(config.capabilities_file)
    if loaded.path is None and (hint := legacy_hint()) is not None:
        print(f"coderouterd: {hint}", file=sys.stderr)
    _warn_of_pasted_keys(config)
    print(
        f"ok: {loaded.path or 'built-in default'} ({loaded.digest}); "
        f"{len(config.providers)} providers, {len(config.profiles)} profiles, "
        f"default profile {config.default_shown!r}"
    )
    if config.capabilities_file is not None:
        own = sum(1 for rule in registry.rules if rule.source.startswith(config.capabilities_file))
        rules = "rule" if own == 1 else "rules"
        print(
            f"capabilities: {own} {rules} from {config.capabilities_file}, after the bundled ones"
        )
    if config.mode_aliases:
        aliases = ", ".join(f"{mode} -> {profile}" for mode, profile in config.mode_aliases.items())
        print(f"modes (x-coderouter-mode): {aliases}")
    watching = [p.name for p in config.profiles if p.drift_action != "off"]
    if watching:
        print(
            f"drift: {config.drift.sensitivity} sensitivity, window {config.drift.window}; "
            + ", ".join(f"{p.name}: {p.drift_action}" for p in config.profiles)
        )
    adaptive = [p.name for p in config.profiles if p.adaptive]
    if adaptive:
        print(f"adaptive (slow providers tried one place later): {', '.join(adaptive)}")
    fitting = [p.name for p in config.profiles if p.context_action == "skip"]
    if fitting:
        windows = {
            p.name: w
            for p in config.providers
            if (w := registry.lookup(p.kind, p.model, p.capabilities).max_context_tokens)
        }
        known = ", ".join(f"{n} {w}" for n, w in windows.items()) or "none known"
        print(f"context_action: skip in {', '.join(fitting)}; windows (tokens): {known}")
    unfitted = [p.name for p in config.profiles if p.context_action == "off"]
    if unfitted:
        # The default (learned) says nothing: only a profile that tries a
        # provider with any prompt, cut or refused before, is worth a line.
        print(f"context_action: off (windows never skipped) in {', '.join(unfitted)}")
    limited = [f"{p.name} {p.max_concurrent}" for p in config.providers if p.max_concurrent]
    if limited:
        print(f"max_concurrent (busy: next provider, else wait): {', '.join(limited)}")
    if (auto := config.auto_routing) is not None:
        print("auto router (first match wins):")
        for line in describe_auto(auto):
            print(f"  {line}")
    print("self-healing:")
    for line in describe(config):
        print(f"  {line}")
    return EXIT_OK


def _warn_of_pasted_keys(config: Config) -> None:
    """An api_key_env that looks like a key passes for a variable's name (letters,
    digits, `_`): said here, without the value, which is most likely the key itself."""
    for i, provider in enumerate(config.providers):
        if provider.api_key_env is not None and looks_like_key(provider.api_key_env):
            print(
                f"coderouterd: warning: providers[{i}].api_key_env (provider {provider.name!r}) "
                "looks like a key, not the name of an environment variable: put the key in a "
                "variable and name that here",
                file=sys.stderr,
            )


def _doctor(args: argparse.Namespace) -> int:
    from coderouterd.doctor import examine, exit_status, render

    configure("warning")
    loaded = load(args.config)
    checks = asyncio.run(
        examine(loaded, args.provider, context_tokens=args.context_tokens, timeout_s=args.timeout)
    )
    text = render(args.provider, checks)
    print(msgspec.json.format(msgspec.json.encode(checks)).decode() if args.json else text)
    return exit_status(checks)


def _socket(args: argparse.Namespace) -> Path:
    # Not the whole config: the daemon validates a file, the command line only finds it.
    return args.socket or control_socket(args.config)


def _ctl_status(args: argparse.Namespace) -> int:
    from coderouterd.ctl.client import fetch_status

    reply = asyncio.run(fetch_status(_socket(args)))
    _print_reply(reply, render_status(reply), as_json=args.json)
    return EXIT_OK


def _ctl_reload(args: argparse.Namespace) -> int:
    from coderouterd.ctl.client import request_reload

    reply = asyncio.run(request_reload(_socket(args)))
    _print_reply(reply, render_reload(reply), as_json=args.json)
    return EXIT_OK if reply.ok else EXIT_FAILED


def _ctl_provider(args: argparse.Namespace) -> int:
    from coderouterd.ctl.client import request_provider_action

    path = _socket(args)
    if args.action == "probe":
        wait_s = _probe_wait_s(args)
        call = request_provider_action(path, args.action, args.provider, timeout=wait_s)
    else:
        call = request_provider_action(path, args.action, args.provider)
    reply = asyncio.run(call)
    _print_reply(reply, render_provider_action(reply), as_json=args.json)
    return EXIT_OK if reply.ok else EXIT_FAILED


def _probe_wait_s(args: argparse.Namespace) -> float:
    """How long `ctl probe` waits, from the probe_timeout_s of the config read
    here (the daemon's, unless it runs another file; the default if this one
    cannot be read: `--socket` alone needs none)."""
    from coderouterd.ctl.client import probe_wait_s

    try:
        probe_timeout_s = load(args.config).config.self_healing.probe_timeout_s
    except ConfigError:
        probe_timeout_s = SelfHealingConfig().probe_timeout_s
    return probe_wait_s(probe_timeout_s)


def _print_reply(reply: msgspec.Struct, text: str, *, as_json: bool) -> None:
    print(msgspec.json.format(msgspec.json.encode(reply)).decode() if as_json else text)


if __name__ == "__main__":
    sys.exit(main())
