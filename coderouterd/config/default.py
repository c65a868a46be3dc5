"""The config used when there is no config file: the usual local servers, in order.

`DEFAULT_CONFIG_YAML` is the same config as text, for `coderouterd init`-style
output and for users who want a starting point; a test proves the two agree.
"""

from __future__ import annotations

from coderouterd.config.model import Config, ProfileConfig, ProviderConfig

# (name, base_url, model) of the OpenAI-compatible servers local tools start by default.
_LOCAL_SERVERS = (
    ("ollama", "http://127.0.0.1:11434/v1", "qwen2.5-coder:7b"),
    ("lmstudio", "http://127.0.0.1:1234/v1", "local-model"),
    ("llamacpp", "http://127.0.0.1:8080/v1", "local-model"),
)

DEFAULT_CONFIG_YAML = """\
# coderouterd default config: three local OpenAI-compatible servers, tried in order.
providers:
  - name: ollama
    kind: openai_compat
    base_url: http://127.0.0.1:11434/v1
    model: qwen2.5-coder:7b
  - name: lmstudio
    kind: openai_compat
    base_url: http://127.0.0.1:1234/v1
    model: local-model
  - name: llamacpp
    kind: openai_compat
    base_url: http://127.0.0.1:8080/v1
    model: local-model

profiles:
  - name: default
    providers: [ollama, lmstudio, llamacpp]

default_profile: default
"""


def default_config() -> Config:
    providers = tuple(
        ProviderConfig(name=name, kind="openai_compat", base_url=url, model=model)
        for name, url, model in _LOCAL_SERVERS
    )
    chain = ProfileConfig(name="default", providers=tuple(p.name for p in providers))
    return Config(providers=providers, profiles=(chain,), default_profile="default")
