"""Start-up: the mock, the floor, the coderouterd daemons and their config, LiteLLM; the probe.

Also the warnings and errors in every process's stderr, after the run.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from pathlib import Path

import procs
from bodies import SIZES
from common import BASELINE, BENCH, HOLD, MALLOC_ENV, PACE, PEER_VENV, ROUTES, Ctx, System, say
from daemon import child_env, crd_argv, crd_status
from load import BENCH_KEY, AioClient
from procs import Proc

# ---------------------------------------------------------------- start-up


def crd_state_dir(ctx: Ctx, name: str) -> Path:
    return ctx.workdir / f"{name}-state"


def crd_config(ctx: Ctx, name: str, mock: str, *, replay: bool = True) -> Path:
    lines = [
        "server:",
        "  host: 127.0.0.1",
        "  port: 0",
        f"  state_dir: {crd_state_dir(ctx, name)}",
        f"  control_socket: {ctx.workdir}/{name}.sock",
        "providers:",
    ]
    for route, prefix in ROUTES.items():
        lines += [
            f"  - {{name: a_{route}, kind: anthropic, base_url: '{mock}{prefix}', "
            "model: mock-model}",
            f"  - {{name: o_{route}, kind: openai_compat, base_url: '{mock}{prefix}/v1', "
            "model: mock-model}",
        ]
    lines += ["profiles:", "  - {name: bench, providers: [a_fast]}", "default_profile: bench"]
    if not replay:
        lines += ["state:", "  replay: {enabled: false}"]
    path = ctx.workdir / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_crd(
    ctx: Ctx,
    name: str,
    mock: str,
    *,
    level: str,
    env: dict[str, str],
    replay: bool = True,
    baseline: bool = False,
) -> Proc:
    # Every daemon starts on an empty database of its own, under this run's workdir.
    state = crd_state_dir(ctx, name)
    if state.exists():
        raise RuntimeError(f"{name}: state dir {state} exists before the start: not a fresh run")
    cfg = crd_config(ctx, name, mock, replay=replay)
    pythonpath = ctx.baseline_path if baseline else ctx.pythonpath
    argv = crd_argv(pythonpath, "serve", "--config", str(cfg), "--log-level", level)
    home = ctx.workdir / f"{name}-home"
    home.mkdir()
    extra = {**env, "XDG_STATE_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    if pythonpath:
        extra["PYTHONPATH"] = pythonpath
    proc = procs.start(name, argv, workdir=ctx.workdir, env=child_env(extra))
    proc.extra["pythonpath"] = pythonpath or ""
    proc.extra["level"] = level
    proc.extra["state_dir"] = str(state)
    ctx.procs.append(proc)
    return proc


def crd_port(ctx: Ctx, proc: Proc) -> int:
    """`server.started` carries the address, but it is an info line: at
    --log-level warning it is filtered out, so ask `ctl status` instead."""
    if "info" in proc.extra.get("level", "") and procs.wait_log_listen(proc, 20):
        return proc.port
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        status = crd_status(ctx, proc)
        if status is not None and status.get("listen"):
            proc.port = int(status["listen"].rsplit(":", 1)[1])
            return proc.port
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: no listen address from ctl status:\n{proc.tail()}")


def start_litellm(ctx: Ctx, mock: str) -> Proc | None:
    if "litellm" in ctx.skipped:  # --no-peer
        return None
    exe = PEER_VENV / "bin" / "litellm"
    cfg = PEER_VENV / "litellm.yaml"
    if not exe.exists() or not cfg.exists():
        ctx.skipped["litellm"] = "not installed (run bench/peer_litellm.sh to add it)"
        return None
    port = procs.free_port()
    env = child_env(
        {
            "BENCH_MOCK_URL": mock,
            "BENCH_MOCK_URL_PACE": mock + PACE,
            "BENCH_MOCK_URL_HOLD": mock + HOLD,
            # No network here: use the bundled model price map, send no telemetry.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": BENCH_KEY,
            "LITELLM_TELEMETRY": "False",
            "DISABLE_ADMIN_UI": "True",
            "HOME": str(ctx.workdir),
        }
    )
    proc = procs.start(
        "litellm",
        [
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        workdir=ctx.workdir,
        env=env,
    )
    proc.port = port
    ctx.procs.append(proc)
    return proc


# Daemons the run goes on without, the reason recorded, when they do not start.
OPTIONAL = ("coderouterd-norec", BASELINE)


def start_crds(ctx: Ctx, mock: str) -> dict[str, Proc]:
    """Every coderouterd daemon, in the order of the tables (the baseline next to
    the one it is compared with)."""
    crds = {"coderouterd": start_crd(ctx, "crd", mock, level="warning", env={})}
    if ctx.baseline_path and BASELINE not in ctx.skipped:
        # The `coderouterd` daemon exactly, running the baseline's code.
        crds[BASELINE] = start_crd(ctx, "crd-base", mock, level="warning", env={}, baseline=True)
    crds["coderouterd-norec"] = start_crd(
        ctx, "crd-norec", mock, level="warning", env={}, replay=False
    )
    crds["coderouterd+malloc"] = start_crd(ctx, "crd-malloc", mock, level="warning", env=MALLOC_ENV)
    crds["coderouterd@info"] = start_crd(ctx, "crd-info", mock, level="info", env={})
    # A daemon of its own: sharing `coderouterd`'s process, translation's
    # requests kept that process warm between its own (two requests a sweep to
    # the floor's one), and its passthrough ratios read ~0.3 lower than those
    # of the same code in a process of its own (1 KB: 1.04x against 1.35x).
    crds["coderouterd-translate"] = start_crd(ctx, "crd-translate", mock, level="warning", env={})
    return crds


def crd_notes(ctx: Ctx) -> dict[str, str]:
    return {
        "coderouterd": "Anthropic -> anthropic provider, --log-level warning",
        BASELINE: f"the coderouterd daemon (same config and flags) running {ctx.baseline_source}"
        " (exported; PYTHONPATH to it); latency, streaming and throughput phases",
        "coderouterd-norec": "the coderouterd daemon with `state: {replay: {enabled: false}}` "
        "(no replay records; request rows still written); throughput phase only",
        "coderouterd+malloc": " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()),
        "coderouterd@info": "--log-level info (one request.completed line per request, "
        "stderr to a file)",
        "coderouterd-translate": "Anthropic -> openai_compat provider; a daemon of its own "
        "(same config and flags as `coderouterd`)",
    }


def start_all(ctx: Ctx) -> None:
    mock = procs.start(
        "mock",
        [
            sys.executable,
            str(BENCH / "mock_upstream.py"),
            "--max-seconds",
            str(ctx.counts.deadline_s + 120),
        ],
        workdir=ctx.workdir,
        env=child_env(),
    )
    ctx.procs.append(mock)
    procs.wait_port_line(mock, 10)
    litellm = start_litellm(ctx, mock.url)  # slowest to boot: start it first
    floor = procs.start(
        "floor",
        [
            sys.executable,
            str(BENCH / "floor_proxy.py"),
            "--upstream",
            mock.url,
            "--max-seconds",
            str(ctx.counts.deadline_s + 120),
        ],
        workdir=ctx.workdir,
        env=child_env(),
    )
    ctx.procs.append(floor)
    crds = start_crds(ctx, mock.url)
    procs.wait_port_line(floor, 10)
    ctx.systems["direct"] = System("direct", mock, mock.url, True, "the mock itself")
    ctx.systems["floor"] = System("floor", floor, floor.url, True, "bare aiohttp pass-through")
    notes = crd_notes(ctx)
    for key, proc in list(crds.items()):
        try:
            crd_port(ctx, proc)
            procs.wait_http(proc.url + "/healthz", 15, proc)
        except RuntimeError as exc:
            if key not in OPTIONAL:
                raise
            # A build without `state.replay` rejects that config: no "off" to compare
            # with; a baseline may not accept today's config or answer `ctl status`.
            procs.stop(proc)
            ctx.skipped[key] = f"did not start: {' '.join(str(exc).split())[:400]}"
            del crds[key]
            continue
        ctx.systems[key] = System(key, proc, proc.url, False, notes[key])
    if litellm is not None:
        try:
            procs.wait_http(litellm.url + "/health/liveliness", min(150, ctx.left() - 60), litellm)
            ctx.systems["litellm"] = System(
                "litellm",
                litellm,
                litellm.url,
                False,
                "LiteLLM proxy, /v1/messages, anthropic provider; after each of its requests "
                "the runner waits until it is idle (it keeps working after it answers)",
                settle=True,
            )
        except RuntimeError as exc:
            ctx.skipped["litellm"] = f"did not start: {str(exc)[:300]}"
    ctx.results["rss_idle_kb"] = {
        s.name: procs.group_rss_kb(s.proc.pid) for s in ctx.systems.values()
    }


async def probe(ctx: Ctx) -> None:
    """Every system must answer the bench request correctly before it is timed."""
    client = AioClient()
    try:
        for s in list(ctx.systems.values()):
            body = ctx.body(SIZES["1k"], False, s.model("fast"))
            try:
                _, status, data = await client.unary(s.url("fast"), body)
            except Exception as exc:
                status, data = 0, repr(exc).encode()
            reasons = _skip_reasons(data) if status == 503 else []
            if s.name == "coderouterd-translate" and reasons:
                s.skip = (
                    f"coderouterd answered 503, provider skipped with reason {', '.join(reasons)}:"
                    " Anthropic requests to an openai_compat provider are not routed by this "
                    "build"
                )
            elif status != 200:
                s.skip = f"probe answered {status}: {data[:300]!r}"
            else:
                sample = await client.stream(
                    s.url("pace"), ctx.body(SIZES["1k"], True, s.model("pace"))
                )
                if not sample.complete or len(sample.chunk_delays_ns) != 20:
                    s.skip = (
                        f"stream probe: status {sample.status}, "
                        f"{len(sample.chunk_delays_ns)} stamped deltas of 20"
                    )
            if s.skip:
                ctx.skipped[s.name] = s.skip
                say(f"  SKIP {s.name}: {s.skip}")
    finally:
        await client.close()


def _skip_reasons(body: bytes) -> list[str]:
    """Reasons like kind_not_supported from an all-providers-failed 503, if any."""
    try:
        attempts = json.loads(body)["error"].get("attempts") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [
        a["reason"]
        for a in attempts
        if isinstance(a, dict) and str(a.get("reason", "")).endswith("_not_supported")
    ]


_PROBLEM = re.compile(r"Error\b|\bERROR\b|\bWARNING\b|[Ee]xception")


def log_problems(ctx: Ctx) -> None:
    """Warnings, errors and tracebacks in the stderr of every process: the most
    frequent kinds with their counts, on the console and in RESULTS.md's notes."""
    for p in ctx.procs:
        try:
            lines = p.err.read_text(errors="replace").splitlines()
        except OSError:
            continue
        kinds: collections.Counter[str] = collections.Counter()
        for line in lines:
            try:
                event = json.loads(line) if line.startswith("{") else None
            except ValueError:
                event = None
            if isinstance(event, dict):
                if event.get("level") in ("warning", "error", "critical"):
                    kinds[f"{event.get('level')} {event.get('event')}"] += 1
            elif (
                line[:1] not in (" ", "\t")
                and not line.startswith(("Traceback", "During handling"))
                and _PROBLEM.search(line)
            ):
                # Unindented: a message or a traceback's exception line.
                kinds[re.sub(r"\d+", "N", line[:160])] += 1
        if kinds:
            top = "; ".join(f"{n}x `{k}`" for k, n in kinds.most_common(3))
            note = f"stderr of {p.name}: {top}" + (" ..." if len(kinds) > 3 else "")
            ctx.notes.append(note)
            say(f"  {note}")
