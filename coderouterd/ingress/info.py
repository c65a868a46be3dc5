"""GET /v1/models (and one by id), the liveness routes `/` and `/healthz`, and GET /metrics."""

from __future__ import annotations

import msgspec
from aiohttp import web

from coderouterd import __version__
from coderouterd.ingress.keys import DAEMON
from coderouterd.metrics import render_metrics
from coderouterd.telemetry.metrics import Exposition

_encode = msgspec.json.Encoder().encode


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
    either SDK can list them.
    """
    entries = _entries(request)
    return web.Response(
        body=_encode(
            {
                "object": "list",
                "data": entries,
                "has_more": False,
                "first_id": entries[0]["id"] if entries else None,
                "last_id": entries[-1]["id"] if entries else None,
            }
        ),
        content_type="application/json",
    )


async def model(request: web.Request) -> web.Response:
    """One entry of the list, by id (both SDKs' `models.retrieve`)."""
    wanted = request.match_info["model_id"]
    for entry in _entries(request):
        if entry["id"] == wanted:
            return web.Response(body=_encode(entry), content_type="application/json")
    raise web.HTTPNotFound(reason=f"no model {wanted!r}: GET /v1/models lists them")


def _entries(request: web.Request) -> list[dict[str, object]]:
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


def _model(name: str, display: str, created: int, created_at: str) -> dict[str, object]:
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
