"""GET /v1/models (and one by id), the liveness routes `/` and `/healthz`, and GET /metrics."""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
from aiohttp import web

from coderouterd import __version__
from coderouterd.errors import InvalidRequestError
from coderouterd.ingress.keys import DAEMON
from coderouterd.metrics import render_metrics
from coderouterd.telemetry.metrics import Exposition

_encode = msgspec.json.Encoder().encode

# One entry of GET /v1/models: the fields of both dialects' list shapes.
Entry = dict[str, object]


async def health(request: web.Request) -> web.Response:
    return web.Response(
        body=_encode({"status": "ok", "service": "coderouterd", "version": __version__}),
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus's text format (coderouterd/metrics.py)."""
    text = render_metrics(request.app[DAEMON])
    return web.Response(body=text.encode(), headers={"content-type": Exposition.CONTENT_TYPE})


async def models(request: web.Request) -> web.Response:
    """Profiles and providers, each usable as a `model` value to select it.

    Each entry carries both the Anthropic (`type`, `display_name`,
    `created_at`) and the OpenAI (`object`, `created`, `owned_by`) fields so
    either SDK can list them. Pages as Anthropic's list does (`limit`,
    `after_id`, `before_id`); without a `limit` the page is the whole list:
    OpenAI clients read one page only, and an Anthropic client takes a page
    of any size.
    """
    entries, has_more = page(_entries(request), request.query)
    return web.Response(
        body=_encode(
            {
                "object": "list",
                "data": entries,
                "has_more": has_more,
                "first_id": entries[0]["id"] if entries else None,
                "last_id": entries[-1]["id"] if entries else None,
            }
        ),
        content_type="application/json",
    )


MAX_LIMIT = 1000
_LIMIT = re.compile(r"[0-9]{1,4}")


def page(entries: list[Entry], query: Mapping[str, str]) -> tuple[list[Entry], bool]:
    """The entries a query asks for, and whether more lie beyond them the way
    it pages: after the page, or before it for a `before_id` (pure)."""
    limit = _limit(query.get("limit"))
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise InvalidRequestError("give after_id or before_id, not both", field="before_id")
    if before is not None:
        end = _position(entries, before, "before_id")
        start = 0 if limit is None else max(0, end - limit)
        return entries[start:end], start > 0
    start = 0 if after is None else _position(entries, after, "after_id") + 1
    end = len(entries) if limit is None else min(len(entries), start + limit)
    return entries[start:end], end < len(entries)


def _limit(given: str | None) -> int | None:
    if given is None:
        return None
    if not _LIMIT.fullmatch(given) or not 1 <= int(given) <= MAX_LIMIT:
        raise InvalidRequestError(f"must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return int(given)


def _position(entries: list[Entry], wanted: str, name: str) -> int:
    for at, entry in enumerate(entries):
        if entry["id"] == wanted:
            return at
    raise InvalidRequestError(f"no model {wanted!r} in the list", field=name)


async def model(request: web.Request) -> web.Response:
    """One entry of the list, by id (both SDKs' `models.retrieve`)."""
    wanted = request.match_info["model_id"]
    for entry in _entries(request):
        if entry["id"] == wanted:
            return web.Response(body=_encode(entry), content_type="application/json")
    raise web.HTTPNotFound(reason=f"no model {wanted!r}: GET /v1/models lists them")


def _entries(request: web.Request) -> list[Entry]:
    daemon = request.app[DAEMON]
    config = daemon.holder.current.config
    created = int(daemon.started_wall)
    created_at = daemon.started_iso
    profiles = {p.name for p in config.profiles}
    return [
        _model(p.name, f"profile {p.name}: " + " > ".join(p.providers), created, created_at)
        for p in config.profiles
    ] + [
        _model(p.name, f"provider {p.name} ({p.kind}, {p.model})", created, created_at)
        for p in config.providers
        # That `model` selects the profile: listing both would show one id twice.
        if p.name not in profiles
    ]


def _model(name: str, display: str, created: int, created_at: str) -> Entry:
    return {
        "id": name,
        "type": "model",
        "display_name": display,
        "created_at": created_at,
        # The Anthropic SDK's ModelInfo requires it; clients keep the active ones.
        "lifecycle": "active",
        "object": "model",
        "created": created,
        "owned_by": "coderouterd",
    }
