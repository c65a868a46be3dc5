"""Adapter for OpenAI-compatible Chat Completions providers (`kind: openai_compat`)."""

from __future__ import annotations

from collections.abc import Mapping

from coderouterd.providers.base import HttpAdapter, UpstreamResponse
from coderouterd.routing.call import Call


class OpenAICompatAdapter(HttpAdapter):
    @property
    def url(self) -> str:
        # base_url carries the version prefix (".../v1"), as OpenAI SDKs expect.
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def headers(self, call: Call) -> dict[str, str]:
        out = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        out.update(self._credentials(call.headers))
        out.update(self.config.extra_headers)
        return out

    def _credentials(self, client: Mapping[str, str]) -> dict[str, str]:
        if self.api_key:
            return {"authorization": f"Bearer {self.api_key}"}
        if self.config.forward_client_key:
            if "authorization" in client:
                return {"authorization": client["authorization"]}
            if "x-api-key" in client:
                return {"authorization": f"Bearer {client['x-api-key']}"}
        return {}

    async def open(self, call: Call, body: bytes) -> UpstreamResponse:
        return await self.post(self.url, body, self.headers(call))
