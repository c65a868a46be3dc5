"""The config used when there is no config file: the usual local servers, in order.

Ollama, LM Studio and llama.cpp's server all speak the Anthropic Messages
API on their standard ports, so the default chain passes requests through
as bytes with no translation. `DEFAULT_CONFIG_YAML` is the same config as
text, as a starting point for users; a test proves the two agree.
"""

from __future__ import annotations

from coderouterd.config.model import Config, ProfileConfig, ProviderConfig

# (name, base_url, model) of the local servers, on the ports they use by default.
_LOCAL_SERVERS = (
    ("ollama", "http://127.0.0.1:11434", "qwen2.5-coder:7b"),
    ("lmstudio", "http://127.0.0.1:1234", "local-model"),
    ("llamacpp", "http://127.0.0.1:8080", "local-model"),
)

DEFAULT_CONFIG_YAML = """\
# coderouterd default config: three local servers, tried in order, each on the
# Anthropic Messages API it serves at /v1/messages.
providers:
  - name: ollama
    kind: anthropic
    base_url: http://127.0.0.1:11434
    model: qwen2.5-coder:7b
  - name: lmstudio
    kind: anthropic
    base_url: http://127.0.0.1:1234
    model: local-model
  - name: llamacpp
    kind: anthropic
    base_url: http://127.0.0.1:8080
    model: local-model

profiles:
  - name: default
    providers: [ollama, lmstudio, llamacpp]

default_profile: default
"""


def default_config() -> Config:
    providers = tuple(
        ProviderConfig(name=name, kind="anthropic", base_url=url, model=model)
        for name, url, model in _LOCAL_SERVERS
    )
    chain = ProfileConfig(name="default", providers=tuple(p.name for p in providers))
    return Config(providers=providers, profiles=(chain,), default_profile="default")
