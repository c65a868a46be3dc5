"""Adapter for Anthropic Messages API providers (`kind: anthropic`)."""

from __future__ import annotations

from collections.abc import Mapping

from coderouterd.providers.base import HttpAdapter, UpstreamResponse
from coderouterd.routing.call import Call

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"

# Client headers an Anthropic upstream understands; everything else the
# client sent (its own api key, session ids, user agents) stays here.
_PASS_HEADERS = ("anthropic-version", "anthropic-beta")
_BETA = "anthropic-beta"


class AnthropicAdapter(HttpAdapter):
    dialect = "anthropic"

    @property
    def url(self) -> str:
        base = self.config.base_url.rstrip("/")
        return base + "/messages" if base.endswith("/v1") else base + "/v1/messages"

    def headers(self, call: Call) -> dict[str, str]:
        out = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        for name in _PASS_HEADERS:
            if (value := call.headers.get(name)) is not None:
                out[name] = value
        out.setdefault("anthropic-version", DEFAULT_ANTHROPIC_VERSION)
        out.update(self._credentials(call.headers))
        for name, value in self.config.extra_headers.items():
            if name.lower() == _BETA:
                # A list: the configured betas join the client's, which
                # turn on features its request body may use.
                out[_BETA] = _merged_betas(out.get(_BETA, ""), value)
            else:
                out[name] = value
        return out

    def _credentials(self, client: Mapping[str, str]) -> dict[str, str]:
        if self._api_key:
            return {"x-api-key": self._api_key}
        if self.config.forward_client_key:
            if "x-api-key" in client:
                return {"x-api-key": client["x-api-key"]}
            if "authorization" in client:
                return {"authorization": client["authorization"]}
        return {}

    async def open(self, call: Call, body: bytes) -> UpstreamResponse:
        return await self.post(self.url, body, self.headers(call))


def _merged_betas(client: str, configured: str) -> str:
    """The client's betas, then the configured ones it did not send."""
    betas: list[str] = []
    for beta in (*client.split(","), *configured.split(",")):
        if (name := beta.strip()) and name not in betas:
            betas.append(name)
    return ",".join(betas)
