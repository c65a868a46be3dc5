"""Log event names: constants, so a rename is one edit and a grep finds every use."""

REQUEST_COMPLETED = "request.completed"
# A sent request's report or replay record raised; the request itself was answered.
REQUEST_BOOKKEEPING_FAILED = "request.bookkeeping_failed"
REQUEST_UNHANDLED = "request.unhandled"
PROVIDER_FAILING = "provider.failing"
REQUEST_TOOL_LOOP = "request.tool_loop"
# Debug: which auto_router rule chose a request's profile, and what it read.
ROUTING_AUTO = "routing.auto"
PROVIDER_RECOVERED = "provider.recovered"
SERVER_STARTED = "server.started"
SERVER_STOPPING = "server.stopping"
SERVER_STOPPED = "server.stopped"
SERVER_DRAIN_TIMEOUT = "server.drain_timed_out"
SERVER_NON_LOOPBACK = "server.non_loopback_bind"
CONFIG_RELOADED = "config.reloaded"
CONFIG_RELOAD_REJECTED = "config.reload_rejected"
# Started on the built-in default while a coderouter-cli config sits where that tool looks.
CONFIG_LEGACY_IGNORED = "config.legacy_ignored"
PROVIDER_UNAVAILABLE = "provider.unavailable"
CAPABILITY_DEGRADED = "capability.degraded"
# Reading a provider's stream or answer raised something other than an upstream error:
# the stream is failed like a malformed one, and the traceback logged.
PROVIDER_STREAM_UNREADABLE = "provider.stream_unreadable"
# A library's own warning or error (aiohttp, asyncio), through the logging module.
LIBRARY_LOG = "library.log"
# A consumer of queued request summaries (drift, /metrics) raised.
TELEMETRY_DEFERRED_FAILED = "telemetry.deferred_failed"
# An engine observer raised on a report: it lost that report, and no one else did.
TELEMETRY_OBSERVER_FAILED = "telemetry.observer_failed"

# Audit log events (also written to the hash-chained audit table).
DAEMON_STARTED = "daemon.started"
DAEMON_STOPPED = "daemon.stopped"
CTL_ACTION = "ctl.action"
PROVIDER_AUTH_REJECTED = "provider.auth_rejected"
PROVIDER_AUTH_ACCEPTED = "provider.auth_accepted"
# Audit events of self-healing (StateService queues the row change, then these).
PROVIDER_EXCLUDED = "provider.excluded"
PROVIDER_RESTORED = "provider.restored"
PROVIDER_RESTART_COMMAND = "provider.restart_command"
# A context window learned from a backend (routing/windows.py) forgotten
# before its time: it read a longer prompt whole, or the operator restored
# it. Audited, so a restart does not read back what came before.
PROVIDER_WINDOW_FORGOTTEN = "provider.window_forgotten"
# A learned window held longer than FORGET_S (a backend that failed again
# soon after getting its chance back): audited, so a restart keeps holding it.
PROVIDER_WINDOW_HELD = "provider.window_held"
# Logged only.
PROVIDER_RESTART_SKIPPED = "provider.restart_skipped"
PROVIDER_PROBE = "provider.probe"
PROVIDER_EXCLUDED_AT_STARTUP = "provider.excluded_at_startup"
PROVIDER_MEMORY_PRESSURE = "provider.memory_pressure"
# A provider an `adaptive` profile lists decodes far slower than it usually
# does (healing/pace.py), and is back at its usual speed.
PROVIDER_SLOW = "provider.slow"
PROVIDER_SLOW_CLEARED = "provider.slow_cleared"
# A provider's answers drifting (healing/drift.py), and back to normal.
PROVIDER_DRIFT = "provider.drift"
PROVIDER_DRIFT_CLEARED = "provider.drift_cleared"
# A backend counted far fewer input tokens than were sent: it cut the prompt.
PROVIDER_PROMPT_TRUNCATED = "provider.prompt_truncated"
# Warnings at start: a directory holding prompts or the control socket is open to others.
STATE_DIR_NOT_PRIVATE = "state.dir_not_private"
CTL_SOCKET_DIR_NOT_PRIVATE = "ctl.socket_dir_not_private"
# The state writer (state/service.py): records dropped for a full queue, a
# batch lost to a failed commit, a client's request id already stored.
STATE_RECORDS_DROPPED = "state.records_dropped"
STATE_WRITE_FAILED = "state.write_failed"
STATE_REQUEST_ID_REUSED = "state.request_id_reused"
# Replay records dropped: the writer's queue was full, or their request's row is not stored.
STATE_REPLAYS_DROPPED = "state.replays_dropped"
# A retention pass that deleted rows, or one that failed.
STATE_RETENTION = "state.retention"
STATE_RETENTION_FAILED = "state.retention_failed"
