"""What a profile changes in a request before it is routed: its system
text, and a tool loop's hint, or its refusal."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from coderouterd.config.model import ProfileConfig
from coderouterd.errors import InvalidRequestError
from coderouterd.ingress import tool_loop
from coderouterd.ingress.body import MESSAGES, RequestBody
from coderouterd.scrub import clip
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.translate.system_text import after_system

_log = get_logger()


def amended(
    profile: ProfileConfig | None, parsed: RequestBody, dialect: str
) -> Mapping[str, msgspec.Raw]:
    """The fields to route: the body's own, after the system prompt the
    profile's append_system_prompt and then a hint to a model in a tool
    loop (tool_loop_action: inject); a loop under `break` is refused."""
    if profile is None:
        return parsed.fields
    fields = parsed.fields
    if profile.append_system_prompt is not None:
        fields = after_system(fields, dialect, profile.append_system_prompt)
    return _loop_guard(profile, parsed, fields, dialect)


def _loop_guard(
    profile: ProfileConfig, parsed: RequestBody, fields: Mapping[str, msgspec.Raw], dialect: str
) -> Mapping[str, msgspec.Raw]:
    if profile.tool_loop_action == "off":
        return fields
    loop = tool_loop.detect(
        parsed, window=profile.tool_loop_window, threshold=profile.tool_loop_threshold
    )
    if loop is None:
        return fields
    action = profile.tool_loop_action
    # The name is the client's (its history's), of any length.
    tool = clip(loop.tool)
    _log.warning(
        events.REQUEST_TOOL_LOOP,
        profile=profile.name,
        tool=tool,
        repeats=loop.repeats,
        threshold=profile.tool_loop_threshold,
        window=profile.tool_loop_window,
        action=action,
    )
    if action == "break":
        raise InvalidRequestError(
            f"tool loop: {tool} was called {loop.repeats} times in a row with the same "
            f"input; profile {profile.name!r} stops such loops (tool_loop_action: break)",
            field=MESSAGES,
        )
    return tool_loop.with_hint(fields, dialect) if action == "inject" else fields
