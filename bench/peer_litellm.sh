#!/usr/bin/env bash
# Install the LiteLLM proxy into its own environment (bench/.peer-venv) so that
# bench/run.py can measure it next to coderouterd. Nothing outside bench/ is
# touched; delete bench/.peer-venv to remove it.
#
# The version is pinned: LiteLLM has had compromised releases on PyPI, so a
# benchmark must not pull whatever is newest. Override with LITELLM_VERSION.
#
# The config written here points at the bench mock upstream through
# environment variables that run.py sets when it starts the proxy
# (os.environ/... is LiteLLM's own syntax for that).
#
# 1.106.12 is the newest release whose [proxy] extra resolves from PyPI here;
# later ones pin a litellm-proxy-extras build that is not published.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.peer-venv"
version="${LITELLM_VERSION:-1.106.12}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "litellm[proxy]==$version"

cat > "$venv/litellm.yaml" <<'YAML'
# Written by bench/peer_litellm.sh; read by bench/run.py.
# Each model name matches a provider name of the coderouterd bench config, so
# the same request body goes to either gateway.
model_list:
  - model_name: a_fast
    litellm_params:
      model: anthropic/mock-model
      api_base: os.environ/BENCH_MOCK_URL
      api_key: bench-not-a-secret
  - model_name: a_pace
    litellm_params:
      model: anthropic/mock-model
      api_base: os.environ/BENCH_MOCK_URL_PACE
      api_key: bench-not-a-secret
  - model_name: a_hold
    litellm_params:
      model: anthropic/mock-model
      api_base: os.environ/BENCH_MOCK_URL_HOLD
      api_key: bench-not-a-secret
litellm_settings:
  telemetry: false
  drop_params: false
  set_verbose: false
  request_timeout: 600
general_settings:
  disable_spend_logs: true
YAML

LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c "import litellm, importlib.metadata as m; print('litellm', m.version('litellm'))"
echo "peer installed: $venv (config $venv/litellm.yaml)"
