"""Composition root: builds every object, starts and stops everything.

Nothing else constructs adapters, observers or servers; tests build the same
objects through `build_app` with their own config and clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import web

from coderouterd import __version__
from coderouterd.clock import Clock, SystemClock
from coderouterd.config import LoadedConfig, resolve_control_socket, resolve_state_dir
from coderouterd.config.model import ProviderConfig
from coderouterd.config_source import with_server_overrides
from coderouterd.ctl.server import build_ctl_app, start_ctl_site, stop_ctl_site
from coderouterd.daemon import Daemon
from coderouterd.errors import ListenError
from coderouterd.exposure import is_loopback, warn_non_loopback
from coderouterd.healing.drift_watch import DriftWatch
from coderouterd.healing.pace import USUAL
from coderouterd.healing.pace_watch import PaceWatch
from coderouterd.healing.policy import HealingBook
from coderouterd.healing.restart import restart_log_dir
from coderouterd.healing.service import HealingService
from coderouterd.ingress.inflight import InFlightRegistry
from coderouterd.ingress.keys import DAEMON, REQUEST_IDS
from coderouterd.ingress.middleware import RequestIds, request_context
from coderouterd.ingress.routes import add_routes
from coderouterd.instance_lock import single_instance
from coderouterd.owner_only import private_dir
from coderouterd.providers.base import HttpAdapter
from coderouterd.routing.board import ProviderBoard
from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.records import Observer, Observers
from coderouterd.routing.slots import Slots
from coderouterd.routing.windows import FORGET_S, MAX_HOLD_S, LearnedWindows
from coderouterd.state import reads
from coderouterd.state.db import StateError
from coderouterd.state.request_recorder import RequestRecorder
from coderouterd.state.service import StateService
from coderouterd.tasks import SHUTDOWN, cancel_and_wait, spawn
from coderouterd.telemetry import events, sdnotify
from coderouterd.telemetry.deferred import Deferred
from coderouterd.telemetry.logging import get_logger
from coderouterd.telemetry.memory import malloc_trim, trim_when_idle
from coderouterd.telemetry.metrics import MetricsBook
from coderouterd.telemetry.observers import ProviderStateObserver, RequestLogObserver
from coderouterd.telemetry.truncation import MIN_TOKENS, RATIO, TruncationWatch
from coderouterd.translate.images import IMAGE_TOKENS

# After the grace period, how long abandoned requests get to write their final error event.
_ABANDON_WAIT_S = 1.0


def build_daemon(
    loaded: LoadedConfig,
    *,
    clock: Clock,
    env: Mapping[str, str],
    state: StateService | None = None,
    server_overrides: Mapping[str, object] | None = None,
) -> Daemon:
    log = get_logger()
    board = ProviderBoard()
    inflight = InFlightRegistry(clock)
    slots = Slots()

    def runtime_adapters() -> Mapping[str, HttpAdapter]:
        # The adapters of whichever runtime is current when a probe is sent.
        return daemon.holder.current.adapters

    healing = HealingService(
        HealingBook.for_config(loaded.config, now_mono=clock.monotonic()),
        adapters=runtime_adapters,
        state=state,
        log=log,
        clock=clock,
        env=env,
        restart_logs=None if state is None else restart_log_dir(state.path.parent),
        slots=slots,
        board=board,
    )
    if state is not None:
        healing.load((e.provider, e.reason, e.since, e.until) for e in state.exclusions)
    drift = DriftWatch(loaded.config, log, clock)
    pace = PaceWatch(loaded.config, log, clock)

    def pricing(name: str) -> ProviderConfig | None:
        # The prices of whichever config is current when a batch is counted
        # (for a provider a reload took out, its last config's).
        return daemon.pricing(name)

    metrics = MetricsBook(pricing=pricing)
    truncation = TruncationWatch(log, clock)

    windows = LearnedWindows(clock, log=log, audit=state.audit if state else None)
    deferred = Deferred([drift.take, pace.take, metrics.take, truncation.take, windows.take], log)
    observers: list[Observer] = [
        inflight,
        ProviderStateObserver(board, clock, log, audit=state.audit if state else None),
        RequestLogObserver(log),
        healing,
        deferred,
    ]
    daemon = Daemon(
        loaded,
        clock=clock,
        env=env,
        observer=Observers(observers),
        inflight=inflight,
        board=board,
        budget=state.budget if state else BudgetBook(),
        log=log,
        state=state,
        server_overrides=server_overrides,
        healing=healing,
        drift=drift,
        pace=pace,
        deferred=deferred,
        metrics=metrics,
        truncation=truncation,
        windows=windows,
        slots=slots,
    )
    if state is not None:
        observers.append(
            RequestRecorder(
                state.writer,
                state.budget,
                clock,
                pricing=daemon.pricing,
                on_unwritten=state.replays.request_unwritten,
            )
        )
    return daemon


def build_app(daemon: Daemon) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=daemon.max_body_bytes)
    app[DAEMON] = daemon
    app[REQUEST_IDS] = RequestIds(seen=daemon.state.client_ids if daemon.state else ())
    add_routes(app.router)
    app.cleanup_ctx.append(_adapters_ctx)
    app.cleanup_ctx.append(_healing_ctx)
    return app


async def _healing_ctx(app: web.Application) -> AsyncIterator[None]:
    daemon = app[DAEMON]
    if daemon.state is not None:
        # Before the first request: a drifting, slow or outgrown backend stays
        # known across a restart.
        drift = daemon.drift
        state = daemon.state
        answers = reads.to_models(reads.recent_answers, drift.models)
        drift.load(await state.per_provider(answers, drift.watched, drift.window))
        pace = daemon.pace
        streams = reads.to_models(reads.recent_streams, pace.models)
        pace.load(await state.per_provider(streams, pace.watched, USUAL))
        daemon.windows.load(
            await state.recent_overflows(
                FORGET_S,
                held_within_s=MAX_HOLD_S,
                cut_ratio=RATIO,
                cut_min_tokens=MIN_TOKENS,
                image_tokens=IMAGE_TOKENS,
            )
        )
    # Probes and restarts run while the server does; they stop before the
    # state service closes, so their last records are written.
    healing = daemon.healing
    await healing.load_restarts()
    healing.start()
    daemon.deferred.start()
    yield
    await daemon.deferred.close()
    await healing.close()


async def _adapters_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DAEMON].close_adapters()


async def start_http(daemon: Daemon, host: str, port: int) -> tuple[web.AppRunner, web.TCPSite]:
    # handler_cancellation: a client that disconnects cancels its handler, which
    # cancels the upstream request instead of letting it run to the end.
    # auto_decompress off: ingress/decode.py decodes request bodies, so a
    # coding aiohttp cannot decode is refused in the client's envelope.
    runner = web.AppRunner(
        build_app(daemon),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=1.0,
        auto_decompress=False,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except (OSError, OverflowError) as exc:
        # OverflowError: a port outside 0-65535, which only a caller past the
        # config's and the command line's checks can give.
        await runner.cleanup()
        reason = getattr(exc, "strerror", None) or exc
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from exc
    daemon.listen = _listen_address(site)
    return runner, site


async def serve(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str] = os.environ,
    server_overrides: Mapping[str, object] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; drain in-flight requests; return the exit status.

    `server_overrides` (host, port from the command line; None: not given) win
    over the file, now and at every reload.
    """
    loaded = with_server_overrides(loaded, server_overrides or {})
    log = get_logger()
    clock = SystemClock()
    state_dir = resolve_state_dir(loaded.config, env)
    try:
        open_to_others = private_dir(state_dir)
    except OSError as exc:
        raise StateError(f"cannot create the state directory {state_dir}: {exc}") from exc
    if open_to_others is not None:
        log.warning(events.STATE_DIR_NOT_PRIVATE, state_dir=str(state_dir), reason=open_to_others)
    # One daemon per database, settled before anything there is read or written.
    with single_instance(state_dir):
        state = await StateService.open(state_dir, loaded.config.state, clock=clock, log=log)
        try:
            return await _serve(
                loaded,
                state,
                state_dir=state_dir,
                clock=clock,
                env=env,
                server_overrides=server_overrides,
            )
        finally:
            await state.close()


async def _serve(
    loaded: LoadedConfig,
    state: StateService,
    *,
    state_dir: Path,
    clock: Clock,
    env: Mapping[str, str],
    server_overrides: Mapping[str, object] | None,
) -> int:
    log = get_logger()
    server = loaded.config.server
    daemon = build_daemon(
        loaded, clock=clock, env=env, state=state, server_overrides=server_overrides
    )
    if not is_loopback(server.host):
        warn_non_loopback(log, server.host, events.SERVER_NON_LOOPBACK)

    # The control socket first: when another daemon already owns it, stop
    # before taking the TCP port.
    socket_path = resolve_control_socket(loaded.config, env)
    ctl_runner = web.AppRunner(
        build_ctl_app(
            status=daemon.status,
            reload=daemon.reload,
            on_action=daemon.ctl_action,
            provider_action=daemon.provider_action,
        ),
        access_log=None,
    )
    await ctl_runner.setup()
    try:
        ctl_site = await start_ctl_site(ctl_runner, socket_path)
    except BaseException:
        await ctl_runner.cleanup()
        raise
    try:
        runner, site = await start_http(daemon, server.host, server.port)
    except BaseException:
        await stop_ctl_site(ctl_site, socket_path)
        await ctl_runner.cleanup()
        raise

    stop = asyncio.Event()
    _install_signals(stop, daemon)
    log.info(
        events.SERVER_STARTED,
        listen=daemon.listen,
        pid=os.getpid(),
        config_path=loaded.path,
        config_digest=loaded.digest,
        control_socket=str(socket_path),
        state_dir=str(state_dir),
    )
    daemon.log_unavailable(daemon.holder.current)
    state.audit(
        events.DAEMON_STARTED,
        version=__version__,
        pid=os.getpid(),
        config_path=loaded.path,
        config_digest=loaded.digest,
    )
    daemon.audit_start()
    sdnotify.notify(sdnotify.READY)
    trim = malloc_trim()
    trimmer = (
        None
        if trim is None
        else spawn(
            trim_when_idle(lambda: daemon.inflight.started, lambda: len(daemon.inflight), trim),
            name="malloc-trim",
        )
    )
    try:
        await stop.wait()
    finally:
        if trimmer is not None:
            await cancel_and_wait(trimmer)
        await _shutdown(
            daemon,
            runner=runner,
            site=site,
            ctl_runner=ctl_runner,
            ctl_site=ctl_site,
            socket_path=socket_path,
        )
    return 0


async def _shutdown(
    daemon: Daemon,
    *,
    runner: web.AppRunner,
    site: web.TCPSite,
    ctl_runner: web.AppRunner,
    ctl_site: web.BaseSite,
    socket_path: Path,
) -> None:
    log = get_logger()
    # The config in force now: a reload may have changed the grace period.
    grace_s = daemon.holder.current.config.server.grace_period_s
    sdnotify.notify(sdnotify.STOPPING)
    log.info(events.SERVER_STOPPING, in_flight=len(daemon.inflight), grace_period_s=grace_s)
    # No new connections; a request that starts on a kept-alive one is
    # refused, and each answer closes its connection. (aiohttp's own
    # pre_shutdown would also stop reading the body of a request still
    # uploading, which is in flight and must get its grace period.)
    daemon.stopping = True
    # A request failing during the grace period starts no restart or probe.
    daemon.healing.stop_starting()
    await site.stop()
    try:
        async with asyncio.timeout(grace_s):
            await daemon.inflight.wait_idle()
    except TimeoutError:
        log.warning(events.SERVER_DRAIN_TIMEOUT, abandoned=daemon.inflight.cancel_all(SHUTDOWN))
        # Abandoned handlers end their streams with an error event, then finish.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ABANDON_WAIT_S):
                await daemon.inflight.wait_idle()
    await runner.cleanup()
    await stop_ctl_site(ctl_site, socket_path)
    await ctl_runner.cleanup()
    if daemon.state is not None:
        daemon.state.audit(events.DAEMON_STOPPED, pid=os.getpid())
    log.info(events.SERVER_STOPPED)


def _install_signals(stop: asyncio.Event, daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(daemon.reload(), name="reload:sighup"))


def _listen_address(site: web.TCPSite) -> str:
    server = site._server
    if isinstance(server, asyncio.base_events.Server) and server.sockets:
        addr = server.sockets[0].getsockname()
        return f"{addr[0]}:{addr[1]}" if ":" not in addr[0] else f"[{addr[0]}]:{addr[1]}"
    return site.name
