"""The config file as frozen msgspec Structs.

Field names keep the providers.yaml vocabulary of coderouter-cli where they
can; `coderouterd import-config` (legacy.py) rewrites what differs.
Defaults here are the documented defaults (README, config reference);
change them in one place only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
# \Z, not $: $ also matches before a final line break, which a name must not hold.
Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*\Z")
]
# cross.py checks the scheme, host and port: a pattern's message here would
# quote the URL, and with it a password it may carry.
HttpUrl = Annotated[str, msgspec.Meta(min_length=1)]

ProviderKind = Literal["anthropic", "openai_compat"]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class TimeoutsConfig(_Strict, frozen=True):
    """Deadlines of one attempt, in seconds.

    first_byte_s runs until the first content event of a stream (the commit
    point) or the response headers of a non-streaming call; local backends
    that load a model on demand need it generous.
    """

    connect_s: Positive = 5.0
    first_byte_s: Positive = 300.0
    idle_s: Positive = 120.0
    total_s: Positive = 1800.0


class CostConfig(_Strict, frozen=True):
    """Prices in USD per million tokens, Anthropic-style cache pricing, monthly cap.

    Cache reads are billed at input price x cache_read_discount, cache
    writes at input price x cache_creation_premium, or x
    cache_creation_1h_premium for those the provider reports as 1-hour ones.
    """

    input_tokens_per_million: NonNegative = 0.0
    output_tokens_per_million: NonNegative = 0.0
    cache_read_discount: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.10
    cache_creation_premium: Annotated[float, msgspec.Meta(ge=1)] = 1.25
    cache_creation_1h_premium: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    # Spend cap per UTC calendar month; None means no cap.
    monthly_budget_usd: NonNegative | None = None


class OutputFiltersConfig(_Strict, frozen=True):
    """Clean-up of model output; None means the default of the provider's kind.

    openai_compat providers default to think: thinking, strip_tool_markup,
    repair_tool_calls and strip_stop_markers on (local models print reasoning and tool calls as
    text); anthropic providers default to all off (their output is already
    structured). assume_think_open defaults to the capability registry's
    template_opens_think for the provider's model.
    """

    think: Literal["off", "strip", "thinking"] | None = None
    # The model's text starts inside a think block its chat template opened.
    assume_think_open: bool | None = None
    strip_tool_markup: bool | None = None
    repair_tool_calls: bool | None = None
    # Chat-template control tokens (<|im_end|>, <|eot_id|>, ...) leaked into the text.
    strip_stop_markers: bool | None = None


ReasoningParam = Literal["reasoning_effort", "reasoning", "think"]
ToolIdFormat = Literal["mistral"]
# The `thinking` types a Claude model takes: `enabled` with budget_tokens,
# `adaptive`, or both (translate/thinking_shape.py).
ThinkingModes = Literal["budget", "adaptive", "both"]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class CapabilityFields(_Strict, frozen=True):
    """What a model can do, as a capability rule or a provider's `capabilities`
    sets it: only the fields written apply (translate/capabilities.py says
    what each one does)."""

    tools: bool | msgspec.UnsetType = msgspec.UNSET
    vision: bool | msgspec.UnsetType = msgspec.UNSET
    thinking: bool | msgspec.UnsetType | None = msgspec.UNSET
    reasoning_param: ReasoningParam | msgspec.UnsetType | None = msgspec.UNSET
    template_opens_think: bool | msgspec.UnsetType = msgspec.UNSET
    cache_control: bool | msgspec.UnsetType | None = msgspec.UNSET
    system_messages: bool | msgspec.UnsetType | None = msgspec.UNSET
    effort: bool | msgspec.UnsetType | None = msgspec.UNSET
    thinking_modes: ThinkingModes | msgspec.UnsetType | None = msgspec.UNSET
    sampling: bool | msgspec.UnsetType | None = msgspec.UNSET
    strict_schema: bool | msgspec.UnsetType = msgspec.UNSET
    echo_reasoning: bool | msgspec.UnsetType = msgspec.UNSET
    signed_thinking: bool | msgspec.UnsetType = msgspec.UNSET
    tool_id_format: ToolIdFormat | msgspec.UnsetType | None = msgspec.UNSET
    max_context_tokens: _PositiveInt | msgspec.UnsetType | None = msgspec.UNSET
    max_output_tokens: _PositiveInt | msgspec.UnsetType | None = msgspec.UNSET

    def written(self) -> dict[str, Any]:
        """The fields set, by name."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


# An argv list, run without a shell (see SelfHealingConfig).
Argv = Annotated[tuple[Annotated[str, msgspec.Meta(min_length=1)], ...], msgspec.Meta(min_length=1)]
HealthAction = Literal["off", "warn", "demote", "exclude"]
PressureAction = Literal["off", "warn", "skip"]
LoopAction = Literal["off", "warn", "inject", "break"]
DriftAction = Literal["off", "warn", "demote"]


class ProviderConfig(_Strict, frozen=True):
    name: Name
    base_url: HttpUrl
    model: Annotated[str, msgspec.Meta(min_length=1)]
    kind: ProviderKind = "openai_compat"
    api_key_env: str | None = None
    forward_client_key: bool = False
    extra_headers: dict[str, str] = {}
    paid: bool = False
    timeouts: TimeoutsConfig = TimeoutsConfig()
    # Ceiling on max_tokens sent to this provider (small local context windows).
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Requests sent to it at once (a local server's slots); None: no limit.
    # Past it the chain's next provider is tried, or a slot waited for
    # (routing/slots.py).
    max_concurrent: _PositiveInt | None = None
    # Top-level fields added to every request body sent to this provider,
    # unless the body already has them (vLLM's chat_template_kwargs,
    # llama.cpp's cache_prompt, Ollama's keep_alive). `model` and `stream`
    # are ours to set and are refused.
    extra_body: dict[str, Any] = {}
    # Text added after the system prompt of every request sent to this
    # provider ("/no_think" for a Qwen3 model that should not reason).
    append_system_prompt: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    output_filters: OutputFiltersConfig = OutputFiltersConfig()
    # Set over what the capability rules say of this provider's model (the
    # same server can differ from the registry: an old template, a flag).
    capabilities: CapabilityFields = CapabilityFields()
    cost: CostConfig | None = None
    # Run when the provider is excluded as unhealthy, e.g.
    # [systemctl, --user, restart, ollama]; never through a shell.
    restart_command: Argv | None = None
    restart_timeout_s: Positive = 30.0


# Read also where plain data is checked (cross.py) or converted (legacy.py).
TOOL_LOOP_WINDOW, TOOL_LOOP_THRESHOLD = 5, 3


class ProfileConfig(_Strict, frozen=True):
    name: Name
    providers: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    allow_paid: bool | None = None
    # False keeps this profile's requests out of the replay records.
    record_replays: bool = True
    # Text added after the system prompt of every request through this
    # profile, whichever provider answers it.
    append_system_prompt: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    # How this profile treats a provider self-healing has excluded: `exclude`
    # skips it, `demote` tries it last (both let this profile's threshold
    # exclude it), `warn` and `off` leave it in place.
    backend_health_action: HealthAction = "warn"
    # A provider listed by an `exclude` or `demote` profile is excluded after
    # twice this many consecutive failed attempts (the smallest such threshold wins).
    backend_health_threshold: Annotated[int, msgspec.Meta(ge=2, le=20)] = 3
    # A provider that says it ran out of memory: `skip` keeps it out of this
    # profile for memory_pressure_cooldown_s (time to free the model's
    # memory), `warn` logs it, `off` does neither.
    memory_pressure_action: PressureAction = "warn"
    memory_pressure_cooldown_s: Annotated[int, msgspec.Meta(ge=10, le=3600)] = 120
    # An agent calling the same tool with the same input at least
    # tool_loop_threshold times in a row, among its last tool_loop_window
    # calls: `warn` logs it, `inject` also tells the model after its system
    # prompt, `break` answers 400 instead.
    tool_loop_action: LoopAction = "warn"
    tool_loop_window: Annotated[int, msgspec.Meta(ge=2, le=50)] = TOOL_LOOP_WINDOW
    tool_loop_threshold: Annotated[int, msgspec.Meta(ge=2, le=50)] = TOOL_LOOP_THRESHOLD
    # A provider whose answers are drifting (DriftConfig): `warn` logs it
    # (and answers say so in a header), `demote` also tries it last while
    # the drift is severe, `off` leaves it unwatched (unless another profile
    # lists it).
    drift_action: DriftAction = "warn"
    # A listed provider whose streamed answers decode far slower than usual
    # (healing/pace.py) is tried after the provider that follows it.
    adaptive: bool = False
    # A provider whose context window is smaller than the request's prompt
    # is skipped: `skip` by the window its capabilities declare
    # (max_context_tokens) or one learned from the backend (routing/windows.py),
    # `learned` by a learned one only (the backend's own word, where a
    # declared window may be wrong), `off` never.
    context_action: Literal["off", "learned", "skip"] = "learned"


class ReplayConfig(_Strict, frozen=True):
    enabled: bool = True
    # A record (request plus response, compressed) larger than this is not kept.
    max_record_kb: Annotated[int, msgspec.Meta(ge=1)] = 4096
    # Oldest records are deleted first once all of them together pass this.
    max_total_mb: Annotated[int, msgspec.Meta(ge=1)] = 1024


class StateConfig(_Strict, frozen=True):
    """The SQLite database in server.state_dir and its single writer."""

    # FULL also syncs the WAL on every commit: survives power loss, costs latency.
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # The writer commits queued records at most this long after the first one
    # arrived (or sooner, at commit_batch records): a crash loses at most this window.
    commit_window_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    commit_batch: Annotated[int, msgspec.Meta(ge=1)] = 256
    # Records waiting for the writer; past this they are dropped and counted.
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    retention_days: Positive = 30.0
    retention_max_mb: Annotated[int, msgspec.Meta(ge=1)] = 2048
    replay: ReplayConfig = ReplayConfig()


class SelfHealingConfig(_Strict, frozen=True):
    """Excluded providers are probed until one answers; restart_command runs once per exclusion."""

    # Probe delays double from the first to the cap, each moved by up to
    # +-jitter of itself so that providers excluded together are not probed in step.
    recovery_initial_interval_s: Positive = 30.0
    recovery_max_interval_s: Positive = 300.0
    recovery_jitter: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.1
    probe_timeout_s: Positive = 10.0
    # A provider excluded again within this long is not restarted again.
    restart_min_interval_s: NonNegative = 600.0
    # The last bytes of a restart_command's output kept in its audit event.
    restart_output_bytes: Annotated[int, msgspec.Meta(ge=0, le=65536)] = 2048
    # A failure this long after the previous one starts a new streak.
    failure_window_s: Positive = 600.0
    # Probe every provider that is not paid and has had no attempt for this
    # long, so that a dead backend is found (and excluded) before a client
    # waits on it; failed probes count like failed attempts. None: off.
    continuous_probe_interval_s: Positive | None = None


# `default_profile: auto` routes each request by its content (AutoRouterConfig).
AUTO_PROFILE = "auto"


class RuleMatch(_Strict, frozen=True):
    """One test of a request; a rule sets exactly one (cross.py checks it).

    The text tests read the user's latest own message (not tool results),
    has_image the current turn, content_token_count_min the whole prompt
    (see routing/auto.py).
    """

    has_image: bool | None = None
    code_fence_ratio_min: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    content_contains: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    # Python regular expressions: searched in the text, or matching the whole model name.
    content_regex: str | None = None
    model_pattern: str | None = None
    content_token_count_min: Annotated[int, msgspec.Meta(ge=1)] | None = None


class AutoRule(_Strict, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    profile: str
    match: RuleMatch


# The rules of an auto router given none: images to `multi`, a message that
# is mostly code to `coding`; the rest goes to default_rule_profile.
BUILTIN_AUTO_RULES = (
    AutoRule(id="builtin:image-attachment", profile="multi", match=RuleMatch(has_image=True)),
    AutoRule(
        id="builtin:code-fence-dense", profile="coding", match=RuleMatch(code_fence_ratio_min=0.3)
    ),
)


class AutoRouterConfig(_Strict, frozen=True):
    """Rules tried in order, the first match choosing the profile; no rules
    means BUILTIN_AUTO_RULES."""

    disabled: bool = False
    rules: tuple[AutoRule, ...] = ()
    # Where a request no rule matches goes (and every request while disabled).
    default_rule_profile: str = "writing"


class DriftConfig(_Strict, frozen=True):
    """Quality drift: each provider's last `window` outcomes judged together
    (healing/drift.py), with the thresholds of `sensitivity`."""

    sensitivity: Literal["low", "normal", "high"] = "normal"
    window: Annotated[int, msgspec.Meta(ge=10, le=200)] = 20


class ServerConfig(_Strict, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8088
    state_dir: str | None = None
    control_socket: str | None = None
    grace_period_s: NonNegative = 30.0
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024 * 1024
    # A client that sends its headers and then stalls its body would hold a
    # connection and an in-flight entry for ever: the whole body has this long.
    body_timeout_s: Positive = 60.0
    keepalive_after_s: Positive = 10.0
    keepalive_interval_s: Positive = 10.0


class Config(_Strict, frozen=True):
    providers: Annotated[tuple[ProviderConfig, ...], msgspec.Meta(min_length=1)]
    profiles: Annotated[tuple[ProfileConfig, ...], msgspec.Meta(min_length=1)]
    default_profile: str | None = None
    allow_paid: bool = False
    # A YAML file of model capability rules applied after the bundled ones;
    # a relative path is read next to the config file (load resolves it).
    capabilities_file: str | None = None
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    self_healing: SelfHealingConfig = SelfHealingConfig()
    drift: DriftConfig = DriftConfig()
    # Names a client may give in the x-coderouter-mode header, each for a
    # profile: a stable intent ("fast", "review") while chains are rewired.
    mode_aliases: dict[Name, str] = {}
    # Read only with default_profile: auto.
    auto_router: AutoRouterConfig | None = None

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def profile(self, name: str) -> ProfileConfig | None:
        return next((p for p in self.profiles if p.name == name), None)

    @property
    def auto_routing(self) -> AutoRouterConfig | None:
        """The auto router's settings when `default_profile: auto` turns it on."""
        if self.default_profile != AUTO_PROFILE:
            return None
        return self.auto_router or AutoRouterConfig()

    @property
    def default_shown(self) -> str:
        """The default profile as the config file names it: `auto`, or a profile."""
        return AUTO_PROFILE if self.auto_routing is not None else self.default_profile_name

    @property
    def default_profile_name(self) -> str:
        """The profile a request that chooses none goes to (with the auto
        router on: when no rule matches)."""
        if (auto := self.auto_routing) is not None:
            return auto.default_rule_profile
        return self.default_profile or self.profiles[0].name
