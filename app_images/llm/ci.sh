#!/usr/bin/env bash
# Test entry of the llm image: venv, pinned deps, hadolint, shellcheck, ruff, mypy, pytest. Works from any cwd.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
VENV="$HERE/.venv"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -r requirements-dev.txt -c constraints.txt

echo "== hadolint"
"$VENV/bin/hadolint" Dockerfile Dockerfile.aiacc
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== shellcheck"
if ! command -v shellcheck >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck
fi
shellcheck bench/gpu_check.sh
echo "== mypy"
"$VENV/bin/mypy" llm_server
echo "== pytest"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider ${JUNIT_XML:+--junitxml="$JUNIT_XML"} "$@"
