"""Start-up: the mock, the floor, the coderouterd daemons and their config, LiteLLM; the probe.

Also what the runner asks a running coderouterd: `ctl status`, and the row
counts of its database.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import procs
from bodies import SIZES
from common import BENCH, HOLD, MALLOC_ENV, PACE, PEER_VENV, ROUTES, Ctx, System, say
from load import BENCH_KEY, AioClient
from procs import Proc

# ---------------------------------------------------------------- start-up


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CODEROUTERD_", "MALLOC_"))
        and k not in ("NOTIFY_SOCKET", "PYTHONPATH")
    }
    env.update(extra or {})
    return env


def crd_env(ctx: Ctx, extra: dict[str, str] | None = None) -> dict[str, str]:
    return child_env(
        {**({"PYTHONPATH": ctx.pythonpath} if ctx.pythonpath else {}), **(extra or {})}
    )


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
    ctx: Ctx, name: str, mock: str, *, level: str, env: dict[str, str], replay: bool = True
) -> Proc:
    # Every daemon starts on an empty database of its own, under this run's workdir.
    state = crd_state_dir(ctx, name)
    if state.exists():
        raise RuntimeError(f"{name}: state dir {state} exists before the start: not a fresh run")
    cfg = crd_config(ctx, name, mock, replay=replay)
    argv = [
        sys.executable,
        "-m",
        "coderouterd.cli",
        "serve",
        "--config",
        str(cfg),
        "--log-level",
        level,
    ]
    home = ctx.workdir / f"{name}-home"
    home.mkdir()
    proc = procs.start(
        name,
        argv,
        workdir=ctx.workdir,
        env=crd_env(ctx, {**env, "XDG_STATE_HOME": str(home), "XDG_CONFIG_HOME": str(home)}),
    )
    proc.extra["level"] = level
    proc.extra["state_dir"] = str(state)
    ctx.procs.append(proc)
    return proc


def crd_port(ctx: Ctx, proc: Proc, sock: Path) -> int:
    """`server.started` carries the address, but it is an info line: at
    --log-level warning it is filtered out, so ask `ctl status` instead."""
    if "info" in proc.extra.get("level", "") and procs.wait_log_listen(proc, 20):
        return proc.port
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        status = crd_status(ctx, sock)
        if status is not None and status["listen"]:
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
    crds = {
        "coderouterd": start_crd(ctx, "crd", mock.url, level="warning", env={}),
        "coderouterd-norec": start_crd(
            ctx, "crd-norec", mock.url, level="warning", env={}, replay=False
        ),
        "coderouterd+malloc": start_crd(
            ctx, "crd-malloc", mock.url, level="warning", env=MALLOC_ENV
        ),
        "coderouterd@info": start_crd(ctx, "crd-info", mock.url, level="info", env={}),
    }
    procs.wait_port_line(floor, 10)
    ctx.systems["direct"] = System("direct", mock, mock.url, True, "the mock itself")
    ctx.systems["floor"] = System("floor", floor, floor.url, True, "bare aiohttp pass-through")
    for key, proc in list(crds.items()):
        sock = ctx.workdir / f"{proc.name}.sock"
        try:
            crd_port(ctx, proc, sock)
            procs.wait_http(proc.url + "/healthz", 15, proc)
        except RuntimeError as exc:
            if key != "coderouterd-norec":
                raise
            # A build without `state.replay` rejects that config: no "off" to compare with.
            ctx.skipped[key] = f"did not start: {str(exc)[:300]}"
            del crds[key]
    crd = crds["coderouterd"]
    ctx.systems["coderouterd"] = System(
        "coderouterd", crd, crd.url, False, "Anthropic -> anthropic provider, --log-level warning"
    )
    if "coderouterd-norec" in crds:
        ctx.systems["coderouterd-norec"] = System(
            "coderouterd-norec",
            crds["coderouterd-norec"],
            crds["coderouterd-norec"].url,
            False,
            "the coderouterd daemon with `state: {replay: {enabled: false}}` (no replay "
            "records; request rows still written); throughput phase only",
        )
    ctx.systems["coderouterd+malloc"] = System(
        "coderouterd+malloc",
        crds["coderouterd+malloc"],
        crds["coderouterd+malloc"].url,
        False,
        " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()),
    )
    ctx.systems["coderouterd@info"] = System(
        "coderouterd@info",
        crds["coderouterd@info"],
        crds["coderouterd@info"].url,
        False,
        "--log-level info (one request.completed line per request, stderr to a file)",
    )
    ctx.systems["coderouterd-translate"] = System(
        "coderouterd-translate", crd, crd.url, False, "Anthropic -> openai_compat provider"
    )
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
        s.name: procs.group_rss_kb(s.proc.pid)
        for s in ctx.systems.values()
        if s.name != "coderouterd-translate"
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


# ---------------------------------------------------------------- a running coderouterd


def crd_status(ctx: Ctx, sock: Path) -> dict[str, Any] | None:
    """`coderouterd ctl status --json`, or None when it fails."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "coderouterd.cli",
            "ctl",
            "status",
            "--json",
            "--socket",
            str(sock),
        ],
        capture_output=True,
        timeout=10,
        check=False,
        env=crd_env(ctx),
        cwd=ctx.workdir,
    )
    if r.returncode != 0:
        return None
    status: dict[str, Any] = json.loads(r.stdout)
    return status


def crd_inflight(ctx: Ctx, proc: Proc) -> int | None:
    status = crd_status(ctx, ctx.workdir / f"{proc.name}.sock")
    return None if status is None else len(status.get("in_flight", []))


def crd_rows(ctx: Ctx, proc: Proc) -> dict[str, Any]:
    """Rows in the daemon's database (opened read-only) and its writer's counters.

    Waits until the counts stop moving: the writer commits in batches, and a
    daemon that records replays compresses them in a worker thread first.
    """
    state = Path(proc.extra["state_dir"])
    db = state / "coderouterd.db"
    out: dict[str, Any] = {"state_dir": str(state), "db": str(db)}
    if not db.exists():
        out["error"] = f"no database in {state}"
        return out
    counts: dict[str, int] = {}
    end = time.monotonic() + 5
    while True:
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
                now = {
                    table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names
                    for table in ("requests", "replays")
                }
        except sqlite3.Error as exc:
            out["error"] = f"{db}: {exc}"
            return out
        if now == counts or time.monotonic() > end:
            break
        counts = now
        time.sleep(0.3)
    out.update(now)
    status = crd_status(ctx, ctx.workdir / f"{proc.name}.sock")
    st = (status or {}).get("state") or {}
    out["daemon_db"] = st.get("path")
    if st.get("path") and Path(st["path"]).resolve() != db.resolve():
        out["error"] = f"the daemon reports its database at {st['path']}, not {db}"
    for key in ("dropped", "failed_rows", "replays_dropped", "replays_too_large"):
        out[key] = st.get(key)
    return out


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
