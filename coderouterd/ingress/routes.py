"""The daemon's HTTP routes (README, HTTP API)."""

from __future__ import annotations

from aiohttp import web

from coderouterd.ingress import info, messages


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/messages", messages.completion_handler("anthropic"))
    router.add_post("/v1/chat/completions", messages.completion_handler("openai"))
    router.add_post("/v1/messages/count_tokens", messages.count_tokens)
    router.add_get("/v1/models", info.models)
    router.add_get("/v1/models/{model_id}", info.model)
    router.add_get("/", info.health)
    router.add_get("/healthz", info.health)
    router.add_get("/metrics", info.metrics)
