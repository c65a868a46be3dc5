"""The key a client on this machine would send, for the commands that ask a
provider themselves (`doctor`, `replay`): a provider with `forward_client_key`
and no key of its own works only with a client's key, and these commands
have no client whose key they could forward."""

from __future__ import annotations

from collections.abc import Mapping

from coderouterd.config.model import ProviderConfig
from coderouterd.errors import CoderouterError

# Where a client keeps the key it would send, and the header it sends it in.
CLIENT_KEYS = (
    ("ANTHROPIC_API_KEY", "x-api-key", ""),
    ("ANTHROPIC_AUTH_TOKEN", "authorization", "Bearer "),
    ("OPENAI_API_KEY", "authorization", "Bearer "),
)


def client_key(
    provider: ProviderConfig, env: Mapping[str, str], *, own_key: bool
) -> dict[str, str]:
    """The header a provider that forwards its clients' keys (and has none of
    its own) is asked with: the key a client on this machine would send; none
    for any other provider. Refused when such a provider would go without."""
    if not provider.forward_client_key or own_key:
        return {}
    for name, header, scheme in CLIENT_KEYS:
        if key := env.get(name):
            return {header: scheme + key}
    names = ", ".join(name for name, _, _ in CLIENT_KEYS)
    raise CoderouterError(
        f"provider {provider.name!r} cannot be asked: it sends each client's own key"
        f" (forward_client_key) and has none of its own; set one of {names}"
        " to the key a client would send"
    )
