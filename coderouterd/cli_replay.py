"""`coderouterd replay`: list the recorded requests, or re-send one through
the running daemon and show (and diff) what it answers now."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from coderouterd.cli_state import (
    EXIT_OK,
    common_args,
    count,
    db_file,
    reading,
    run_async,
    show,
    since,
    utc_time,
)
from coderouterd.client_key import client_key
from coderouterd.config import LoadedConfig, resolve_control_socket
from coderouterd.config.model import Config
from coderouterd.errors import CoderouterError
from coderouterd.ingress.body import parse_body
from coderouterd.routing.plan import MODE_HEADER, PROFILE_HEADER
from coderouterd.scrub import escape_controls
from coderouterd.state import reads
from coderouterd.state.assemble import Assembled, assemble
from coderouterd.state.records import RequestRow
from coderouterd.state.replay import ReplayRecord, ReplaySummary, get_replay, list_replays
from coderouterd.state.replay_diff import diff, nothing_compared, render_diff

_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
# No limit on the whole replay, which waits as long as the daemon does for
# its providers (a slow local model may take minutes); only on connecting.
_CONNECT_TIMEOUT_S = 10


def add_command(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    replay = sub.add_parser("replay", help="re-send a recorded request, or list records")
    common_args(replay, config_arg)
    replay.add_argument("request_id", nargs="?", help="a request id, or 'list'")
    # A client may choose any id (x-request-id), `list` or `-retry-1` too,
    # which the positional cannot take: `--id=-retry-1` takes every one.
    replay.add_argument("--id", dest="given_id", metavar="ID", help="replay this request id")
    # Not a mutually exclusive group: `list` takes both, as two filters.
    replay.add_argument("--provider", help="send to this provider alone (with list: filter)")
    replay.add_argument(
        "--profile", help="send through this profile (default: the recorded one; with list: filter)"
    )
    replay.add_argument("--diff", action="store_true", help="compare with the recorded response")
    replay.add_argument("--since", type=since, help="with list: 30m, 12h, 7d or an ISO date")
    replay.add_argument("--limit", type=count, default=50, help="with list: most rows shown")
    replay.add_argument("--socket", type=Path, help="control socket (to find the daemon)")
    replay.set_defaults(func=_replay, usage_error=replay.error)


def _replay(args: argparse.Namespace) -> int:
    if args.given_id is not None:
        if args.request_id is not None:
            args.usage_error("argument --id: not allowed with a request id before it")
        args.request_id = args.given_id
    elif args.request_id is None:
        args.usage_error("the following arguments are required: request_id (or --id)")
    elif args.request_id == "list":
        return _replay_list(args)
    if args.provider is not None and args.profile is not None:
        args.usage_error("argument --profile: not allowed with argument --provider")
    loaded, path = db_file(args)
    socket = args.socket or resolve_control_socket(loaded.config)
    return run_async(_replay_one(args, loaded, path, socket))


def _same_config(loaded: LoadedConfig, running: str) -> None:
    """The replay's target is checked against the config file and routed by
    the running daemon (its digest `running`): the two must be one, or a
    provider, profile or client key the file names may not be the daemon's."""
    if running != loaded.digest:
        where = loaded.path or "the built-in default"
        raise CoderouterError(
            f"the running coderouterd's config ({running}) is not {where} as it is now "
            f"({loaded.digest}): `coderouterd ctl reload` to load it, or name the file "
            "the daemon runs with --config"
        )


def _check_target(config: Config, *, provider: str | None, profile: str | None) -> None:
    """Refuse a replay the daemon would route elsewhere than asked: a model
    naming no provider goes to the default profile, one naming a profile to
    that profile; an unknown profile would be refused only after the send."""
    if provider is not None and config.provider(provider) is None:
        known = ", ".join(p.name for p in config.providers)
        raise CoderouterError(f"--provider {provider!r}: no such provider (configured: {known})")
    if provider is not None and config.profile(provider) is not None:
        raise CoderouterError(
            f"--provider {provider!r}: a profile has that name too, and a request naming it "
            f"goes through the profile: use --profile {provider}, or rename one of them"
        )
    if profile is not None and config.profile(profile) is None:
        known = ", ".join(p.name for p in config.profiles)
        raise CoderouterError(f"--profile {profile!r}: no such profile (configured: {known})")


def _replay_list(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path) as conn:
            rows = await list_replays(
                conn,
                since=args.since,
                provider=args.provider,
                profile=args.profile,
                limit=args.limit,
            )
        text = "\n".join(_listed(r) for r in rows)
        show(rows, text or "no replay records", as_json=args.json)
        return EXIT_OK

    return run_async(run())


def _listed(r: ReplaySummary) -> str:
    # The request id may be one its client chose (x-request-id).
    rid, profile, provider = (
        escape_controls(v) for v in (r.request_id, r.profile, r.provider or "-")
    )
    return (
        f"{rid}  {utc_time(r.ts)}  {r.dialect:<9} {profile:<12} "
        f"{provider:<14} {'stream' if r.stream else 'unary':<6} {r.size:>8}"
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a replay goes: to one provider alone, or through a profile."""

    provider: str | None = None
    profile: str | None = None


def _recorded_provider(
    config: Config, record: ReplayRecord, logged: RequestRow | None
) -> str | None:
    """The provider the recorded request went to alone (its model named it),
    or None when it went through its recorded profile.

    The record keeps the profile the daemon chose, which for a one-provider
    route is the default profile; so the route is told from what the client
    sent: no x-coderouter-profile or x-coderouter-mode header, the default
    profile recorded (a profile chosen by the body's `profile` field, which
    the stored body no longer holds, is another), and a model naming no
    profile but the provider that answered; where none did, the provider
    every attempt of the request log went to (skipped ones too: a chain the
    request went through lists all its providers). The config the request
    was routed by had that provider, whether or not the current one does.
    Without attempts to go by, a provider the config has.
    """
    headers = record.request_headers
    if MODE_HEADER in headers or PROFILE_HEADER in headers:
        return None
    if record.profile != config.default_profile_name:
        return None
    model = parse_body(record.request_body).model
    if model is None or model == record.profile or config.profile(model) is not None:
        return None
    if record.provider is not None:
        return model if model == record.provider else None
    if tried := {a.provider for a in logged.attempts} if logged else set():
        return model if tried == {model} else None
    return model if config.provider(model) is not None else None


def _replay_target(
    config: Config, record: ReplayRecord, logged: RequestRow | None, args: argparse.Namespace
) -> _Target:
    """The asked provider or profile, else where the recorded request went;
    refused when the config no longer has that provider or profile."""
    _check_target(config, provider=args.provider, profile=args.profile)
    if args.provider is not None:
        return _Target(provider=args.provider)
    if args.profile is None and (alone := _recorded_provider(config, record, logged)) is not None:
        if config.provider(alone) is None:
            raise CoderouterError(
                f"the recorded request went to provider {alone!r} alone, which the config "
                "no longer has: name another with --provider, or a profile with --profile"
            )
        return _Target(provider=alone)
    name = args.profile or record.profile
    if config.profile(name) is None:
        known = ", ".join(p.name for p in config.profiles)
        raise CoderouterError(
            f"the recorded request went through profile {name!r}, which the config no "
            f"longer has (configured: {known}): name one with --profile, or --provider"
        )
    return _Target(profile=name)


def _key_headers(config: Config, target: _Target) -> dict[str, str]:
    """The key a client on this machine would send, for a target whose
    providers include one that forwards its clients' keys and has none of its
    own (the record keeps no credential); refused when none is set."""
    profile = config.profile(target.profile or "")
    names = (target.provider,) if target.provider else profile.providers if profile else ()
    for name in names:
        provider = config.provider(name)
        # A provider with api_key_env uses its own key, or is skipped without it.
        if provider is not None and (
            key := client_key(provider, os.environ, own_key=provider.api_key_env is not None)
        ):
            return key
    return {}


async def _replay_one(
    args: argparse.Namespace, loaded: LoadedConfig, path: Path, socket: Path
) -> int:
    config = loaded.config
    async with reading(path) as conn:
        record = await get_replay(conn, args.request_id)
        logged = await reads.request(conn, args.request_id)
    if record is None:
        raise CoderouterError(
            f"no replay record for request {args.request_id!r} "
            "(not recorded, recording off for its profile, or expired)"
        )
    # The HTTP client is imported only by the replay that sends (cli.py).
    from coderouterd.ctl.client import fetch_status

    status = await fetch_status(socket)
    _same_config(loaded, status.config_digest)
    target = _replay_target(config, record, logged, args)
    key = _key_headers(config, target)
    new, new_ms, new_status = await _resend(f"http://{status.listen}", record, target, key)
    changes, nothing = None, False
    if args.diff:
        recorded = assemble(record.dialect, record.stream, record.response_body or b"")
        changes = diff(
            recorded,
            new,
            recorded_ms=logged.total_ms if logged else None,
            new_ms=new_ms,
            partial=record.response_truncated,
        )
        nothing = nothing_compared(recorded, partial=record.response_truncated)
    reply = {
        "status": new_status,
        "latency_ms": round(new_ms, 1),
        "response": new,
        "changes": changes,
        # The recorded response was cut at replay.max_record_kb: compared up to the cut.
        "recorded_partial": record.response_truncated,
        # ... before any of the answer: `changes` holds none of it.
        "nothing_compared": nothing,
    }
    text = _render_assembled(new, new_status, new_ms)
    if changes is not None:
        text += "\n\n--- diff against the recorded response ---\n" + render_diff(
            changes, partial=record.response_truncated, nothing=nothing
        )
    show(reply, text, as_json=args.json)
    return EXIT_OK


async def _resend(
    url: str, record: ReplayRecord, target: _Target, key: dict[str, str]
) -> tuple[Assembled, float, int]:
    import aiohttp

    body = record.request_body
    # The target is named again, exactly: the recorded headers' choice goes.
    chosen = (MODE_HEADER, PROFILE_HEADER)
    headers = {k: v for k, v in record.request_headers.items() if k not in chosen}
    headers["content-type"] = "application/json"
    headers.update(key)
    if target.provider is not None:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        fields.pop("profile", None)
        fields["model"] = msgspec.Raw(msgspec.json.encode(target.provider))
        body = msgspec.json.encode(fields)
    else:
        headers[PROFILE_HEADER] = target.profile or record.profile
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT_S)
    started = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(
                url + _PATHS[record.dialect], data=body, headers=headers, allow_redirects=False
            ) as resp,
        ):
            raw = await resp.read()
            status_code = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CoderouterError(_unsent(url, exc)) from exc
    elapsed_ms = (time.perf_counter() - started) * 1000
    return assemble(record.dialect, record.stream, raw), elapsed_ms, status_code


def _unsent(url: str, exc: BaseException) -> str:
    """Why the replay got no answer, in one line."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        # asyncio words a refusal "Connect call failed ('127.0.0.1', 8088)".
        errno = exc.os_error.errno
        why = os.strerror(errno) if errno else str(exc.os_error)
        return f"cannot connect to coderouterd at {url} to send the replay: {why}"
    if isinstance(exc, TimeoutError):
        return f"coderouterd at {url} did not accept the replay's connection in time"
    # Sent, or partly: the daemon may have routed it, and logged and recorded it.
    detail = str(exc) or type(exc).__name__
    return f"the connection to coderouterd at {url} was lost before the whole answer: {detail}"


def _render_assembled(a: Assembled, status_code: int, ms: float) -> str:
    """The answer's text and thinking as the model wrote them, lines and all;
    the backend's words in the other lines escaped (escape_controls)."""
    stop = escape_controls(a.stop_reason or "-")
    lines = [f"status {status_code}  {ms:.0f} ms  stop_reason {stop}"]
    if a.error:
        lines.append(f"error: {escape_controls(a.error)}")
    if a.thinking:
        lines.append(f"thinking: {a.thinking}")
    if a.text:
        lines.append(a.text)
    lines.extend(
        f"tool call {escape_controls(c.name)}: {json.dumps(c.input, sort_keys=True)}"
        for c in a.tool_calls
    )
    if a.usage:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(a.usage.items()))
        lines.append(escape_controls(f"usage: {counts}"))
    return "\n".join(lines)
