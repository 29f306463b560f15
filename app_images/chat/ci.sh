#!/usr/bin/env bash
# Test entry of the chat image: venv, pinned deps, chromium, node + the test OIDC provider,
# hadolint, ruff, pytest.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch==2.13.0 resolves to the CPU wheel via the machine's pip find-links (see README).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
# A CJK font, so the web UI's Chinese text renders in the screenshot tests.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-microhei
fi

# The test OpenID provider (tests/oidc, npm `oidc-provider` pinned by its lock) runs on the
# machine's Node.js; installed once, node_modules is gitignored.
if ! command -v node >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund)
fi

.venv/bin/hadolint Dockerfile
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$HERE"
.venv/bin/python -m pytest -q -p no:cacheprovider ${JUNIT_XML:+--junitxml="$JUNIT_XML"} tests "$@"
.venv/bin/mypy  # files and plugin from pyproject.toml [tool.mypy]
